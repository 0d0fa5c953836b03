package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
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

func TestCountsMatchKnownConnections(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	const idleApp, activeApp, txApp = "counts-idle", "counts-active", "counts-tx"

	open(t, bed.DirectURL, idleApp, 3)

	active := open(t, bed.DirectURL, activeApp, 2)
	release := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for _, c := range active {
		wg.Go(func() {
			// pg_sleep keeps the backend active until the test cancels it.
			sctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { <-release; cancel() }()
			_, _ = c.Exec(sctx, "select pg_sleep(60)")
		})
	}
	t.Cleanup(func() { close(release) })

	txs := open(t, bed.DirectURL, txApp, 2)
	for _, c := range txs {
		_, err := c.Exec(ctx, "begin")
		require.NoError(t, err)
		_, err = c.Exec(ctx, "select 1")
		require.NoError(t, err)
	}

	watch := open(t, bed.AdminURL, "counts-watch", 1)[0]
	settle(t, watch, activeApp, "active", 2)
	settle(t, watch, txApp, "idle in transaction", 2)
	time.Sleep(20 * time.Millisecond) // so ages are clearly above zero

	m := newMonitor(t, monitor.Config{URL: bed.AdminURL})
	s, err := m.Poll(ctx)
	require.NoError(t, err)

	assert.False(t, s.Stale)
	assert.Equal(t, 60, s.MaxConnections)
	assert.Equal(t, 3, s.Reserved, "superuser_reserved_connections")
	assert.Zero(t, s.Hidden, "a superuser sees every backend")
	assert.Positive(t, s.PollDuration)
	assert.WithinDuration(t, time.Now(), s.Time, 10*time.Second)

	idle := appGroups(s, idleApp)
	require.Len(t, idle, 1, "%+v", idle)
	assert.Equal(t, 3, idle["idle"].Count)
	assert.Equal(t, testbed.Database, idle["idle"].Database)
	assert.Equal(t, testbed.AppUser, idle["idle"].User)
	assert.Zero(t, idle["idle"].LongestXact)

	act := appGroups(s, activeApp)
	require.Len(t, act, 1, "%+v", act)
	assert.Equal(t, 2, act["active"].Count)
	assert.GreaterOrEqual(t, act["active"].LongestXact, 20*time.Millisecond)
	assert.Zero(t, act["active"].LongestIdleInTx)

	tx := appGroups(s, txApp)
	require.Len(t, tx, 1, "%+v", tx)
	assert.Equal(t, 2, tx["idle in transaction"].Count)
	assert.GreaterOrEqual(t, tx["idle in transaction"].LongestIdleInTx, 20*time.Millisecond)
	assert.GreaterOrEqual(t, tx["idle in transaction"].LongestXact, tx["idle in transaction"].LongestIdleInTx)

	a, ok := s.App(txApp)
	require.True(t, ok)
	assert.Equal(t, 2, a.Total)
	assert.Equal(t, map[string]int{"idle in transaction": 2}, a.ByState)
	assert.False(t, a.Planned)

	// The monitor's own backend is counted, under its default name.
	self := appGroups(s, "supapool-monitor")
	// Parallel tests run monitors of the same default name on this bed.
	assert.GreaterOrEqual(t, self["active"].Count, 1)

	// Totals add up.
	sum, byState := 0, map[string]int{}
	for _, g := range s.Groups {
		sum += g.Count
		byState[g.State] += g.Count
	}
	assert.Equal(t, s.Total, sum)
	assert.Equal(t, s.ByState, byState)
}

