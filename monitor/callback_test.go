package monitor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
)

// hangAfter is how long a test waits for a call that must not block before
// failing instead of hanging. It bounds a wait; it is not a measurement.
const hangAfter = 30 * time.Second

// returns runs f in a goroutine and fails the test if it has not returned
// within hangAfter: f deadlocked or blocked on something it should not.
func returns(t *testing.T, what string, f func()) bool {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return true
	case <-time.After(hangAfter):
		t.Errorf("%s did not return within %s: deadlocked or blocked", what, hangAfter)
		return false
	}
}

// noLeaks fails t if goroutines started after this call outlive the test
// and its cleanups. Call it first thing, after starting the shared bed,
// whose servers outlive every test; not in a parallel test, whose
// neighbours' goroutines would count.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// A callback may call Poll or Close: callbacks run after the poll has given
// back its turn.
func TestCallbacksMayPollAndClose(t *testing.T) {
	bed := testbed.Start(t)
	noLeaks(t)
	const app = "callback-app"
	open(t, bed.DirectURL, app, 2)
	watch := open(t, bed.AdminURL, "callback-watch", 1)[0]
	settle(t, watch, app, "", 2)
	plan, err := budget.Plan(budget.Spec{Limit: 60, Reserved: 5, Apps: []budget.App{{Name: app, Instances: 1, Max: 1}}})
	require.NoError(t, err)

	actions := []struct {
		name string
		do   func(context.Context, *monitor.Monitor) error
	}{
		{"Poll", func(ctx context.Context, m *monitor.Monitor) error { _, err := m.Poll(ctx); return err }},
		{"Close", func(_ context.Context, m *monitor.Monitor) error { return m.Close() }},
	}
	for _, cb := range []string{"OnChange", "OnAlert"} {
		for _, act := range actions {
			t.Run(cb+" calls "+act.name, func(t *testing.T) {
				ctx := ctxT(t)
				var (
					m      *monitor.Monitor
					calls  atomic.Int32
					depth  atomic.Int32
					nested atomic.Bool
					inner  = make(chan error, 1)
				)
				call := func() {
					if depth.Add(1) > 1 {
						nested.Store(true)
					}
					defer depth.Add(-1)
					if calls.Add(1) == 1 {
						inner <- act.do(ctx, m)
					}
				}
				// Two backends at least (the app's), so a count of 1.5
				// is Yellow from the first poll: OnChange is called.
				cfg := monitor.Config{URL: bed.AdminURL, Timeout: 10 * time.Second, Levels: monitor.Levels{Yellow: 1.5, Red: 1000}}
				switch cb {
				case "OnChange":
					cfg.OnChange = func(monitor.Snapshot) { call() }
				case "OnAlert":
					// The app holds 2 connections against a budget of 1.
					cfg.Budget = plan
					cfg.OnAlert = func(a monitor.Alert) {
						if a.Kind == monitor.AlertOverBudget && a.Application == app {
							call()
						}
					}
				}
				m, err := monitor.New(cfg)
				require.NoError(t, err)

				var s monitor.Snapshot
				var perr error
				if !returns(t, "Poll whose "+cb+" calls "+act.name, func() { s, perr = m.Poll(ctx) }) {
					return // the monitor is wedged; closing it would hang too
				}
				defer func() { require.NoError(t, m.Close()) }()
				require.NoError(t, perr)
				assert.Equal(t, monitor.Yellow, s.Level)
				assert.Equal(t, int32(1), calls.Load())
				require.NoError(t, <-inner, "the callback's own %s", act.name)
				assert.False(t, nested.Load(), "callbacks are not nested")
			})
		}
	}
}

// Reports of a poll that a callback makes are delivered after that callback
// returns, in order, none lost, none nested.
func TestCallbackPollReportsComeAfterIt(t *testing.T) {
	bed := testbed.Start(t)
	noLeaks(t)
	ctx := ctxT(t)
	const app = "callback-order"
	plan, err := budget.Plan(budget.Spec{Limit: 60, Reserved: 5, Apps: []budget.App{{Name: app, Instances: 1, Max: 1}}})
	require.NoError(t, err)
	watch := open(t, bed.AdminURL, "callback-order-watch", 1)[0]
	extra := open(t, bed.DirectURL, app, 2)[1]
	settle(t, watch, app, "", 2)

	var (
		m        *monitor.Monitor
		mu       sync.Mutex
		got      []monitor.Alert
		inCall   atomic.Bool
		overlaps atomic.Int32
		innerErr = make(chan error, 1)
	)
	m, err = monitor.New(monitor.Config{URL: bed.AdminURL, Timeout: 10 * time.Second, Budget: plan, OnAlert: func(a monitor.Alert) {
		if a.Application != app {
			return
		}
		if inCall.Swap(true) {
			overlaps.Add(1)
		}
		defer inCall.Store(false)
		mu.Lock()
		got = append(got, a)
		n := len(got)
		mu.Unlock()
		if n == 1 {
			// Back within budget, then poll: that poll clears the alert,
			// and the clear must wait until this call has returned.
			extra.Close(ctx)
			settle(t, watch, app, "", 1)
			_, err := m.Poll(ctx)
			innerErr <- err
		}
	}})
	require.NoError(t, err)
	var perr error
	if !returns(t, "Poll whose OnAlert calls Poll", func() { _, perr = m.Poll(ctx) }) {
		return
	}
	defer func() { require.NoError(t, m.Close()) }()
	require.NoError(t, perr)
	require.NoError(t, <-innerErr)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2, "raised, then cleared: %+v", got)
	assert.True(t, got[0].Raised)
	assert.False(t, got[1].Raised)
	assert.Zero(t, overlaps.Load(), "one callback at a time")
}

