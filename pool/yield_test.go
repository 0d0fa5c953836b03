package pool_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// burst runs goroutines × queries short sleeps on p, enough concurrency
// for a pool to open all its connections.
func burst(t *testing.T, ctx context.Context, p *pool.Pool, goroutines, queries int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := 0; q < queries; q++ {
				if _, err := p.Exec(ctx, "select pg_sleep(0.005)"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A route that has gone quiet gives its idle connections back when the
// server has no slot left, keeps them when it has one, and never when
// YieldAfter is negative.
func TestQuietRouteYieldsToFullServer(t *testing.T) {
	for _, tc := range []struct {
		name       string
		others     int // connections other clients hold
		yieldAfter time.Duration
		wantKept   bool
	}{
		// max_connections 12 leaves 9 slots to ordinary roles; the pool's 4
		// and 5 others leave none: full.
		{"full", 5, 0, false},
		{"one slot free", 4, 0, true},
		{"full, yielding off", 5, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bed := testbed.NewT(t, testbed.Options{MaxConnections: 12, NoPooler: true})
			ctx := testCtx(t)
			app := appName(t)
			var closed atomic.Int32
			p, err := pool.New(ctx, pool.Config{AppName: app, DirectURL: bed.DirectURL, MaxConns: 4, YieldAfter: tc.yieldAfter,
				ConfigurePooled: func(pc *pgxpool.Config) error {
					pc.BeforeClose = func(*pgx.Conn) { closed.Add(1) }
					return nil
				}})
			require.NoError(t, err)
			defer p.Close()
			burst(t, ctx, p, 8, 20)
			require.EqualValues(t, 4, p.Stat().Pooled.TotalConns, "the burst opens every connection the cap allows")

			// The others connect after the pool went quiet: its first
			// look at the server may find room, and it must look again.
			for i := 0; i < tc.others; i++ {
				c, err := pgx.Connect(ctx, bed.DirectURL)
				require.NoError(t, err)
				defer c.Close(context.Background())
			}
			mine := func() int {
				n, err := bed.Count(ctx, testbed.Filter{AppName: app})
				require.NoError(t, err)
				return n
			}
			if tc.wantKept {
				// Long enough for the check after YieldAfter and one more.
				time.Sleep(250*time.Millisecond + 1500*time.Millisecond) // YieldAfter's default, and more
				assert.Equal(t, 4, mine(), "idle connections closed though they should be kept")
				assert.EqualValues(t, 4, p.Stat().Pooled.TotalConns)
			} else {
				require.Eventually(t, func() bool { return mine() == 0 }, 10*time.Second, 20*time.Millisecond,
					"a quiet route kept its idle connections on a full server")
				assert.Zero(t, p.Stat().Pooled.TotalConns)
				assert.EqualValues(t, 4, closed.Load(), "the user's BeforeClose runs for yielded connections")
				assert.EqualValues(t, 1, p.Stat().Pooled.Cap, "the next burst opens connections one at a time again")
			}
			var n int
			require.NoError(t, p.QueryRow(ctx, "select 1").Scan(&n), "the route works after yielding")
		})
	}
}

// The listener's connection holds its place in the direct route's gate for
// good; the route's other connections still go back to a full server.
func TestQuietRouteWithListenerYields(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 12, NoPooler: true})
	ctx := testCtx(t)
	app := appName(t)
	p, err := pool.New(ctx, pool.Config{AppName: app, DirectURL: bed.DirectURL, MaxDirectConns: 4})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Listener().Listen(ctx, "yield_listener", func(context.Context, *pgconn.Notification) error { return nil }))
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				tx, err := p.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = tx.Exec(ctx, "select pg_sleep(0.005)")
				assert.NoError(t, err)
				assert.NoError(t, tx.Commit(ctx))
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 4, p.Stat().Direct.TotalConns)
	for i := 0; i < 5; i++ { // 4 + 5 of 9 slots: full
		c, err := pgx.Connect(ctx, bed.DirectURL)
		require.NoError(t, err)
		defer c.Close(context.Background())
	}
	require.Eventually(t, func() bool {
		n, err := bed.Count(ctx, testbed.Filter{AppName: app})
		return err == nil && n == 1
	}, 10*time.Second, 20*time.Millisecond, "only the listener's connection should be left")
	assert.True(t, p.Stat().Listener.Connected)
}

// Under a burst, a route opens one connection at a time: each waits until
// the last one is open, so instances starting together share a server
// that cannot hold all their caps instead of the first few taking it all.
func TestRouteOpensConnectionsOneAtATime(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	var inFlight, most atomic.Int32
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = "" // the pooled route on the server itself
		c.MaxConns = 4
		c.ConfigurePooled = func(pc *pgxpool.Config) error {
			pc.BeforeConnect = func(context.Context, *pgx.ConnConfig) error {
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				return nil
			}
			pc.AfterConnect = func(context.Context, *pgx.Conn) error {
				inFlight.Add(-1)
				return nil
			}
			return nil
		}
	})
	burst(t, ctx, p, 20, 20)
	st := p.Stat().Pooled
	assert.EqualValues(t, 4, st.TotalConns, "the cap was reached")
	assert.EqualValues(t, 4, st.Cap)
	assert.EqualValues(t, 1, most.Load(), "connections were opened concurrently")
}

// A caller may hold a route's only open connection and ask for another (a
// second transaction while the first is open): the route opens it at
// once, though it opens connections one at a time.
func TestNestedAcquireOnAFreshRoute(t *testing.T) {
	bed := testbed.Start(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 2 })
	ctx := testCtx(t)
	outer, err := p.Begin(ctx)
	require.NoError(t, err)
	defer outer.Rollback(ctx)
	// Well under raiseEvery: only the rule that a route may open one
	// more connection than it has can admit the inner transaction.
	ictx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	inner, err := p.Begin(ictx)
	require.NoError(t, err, "the second transaction waited for the first")
	require.NoError(t, inner.Rollback(ctx))
}