func TestWaitingForLockIsCounted(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	holder := open(t, bed.DirectURL, "lock-holder", 1)[0]
	waiter := open(t, bed.DirectURL, "lock-waiter", 1)[0]
	_, err := holder.Exec(ctx, "create table if not exists monitor_lock_test (id int)")
	require.NoError(t, err)
	_, err = holder.Exec(ctx, "begin")
	require.NoError(t, err)
	_, err = holder.Exec(ctx, "lock table monitor_lock_test in access exclusive mode")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = waiter.Exec(ctx, "select * from monitor_lock_test")
	}()
	watch := open(t, bed.AdminURL, "lock-watch", 1)[0]
	settle(t, watch, "lock-waiter", "active", 1)

	m := newMonitor(t, monitor.Config{URL: bed.AdminURL})
	require.Eventually(t, func() bool {
		s, err := m.Poll(ctx)
		return err == nil && appGroups(s, "lock-waiter")["active"].Waiting == 1
	}, 10*time.Second, 20*time.Millisecond)
	s := m.Snapshot()
	assert.Zero(t, appGroups(s, "lock-holder")["idle in transaction"].Waiting)

	_, err = holder.Exec(ctx, "commit")
	require.NoError(t, err)
	<-done
}

func TestHiddenBackendsAreCountedNotDropped(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	const app = "hidden-superuser"
	open(t, bed.AdminURL, app, 2)
	mine := open(t, bed.DirectURL, "hidden-mine", 1)[0]
	watch := open(t, bed.AdminURL, "hidden-watch", 1)[0]
	settle(t, watch, app, "idle", 2)

	// The app role has neither superuser nor pg_read_all_stats.
	var readAll bool
	require.NoError(t, mine.QueryRow(ctx, "select pg_has_role('pg_read_all_stats', 'member')").Scan(&readAll))
	require.False(t, readAll)

	m := newMonitor(t, monitor.Config{URL: bed.DirectURL})
	s, err := m.Poll(ctx)
	require.NoError(t, err)
	g := appGroups(s, app)
	require.Contains(t, g, monitor.StateHidden, "%+v", s.Groups)
	assert.Equal(t, 2, g[monitor.StateHidden].Count)
	assert.Equal(t, testbed.AdminUser, g[monitor.StateHidden].User)
	assert.Len(t, g, 1, "the app role cannot see the superuser's states")
	assert.GreaterOrEqual(t, s.Hidden, 3, "two of ours and the watcher")
	assert.Equal(t, s.Hidden, s.ByState[monitor.StateHidden])
	assert.Equal(t, 1, appGroups(s, "hidden-mine")["idle"].Count, "the role's own backends stay visible")
}

func TestOverBudgetAppIsFlagged(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	plan, err := budget.Plan(budget.Spec{Limit: 60, Reserved: 5, Apps: []budget.App{
		{Name: "budget-small", Instances: 1, Max: 2},
		{Name: "budget-idle", Instances: 2, Max: 3, Direct: 1},
	}})
	require.NoError(t, err)
	var small budget.AppShare
	for _, sh := range plan.Apps() {
		if sh.Name == "budget-small" {
			small = sh
		}
	}
	require.Equal(t, 2, small.Conns)

	var mu sync.Mutex
	var got []monitor.Alert
	m := newMonitor(t, monitor.Config{URL: bed.AdminURL, Budget: plan, OnAlert: func(a monitor.Alert) {
		if a.Kind == monitor.AlertOverBudget {
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}
	}})
	watch := open(t, bed.AdminURL, "budget-watch", 1)[0]

	conns := open(t, bed.DirectURL, "budget-small", 2)
	settle(t, watch, "budget-small", "", 2)
	s, err := m.Poll(ctx)
	require.NoError(t, err)
	a, _ := s.App("budget-small")
	assert.Equal(t, monitor.AppUsage{Application: "budget-small", Total: 2, ByState: map[string]int{"idle": 2}, Planned: true, Budget: 2}, a, "at its budget is not over it")

	idle, ok := s.App("budget-idle")
	require.True(t, ok, "planned apps show even with no connections")
	assert.Equal(t, monitor.AppUsage{Application: "budget-idle", ByState: map[string]int{}, Planned: true, Budget: 8}, idle)

	conns = append(conns, open(t, bed.DirectURL, "budget-small", 1)...)
	settle(t, watch, "budget-small", "", 3)
	for range 3 {
		s, err = m.Poll(ctx)
		require.NoError(t, err)
	}
	a, _ = s.App("budget-small")
	assert.True(t, a.Over)
	assert.Equal(t, 3, a.Total)
	assert.Equal(t, []monitor.AppUsage{a}, s.OverBudget())

	conns[2].Close(ctx)
	settle(t, watch, "budget-small", "", 2)
	s, err = m.Poll(ctx)
	require.NoError(t, err)
	assert.Empty(t, s.OverBudget())

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2, "raised once, cleared once: %+v", got)
	assert.True(t, got[0].Raised)
	assert.Equal(t, "budget-small", got[0].Application)
	assert.Equal(t, 3, got[0].Count)
	assert.Equal(t, 2, got[0].Limit)
	assert.False(t, got[1].Raised)
}

