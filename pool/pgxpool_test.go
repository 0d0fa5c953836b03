package pool_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/appname"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// PgxPool gives the route's own pgxpool: its connections carry the app's
// application_name, count against the route's cap, and it refuses once
// the Pool is closed.
func TestPgxPool(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 2 })

	direct, err := p.PgxPool(pool.Direct)
	require.NoError(t, err)
	assert.EqualValues(t, 2, direct.Config().MaxConns)
	var app string
	require.NoError(t, direct.QueryRow(ctx, "select current_setting('application_name')").Scan(&app))
	assert.Equal(t, p.Config().AppName, appname.App(app), "application_name is the app's, with the instance id elastic sharing adds")
	assert.Equal(t, int32(1), direct.Stat().TotalConns(), "the route's own pool, not a copy")
	assert.Equal(t, int32(1), p.Stat().Direct.TotalConns)

	pooled, err := p.PgxPool(pool.Pooled)
	require.NoError(t, err)
	assert.NotSame(t, direct, pooled)
	assert.Equal(t, p.Config().MaxConns, pooled.Config().MaxConns)

	_, err = p.PgxPool(pool.Route(9))
	assert.Error(t, err)

	noDirect := newPool(t, bed, func(c *pool.Config) { c.NoDirect = true })
	_, err = noDirect.PgxPool(pool.Direct)
	assert.ErrorIs(t, err, pool.ErrNoDirectRoute)

	p.Close()
	_, err = p.PgxPool(pool.Direct)
	assert.ErrorIs(t, err, pool.ErrClosed)
}

// A hijacked connection keeps its place under the route's cap until its
// new owner closes it: hijacking as many as the cap allows leaves nothing
// for another Acquire, which waits rather than opening a backend above the
// cap, and gets one as soon as a hijacked connection is closed.
func TestHijackKeepsCap(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 2 })
	app := testbed.Filter{AppName: p.Config().AppName}
	pp, err := p.PgxPool(pool.Direct)
	require.NoError(t, err)
	stop := sampleBackends(ctx, bed, app)

	hijacked := hijack(t, ctx, pp, 2)
	assert.Zero(t, pp.Stat().TotalConns(), "hijacked connections leave pgxpool's count")
	assert.EqualValues(t, 2, pool.SlotsInUse(p, pool.Direct), "but not the route's")

	// Beyond the cap: pgxpool's Acquire waits, and gives up with its context.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = pp.Acquire(short)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// So do the Pool's own calls on the route.
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = p.Acquire(short, pool.Direct)
	cancel()
	require.Error(t, err)
	n, err := bed.Count(ctx, app)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "no backend above the cap")

	// Closing a hijacked connection gives its place back to a waiter.
	got := make(chan error, 1)
	go func() {
		c, err := pp.Acquire(ctx)
		if err == nil {
			err = c.Ping(ctx)
			c.Release()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, hijacked[0].Close(ctx))
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Acquire still waits after a hijacked connection was closed")
	}

	// With one connection hijacked, many callers share the other one,
	// through pgxpool and through the Pool.
	opened := pp.Stat().NewConnsCount()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := pp.Exec(ctx, "select pg_sleep(0.005)")
				errs <- err
				return
			}
			tx, err := p.Begin(ctx)
			if err == nil {
				_, err = tx.Exec(ctx, "select pg_sleep(0.005)")
				err = errors.Join(err, tx.Commit(ctx))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	most, samples := stop()
	require.Positive(t, samples)
	t.Logf("backends: at most %d in %d samples (MaxDirectConns 2); 40 callers beside a hijacked connection made pgxpool open %d", most, samples, pp.Stat().NewConnsCount()-opened)
	assert.LessOrEqual(t, most, int64(2))
	assert.LessOrEqual(t, pool.SlotsInUse(p, pool.Direct), int32(2))
}

// Without the slots (as before hijack.go), each hijack lets pgxpool open
// one connection more than the cap: the bug the slots fix.
func TestHijackExceedsCapWithoutSlots(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	restore := pool.WithoutHijackCap()
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 2 })
	restore()
	app := testbed.Filter{AppName: p.Config().AppName}
	pp, err := p.PgxPool(pool.Direct)
	require.NoError(t, err)

	hijack(t, ctx, pp, 2)
	c, err := pp.Acquire(ctx)
	require.NoError(t, err, "pgxpool opens a third")
	defer c.Release()
	n, err := bed.Count(ctx, app)
	require.NoError(t, err)
	t.Logf("backends without the slots: %d (MaxDirectConns 2)", n)
	assert.Equal(t, 3, n)
}

