package pool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// A route opens its first two connections at once and every one beyond
// only after a look at the server taken while it held all the others: by
// the time its connections (opened or being opened) first number k > 2,
// it has looked at least k-2 times. Before route.climbLook a busy route on
// a roomy server looked once and climbed to its cap within a few
// milliseconds.
func TestElasticClimbsAfterLooking(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	p, err := pool.New(ctx, pool.Config{AppName: "climb", DirectURL: bed.DirectURL, MaxConns: 4})
	require.NoError(t, err)
	defer p.Close()
	load, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int
			for load.Err() == nil {
				_ = p.QueryRow(load, bench.QuerySleep, 1).Scan(&n)
			}
		}()
	}
	// viewsAt[k] is the route's looks when it first had k connections:
	// looks only grow, so a sample taken late can only show more.
	viewsAt := map[int32]int64{}
	deadline := time.Now().Add(20 * time.Second)
	for len(viewsAt) < 4 && time.Now().Before(deadline) {
		s := p.Stat().Pooled
		for k := int32(1); k <= s.TotalConns; k++ {
			if _, ok := viewsAt[k]; !ok {
				viewsAt[k] = s.ElasticViews
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	require.Len(t, viewsAt, 4, "the route reaches its cap of 4 on an empty server")
	t.Logf("looks when the route first had 1..4 connections: %d %d %d %d", viewsAt[1], viewsAt[2], viewsAt[3], viewsAt[4])
	for k := int32(3); k <= 4; k++ {
		assert.GreaterOrEqual(t, viewsAt[k], int64(k-2), "looks before connection %d", k)
	}
}

// A route whose callers hold their connections (long queries, streamed
// rows) climbs past two, through a look taken on the connection the
// climbing acquire got. Before that look was taken at acquire, it waited
// for a release that never came, and climbed only by the gate's blind
// probe, one connection a second, without looking at all: here the route
// held all four with 0 looks. Its first look sees instances arrive (its
// own), so the picture is not settled yet (elastic.settled); with no
// release to look again, the third connection comes from the route's
// nudge once climbSettle has passed (nudgeWhenSettled), and the look on
// it lets the fourth follow.
func TestElasticClimbsWhileHolding(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	p, err := pool.New(ctx, pool.Config{AppName: "holds", DirectURL: bed.DirectURL, MaxConns: 4})
	require.NoError(t, err)
	defer p.Close()
	got := make(chan error, 4)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(done); wg.Wait() }()
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows, err := p.Query(ctx, "select generate_series(1, 3)")
			got <- err
			if err == nil {
				<-done // hold the connection: the rows stay open
				rows.Close()
			}
		}()
	}
	for g := 0; g < 4; g++ {
		require.NoError(t, <-got)
	}
	s := p.Stat().Pooled
	t.Logf("four callers hold %d connections after %d looks", s.AcquiredConns, s.ElasticViews)
	assert.EqualValues(t, 4, s.AcquiredConns)
	assert.GreaterOrEqual(t, s.ElasticViews, int64(2), "a look before the third connection, and one on it")
}

// DirectDB's connections go back to pgxpool without passing a release
// that could ask the server, so before the look was taken at acquire its
// route never climbed past two: a migration tool's 8 workers shared two
// connections of MaxDirectConns 4 for good.
func TestElasticDirectDBClimbs(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	p, err := pool.New(ctx, pool.Config{AppName: "migrates", DirectURL: bed.DirectURL, MaxDirectConns: 4})
	require.NoError(t, err)
	defer p.Close()
	db := p.DirectDB()
	defer db.Close()
	load, cancel := context.WithTimeout(ctx, 20*time.Second) // a generous liveness bound
	defer cancel()
	var most atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for load.Err() == nil && most.Load() < 4 {
				var n int
				if err := db.QueryRowContext(load, "select 1 from pg_sleep(0.005)").Scan(&n); err != nil && load.Err() == nil {
					t.Error(err)
					return
				}
				c := p.Stat().Direct.TotalConns
				for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
				}
			}
		}()
	}
	wg.Wait()
	s := p.Stat().Direct
	t.Logf("DirectDB's route: at most %d connections seen, %d looks", most.Load(), s.ElasticViews)
	assert.EqualValues(t, 4, most.Load(), "the direct route climbs to MaxDirectConns under DirectDB's load")
}