func TestIdleInTransactionAlert(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	const app = "idle-tx-alert"
	var mu sync.Mutex
	var got []monitor.Alert
	m := newMonitor(t, monitor.Config{URL: bed.AdminURL, IdleInTxAlert: 100 * time.Millisecond, OnAlert: func(a monitor.Alert) {
		if a.Application == app {
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}
	}})
	c := open(t, bed.DirectURL, app, 1)[0]
	tx, err := c.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "select 1")
	require.NoError(t, err)
	time.Sleep(150 * time.Millisecond)
	for range 3 {
		_, err := m.Poll(ctx)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
	watch := open(t, bed.AdminURL, "idle-tx-watch", 1)[0]
	settle(t, watch, app, "idle", 1)
	_, err = m.Poll(ctx)
	require.NoError(t, err)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2, "%+v", got)
	assert.Equal(t, monitor.AlertIdleInTransaction, got[0].Kind)
	assert.True(t, got[0].Raised)
	assert.GreaterOrEqual(t, got[0].Age, 100*time.Millisecond)
	assert.False(t, got[1].Raised)
}

// Usage driven across 30 and 45 of 60 on a private server: Yellow and Red
// are reported once each, and Green only after the hysteresis.
func TestLevelsOnARealServer(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := ctxT(t)

	var changes []monitor.Level
	m := newMonitor(t, monitor.Config{URL: bed.AdminURL, OnChange: func(s monitor.Snapshot) {
		changes = append(changes, s.Level)
	}})
	// The watcher and the monitor are two of the backends counted.
	watch := open(t, bed.AdminURL, "levels-watch", 1)[0]
	poll := func(wantTotal int) monitor.Snapshot {
		t.Helper()
		require.Eventually(t, func() bool {
			var n int
			err := watch.QueryRow(ctx, `select count(*) from pg_stat_activity where backend_type = 'client backend'`).Scan(&n)
			// The monitor is between polls, idle but counted.
			return err == nil && n == wantTotal
		}, 20*time.Second, 10*time.Millisecond, "waiting for %d backends", wantTotal)
		s, err := m.Poll(ctx)
		require.NoError(t, err)
		require.Equal(t, wantTotal, s.Total)
		return s
	}

	// The monitor connects on its first poll.
	s, err := m.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, s.Total)
	assert.Equal(t, monitor.Green, s.Level)
	assert.Equal(t, 30.0, s.YellowAt)
	assert.Equal(t, 45.0, s.RedAbove)

	var conns []*pgx.Conn
	grow := func(n int) {
		conns = append(conns, open(t, bed.DirectURL, "levels-load", n)...)
	}
	shrink := func(n int) {
		for range n {
			conns[len(conns)-1].Close(ctx)
			conns = conns[:len(conns)-1]
		}
	}

	grow(27)
	assert.Equal(t, monitor.Green, poll(29).Level)
	grow(1)
	assert.Equal(t, monitor.Yellow, poll(30).Level)
	grow(15)
	assert.Equal(t, monitor.Yellow, poll(45).Level)
	assert.Equal(t, monitor.Yellow, poll(45).Level)
	grow(1)
	assert.Equal(t, monitor.Red, poll(46).Level)
	assert.Equal(t, monitor.Red, poll(46).Level)
	assert.Equal(t, []monitor.Level{monitor.Yellow, monitor.Red}, changes, "one call per transition")

	shrink(36)
	assert.Equal(t, monitor.Red, poll(10).Level, "first poll below: still red")
	assert.Equal(t, monitor.Red, poll(10).Level, "second poll below: still red")
	assert.Equal(t, monitor.Green, poll(10).Level, "third poll below: green")
	assert.Equal(t, monitor.Green, poll(10).Level)
	assert.Equal(t, []monitor.Level{monitor.Yellow, monitor.Red, monitor.Green}, changes)
}

