package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// Instances that come and go during a storm (20 s here, 60 s in
// examples/bench): every 2 s one more instance starts on the full server,
// up to 4 above the 28, then the oldest ones close. No caller sees an
// error, and the app role's backends never exceed the usable slots
// (sampled every 100 ms over a superuser connection).
func TestElasticComeAndGo(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	f := bench.Flow{
		Storm:    bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Caps: bench.Fixed(4), Query: bench.QuerySleep},
		For:      20 * time.Second,
		Every:    2 * time.Second,
		AdminURL: bed.AdminURL,
		Sample:   true,
	}
	got, err := bench.RunFlow(ctx, bed.DirectURL, f)
	require.NoError(t, err)
	t.Logf("come and go: %d instances came, %d went; %d of %d queries failed %v; %.0f qps; at most %d of %d usable slots; %d connections opened, %d closed by sharing",
		got.Created, got.Closed, got.Errors, got.Queries, got.Codes, got.QPS(), got.MaxClients, got.Usable, got.Opened, got.ElasticClosed)
	assert.Zero(t, got.Errors)
	assert.Positive(t, got.Created)
	assert.Positive(t, got.Closed)
	require.Positive(t, got.Usable, "the sampler saw the server")
	assert.LessOrEqual(t, got.MaxClients, got.Usable)
	assert.Positive(t, got.Queries)
}

// A budget that fits (caps 2 from the plan: 56 of 57 usable slots) under
// continuous load for 20 s (30 s in examples/bench): sharing closes no
// connection, and the server opens exactly the 56 the plan gives.
func TestElasticBudgetFits(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	s := bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Query: bench.QuerySleep}
	caps, spec, err := bench.PlannedCaps(s, t.TempDir())
	require.NoError(t, err)
	require.EqualValues(t, 2, caps("storm_app0"))
	s.Caps, s.Budget = caps, spec
	// No sampler: its connection would take the plan's spare slot.
	got, err := bench.RunFlow(ctx, bed.DirectURL, bench.Flow{Storm: s, For: 20 * time.Second, AdminURL: bed.AdminURL})
	require.NoError(t, err)
	opened := got.Opened
	t.Logf("a budget that fits: %d of %d queries failed, %.0f qps, %d closed by sharing, %d connections opened", got.Errors, got.Queries, got.QPS(), got.ElasticClosed, opened)
	assert.Zero(t, got.Errors)
	assert.Zero(t, got.ElasticClosed, "closed by sharing")
	assert.EqualValues(t, 56, opened, "connections opened: a budget that fits reconnects nothing")
}

// A quiet instance holding idle connections on a full server gives them
// back when another instance needs them: elastic sharing keeps a slot of
// headroom free, so yielding (which waits for a full server) would never
// start; a busy instance kept below its cap takes the free slots, the
// server is full, and the quiet one yields. Here 24 busy instances with
// caps 2 and the quiet one's 4 leave 5 of 57 usable slots to one busy
// instance with caps 10: without this, the server stays at 56 or less and
// the quiet instance keeps its connections for MaxConnIdleTime (10 min).
func TestElasticQuietGivesBack(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	quiet, err := pool.New(ctx, pool.Config{AppName: "quiet", DirectURL: bed.DirectURL, MaxConns: 4, MaxConnIdleTime: 10 * time.Minute})
	require.NoError(t, err)
	defer quiet.Close()
	for round := 0; round < 20 && quiet.Stat().Pooled.TotalConns < 4; round++ {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := quiet.Exec(ctx, "select pg_sleep(0.05)")
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
	}
	held := quiet.Stat().Pooled.TotalConns
	require.EqualValues(t, 4, held, "the quiet instance opened its connections")

	load, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed int
	var busy []*pool.Pool
	defer func() {
		cancel()
		wg.Wait()
		for _, p := range busy {
			p.Close()
		}
	}()
	run := func(p *pool.Pool) {
		for g := 0; g < 10; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for q := 0; load.Err() == nil; q++ {
					var n int
					if err := p.QueryRow(load, bench.QuerySleep, q).Scan(&n); err != nil && load.Err() == nil {
						mu.Lock()
						failed++
						mu.Unlock()
					}
				}
			}()
		}
	}
	for i := 0; i < 24; i++ {
		p, err := pool.New(ctx, pool.Config{AppName: "steady", DirectURL: bed.DirectURL, MaxConns: 2})
		require.NoError(t, err)
		busy = append(busy, p)
		run(p)
	}
	steady := func() (n int32) {
		for _, p := range busy {
			n += p.Stat().Pooled.TotalConns
		}
		return n
	}
	for wait := time.Now(); steady() < 48 && time.Since(wait) < 30*time.Second; {
		time.Sleep(50 * time.Millisecond) // the steady ones open their 48
	}
	needy, err := pool.New(ctx, pool.Config{AppName: "needy", DirectURL: bed.DirectURL, MaxConns: 10})
	require.NoError(t, err)
	busy = append(busy, needy)
	start := time.Now()
	run(needy)
	for quiet.Stat().Pooled.TotalConns > 0 && time.Since(start) < 60*time.Second { // a generous liveness bound
		time.Sleep(100 * time.Millisecond)
	}
	gone := time.Since(start)
	st := needy.Stat().Pooled
	t.Logf("the quiet instance held %d idle connections, %d after %v of the needy one's load (needy: %d connections, %d views, %d closed by sharing)",
		held, quiet.Stat().Pooled.TotalConns, gone.Round(100*time.Millisecond), st.TotalConns, st.ElasticViews, st.ElasticClosed)
	assert.Zero(t, quiet.Stat().Pooled.TotalConns, "the quiet instance still holds connections")
	cancel()
	wg.Wait()
	assert.Zero(t, failed, "busy callers' errors")
}