// A cancel request opens a socket through the connection's dial function
// but no session, so it takes no slot. pgx cancels a query whose context
// ends by sending one before it closes the connection: had the cancel
// waited for a slot, on a route at its cap it would have waited for the
// very socket it keeps open (pgx gives it 15s).
func TestHijackCapLetsCancelRequestsThrough(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 1 })
	pp, err := p.PgxPool(pool.Direct)
	require.NoError(t, err)
	c, err := pp.Acquire(ctx)
	require.NoError(t, err)
	pid := c.Conn().PgConn().PID()

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = c.Exec(short, "select pg_sleep(10)")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	c.Release()
	start := time.Now()
	require.Eventually(t, func() bool { return pool.SlotsInUse(p, pool.Direct) == 0 }, 3*time.Second, 5*time.Millisecond,
		"the cancelled connection's socket closes and gives its slot back")
	require.Eventually(t, func() bool {
		bes, err := bed.Backends(ctx, testbed.Filter{AppName: p.Config().AppName})
		return err == nil && len(bes) == 0
	}, 3*time.Second, 10*time.Millisecond, "the server cancelled the query and the backend %d is gone", pid)

	c, err = pp.Acquire(ctx)
	require.NoError(t, err)
	defer c.Release()
	require.NoError(t, c.Ping(ctx))
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.EqualValues(t, 1, pool.SlotsInUse(p, pool.Direct))
}

// The slots chain into the hooks and dial function ConfigureDirect set,
// which keep running.
func TestPgxPoolKeepsUserHooks(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	var dials, before, after, closes atomic.Int32
	p := newPool(t, bed, func(c *pool.Config) {
		c.MaxDirectConns = 2
		c.ConfigureDirect = func(pc *pgxpool.Config) error {
			dial := pc.ConnConfig.DialFunc
			pc.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return dial(ctx, network, addr)
			}
			pc.BeforeConnect = func(context.Context, *pgx.ConnConfig) error { before.Add(1); return nil }
			pc.AfterConnect = func(context.Context, *pgx.Conn) error { after.Add(1); return nil }
			pc.BeforeClose = func(*pgx.Conn) { closes.Add(1) }
			return nil
		}
	})
	pp, err := p.PgxPool(pool.Direct)
	require.NoError(t, err)
	c, err := pp.Acquire(ctx)
	require.NoError(t, err)
	conn := c.Hijack()
	require.NoError(t, pp.Ping(ctx))
	assert.EqualValues(t, 2, pool.SlotsInUse(p, pool.Direct))
	assert.EqualValues(t, 2, dials.Load())
	assert.EqualValues(t, 2, before.Load())
	assert.EqualValues(t, 2, after.Load())
	require.NoError(t, conn.Close(ctx))
	assert.EqualValues(t, 1, pool.SlotsInUse(p, pool.Direct), "closing the hijacked connection gives its slot back")
	p.Close()
	assert.EqualValues(t, 1, closes.Load(), "BeforeClose runs for the connection pgxpool closed")
	assert.Zero(t, pool.SlotsInUse(p, pool.Direct))
}

// A connect that waits its whole connect timeout for a slot fails with
// SlotsTakenError: pgxpool's callers see it; the Pool's own callers wait
// on, as for a full server, until their own context ends.
func TestHijackSlotsTakenError(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) {
		c.DirectURL = testbed.WithParams(bed.DirectURL, "connect_timeout=1")
		c.MaxDirectConns = 1
	})
	pp, err := p.PgxPool(pool.Direct)
	require.NoError(t, err)
	c, err := pp.Acquire(ctx)
	require.NoError(t, err)
	conn := c.Hijack()
	defer conn.Close(context.Background())

	start := time.Now()
	_, err = pp.Acquire(ctx)
	var st *pool.SlotsTakenError
	require.ErrorAs(t, err, &st)
	assert.Equal(t, pool.Direct, st.Route)
	assert.Equal(t, "MaxDirectConns", st.Field)
	assert.EqualValues(t, 1, st.Max)
	assert.Contains(t, err.Error(), "hijacked")
	assert.InDelta(t, time.Second, time.Since(start), float64(700*time.Millisecond))

	// The Pool's caller outlasts two connect timeouts and gets the slot
	// the hijacked connection gives back.
	done := make(chan error, 1)
	start = time.Now()
	go func() {
		tx, err := p.Begin(ctx)
		if err == nil {
			err = tx.Rollback(ctx)
		}
		done <- err
	}()
	time.Sleep(2500 * time.Millisecond)
	require.NoError(t, conn.Close(ctx))
	select {
	case err := <-done:
		require.NoError(t, err)
		assert.Greater(t, time.Since(start), 2*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("Begin still waits after the hijacked connection was closed")
	}
}

// hijack takes n connections out of pp as pgxlisten does, and closes them
// when the test ends.
func hijack(t *testing.T, ctx context.Context, pp *pgxpool.Pool, n int) []*pgx.Conn {
	t.Helper()
	var hijacked []*pgx.Conn
	t.Cleanup(func() {
		for _, c := range hijacked {
			_ = c.Close(context.Background())
		}
	})
	for range n {
		c, err := pp.Acquire(ctx)
		require.NoError(t, err)
		hijacked = append(hijacked, c.Hijack())
	}
	return hijacked
}