// A restart while Run polls: the failure is reported once, the last
// snapshot is kept and marked stale, and polling recovers on its own. The
// test waits on what the monitor shows (its alerts and snapshots), never
// on the clock.
func TestServerRestartDuringPolling(t *testing.T) {
	noLeaks(t)
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := ctxT(t)
	failing := make(chan monitor.Alert, 16)
	m := newMonitor(t, monitor.Config{URL: bed.DirectURL, Interval: 20 * time.Millisecond, OnAlert: func(a monitor.Alert) {
		if a.Kind == monitor.AlertPollFailing {
			failing <- a
		}
	}})
	next := func(what string) monitor.Alert {
		t.Helper()
		select {
		case a := <-failing:
			return a
		case <-ctx.Done():
			t.Fatalf("no %s alert: %v", what, ctx.Err())
			return monitor.Alert{}
		}
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	stopped := false
	stopRun := func() {
		if !stopped {
			stopped = true
			stop()
			<-done
		}
	}
	t.Cleanup(stopRun)

	require.Eventually(t, func() bool { return !m.Snapshot().Stale }, 20*time.Second, 5*time.Millisecond)
	good := m.Snapshot()

	testbed.Fault(t, bed.StopPostgres(testbed.Fast))
	raised := next("raised")
	assert.True(t, raised.Raised)
	// The first failed poll kept the last good data; later failures keep
	// the same data and only count.
	first := m.Snapshot()
	require.True(t, first.Stale)
	require.Eventually(t, func() bool { return m.Snapshot().Failures >= first.Failures+2 }, 20*time.Second, 5*time.Millisecond)
	stale := m.Snapshot()
	assert.Contains(t, stale.Err, "monitor: ")
	assert.NotContains(t, stale.Err, "pw:", "errors must not leak the password")
	assert.Equal(t, good.MaxConnections, stale.MaxConnections, "last data kept")
	assert.False(t, stale.Time.Before(good.Time), "the data is the last good poll's, no older")
	assert.True(t, first.Time.Equal(stale.Time), "time is the last good poll's")
	assert.Equal(t, first.Groups, stale.Groups)
	assert.Equal(t, stale.Failed-first.Failed, uint64(stale.Failures-first.Failures), "each failure counted")

	testbed.Fault(t, bed.StartPostgres(ctx))
	cleared := next("cleared")
	assert.False(t, cleared.Raised)
	// The snapshot is published before its alerts are reported.
	fresh := m.Snapshot()
	assert.False(t, fresh.Stale)
	assert.Empty(t, fresh.Err)
	assert.Zero(t, fresh.Failures)
	assert.GreaterOrEqual(t, fresh.Failed, stale.Failed, "failed polls stay counted")
	assert.True(t, fresh.Time.After(good.Time))

	stopRun()
	assert.Empty(t, failing, "raised once, cleared once")
}

// A poll that cannot get a connection from the caller's pool fails after
// its timeout instead of queueing, and the next one succeeds.
func TestPollThroughPgxpoolSkipsWhenPoolIsFull(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	cfg, err := pgxpool.ParseConfig(bed.DirectURL)
	require.NoError(t, err)
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams["application_name"] = "pgxpool-full"
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Ping(ctx), "connect before the short timeouts start")

	m := newMonitor(t, monitor.Config{DB: p, Interval: time.Second, Timeout: 500 * time.Millisecond})
	s, err := m.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, appGroups(s, "pgxpool-full")["active"].Count, "the poll ran on the pool's connection")

	held, err := p.Acquire(ctx)
	require.NoError(t, err)
	s, err = m.Poll(ctx)
	require.Error(t, err)
	assert.True(t, s.Stale)
	assert.Equal(t, uint64(1), s.Failed)
	held.Release()

	s, err = m.Poll(ctx)
	require.NoError(t, err)
	assert.False(t, s.Stale)
	assert.Equal(t, uint64(3), s.Polls)
	assert.Equal(t, 1, int(p.Stat().TotalConns()), "the monitor never added a connection")
}