// blockingDB is a caller's real pool that says when the poll's query has
// reached it.
type blockingDB struct {
	*pgxpool.Pool
	started chan struct{}
	once    sync.Once
}

func (d *blockingDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	d.once.Do(func() { close(d.started) })
	return d.Pool.Query(ctx, sql, args...)
}

// Close does not wait for a poll in progress: it cancels it. The poll here
// is stuck behind a real lock or a full pool with a long timeout.
func TestCloseCancelsPollInProgress(t *testing.T) {
	testbed.Start(t)
	noLeaks(t)
	for _, tc := range []struct {
		name string
		// setup returns a monitor with one good poll behind it, and block,
		// which makes the next poll wait until unblock; started returns
		// once that poll waits. It returns the context to use too,
		// counted from when the servers are up: starting a bed on a
		// loaded machine takes a while.
		setup func(t *testing.T) (ctx context.Context, m *monitor.Monitor, block, started, unblock func())
	}{
		{"own connection waits for a catalog lock", func(t *testing.T) (context.Context, *monitor.Monitor, func(), func(), func()) {
			bed := testbed.NewT(t, testbed.Options{NoPooler: true})
			ctx := ctxT(t)
			m, err := monitor.New(monitor.Config{URL: bed.AdminURL, Timeout: 10 * time.Minute})
			require.NoError(t, err)
			_, err = m.Poll(ctx) // connects before the lock, which would stop that too
			require.NoError(t, err)
			holder := open(t, bed.AdminURL, "close-lock-holder", 1)[0]
			var tx pgx.Tx
			block := func() {
				tx, err = holder.Begin(ctx)
				require.NoError(t, err)
				// Reading pg_stat_activity plans a join with pg_database.
				_, err = tx.Exec(ctx, "lock table pg_database in access exclusive mode")
				require.NoError(t, err)
			}
			started := func() {
				require.Eventually(t, func() bool {
					var n int
					err := tx.QueryRow(ctx, "select count(*) from pg_locks where not granted and relation = 'pg_database'::regclass").Scan(&n)
					return err == nil && n == 1
				}, 20*time.Second, 5*time.Millisecond, "the poll waits for the lock")
			}
			unblock := func() { _ = tx.Rollback(ctx) }
			return ctx, m, block, started, unblock
		}},
		{"caller's pool has no free connection", func(t *testing.T) (context.Context, *monitor.Monitor, func(), func(), func()) {
			bed := testbed.Start(t)
			ctx := ctxT(t)
			cfg, err := pgxpool.ParseConfig(bed.DirectURL)
			require.NoError(t, err)
			cfg.MaxConns = 1
			p, err := pgxpool.NewWithConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(p.Close)
			db := &blockingDB{Pool: p, started: make(chan struct{})}
			m, err := monitor.New(monitor.Config{DB: db, Timeout: 10 * time.Minute})
			require.NoError(t, err)
			_, err = m.Poll(ctx)
			require.NoError(t, err)
			var held *pgxpool.Conn
			block := func() {
				db.once, db.started = sync.Once{}, make(chan struct{})
				held, err = p.Acquire(ctx)
				require.NoError(t, err)
			}
			started := func() { <-db.started }
			unblock := func() { held.Release() }
			return ctx, m, block, started, unblock
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, m, block, started, unblock := tc.setup(t)
			block()
			unblocked := false
			t.Cleanup(func() {
				if !unblocked {
					unblock()
				}
			})
			polled := make(chan error, 1)
			go func() { _, err := m.Poll(ctx); polled <- err }()
			started()

			if !returns(t, "Close with a poll in progress", func() { require.NoError(t, m.Close()) }) {
				unblock()
				unblocked = true
				<-polled
				return
			}
			err := <-polled
			require.ErrorIs(t, err, monitor.ErrClosed, "the poll in progress was cancelled")
			s := m.Snapshot()
			assert.False(t, s.Stale, "closing is not a failure")
			assert.Zero(t, s.Failed)

			unblock()
			unblocked = true
			s, err = m.Poll(ctx)
			require.NoError(t, err, "a poll after Close starts afresh")
			assert.False(t, s.Stale)
			require.NoError(t, m.Close())
		})
	}
}