// The poll's one statement needs no prepared statement, so it also works
// through a transaction-mode pooler.
func TestPollThroughTransactionPooler(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	p, err := pgxpool.New(ctx, bed.PooledURL)
	require.NoError(t, err)
	defer p.Close()
	m := newMonitor(t, monitor.Config{DB: p})
	for range 5 {
		s, err := m.Poll(ctx)
		require.NoError(t, err)
		assert.Equal(t, 60, s.MaxConnections)
	}
}

func TestHandlerServesSnapshot(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	open(t, bed.DirectURL, "handler-app", 2)
	m := newMonitor(t, monitor.Config{URL: bed.AdminURL})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	res, err := http.Get(srv.URL)
	require.NoError(t, err)
	var before monitor.Snapshot
	require.NoError(t, json.NewDecoder(res.Body).Decode(&before))
	res.Body.Close()
	assert.True(t, before.Stale)
	assert.Equal(t, monitor.ErrNoPoll.Error(), before.Err)

	want, err := m.Poll(ctx)
	require.NoError(t, err)
	res, err = http.Get(srv.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var got monitor.Snapshot
	require.NoError(t, json.NewDecoder(res.Body).Decode(&got))
	assert.True(t, want.Time.Equal(got.Time))
	got.Time = want.Time
	assert.Equal(t, want, got)

	res2, err := http.Post(srv.URL, "text/plain", nil)
	require.NoError(t, err)
	res2.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, res2.StatusCode)
}

func TestRunStopsCleanly(t *testing.T) {
	bed := testbed.Start(t)
	ignore := goleak.IgnoreCurrent()
	m, err := monitor.New(monitor.Config{URL: bed.DirectURL, Interval: 20 * time.Millisecond, Timeout: 10 * time.Second})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	require.Eventually(t, func() bool { s := m.Snapshot(); return s.Polls >= 3 && !s.Stale }, 10*time.Second, 5*time.Millisecond)
	assert.ErrorIs(t, m.Run(ctx), monitor.ErrRunning)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.False(t, m.Snapshot().Stale, "stopping is not a failure")
	goleak.VerifyNone(t, ignore)
}

func BenchmarkPoll(b *testing.B) {
	bed := testbed.Start(b)
	ctx := context.Background()
	// A server with some company: 20 sessions under 4 applications.
	for i := range 4 {
		open(b, bed.DirectURL, fmt.Sprintf("bench-%d", i), 5)
	}
	m, err := monitor.New(monitor.Config{URL: bed.AdminURL})
	require.NoError(b, err)
	defer m.Close()
	_, err = m.Poll(ctx)
	require.NoError(b, err)
	var s monitor.Snapshot
	b.ReportAllocs()
	for b.Loop() {
		s, err = m.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(s.Groups)), "groups")
	b.ReportMetric(float64(s.PollDuration.Microseconds()), "last-poll-µs")
}
