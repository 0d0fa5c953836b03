package prommonitor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor/prommonitor"
	"github.com/supapool/supapool/pool"
)

// expectedPool renders the metrics a Stat should produce, written out
// independently of the collector. labels is "" or `k="v",` with k
// sorting before "mode", as the exposition format orders labels.
func expectedPool(s pool.Stat, labels string) string {
	var b strings.Builder
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP supapool_pool_%s %s\n# TYPE supapool_pool_%s %s\n", name, help, name, typ)
	}
	routes := []struct {
		name string
		s    pool.RouteStat
	}{{"pooled", s.Pooled}, {"direct", s.Direct}}
	perRoute := func(name, typ, help string, v func(pool.RouteStat) int64) {
		family(name, typ, help)
		for _, r := range routes {
			fmt.Fprintf(&b, "supapool_pool_%s{%sroute=%q} %d\n", name, labels, r.name, v(r.s))
		}
	}
	single := func(name, typ, help string, v int64) {
		family(name, typ, help)
		l := strings.TrimSuffix(labels, ",")
		if l != "" {
			l = "{" + l + "}"
		}
		fmt.Fprintf(&b, "supapool_pool_%s%s %d\n", name, l, v)
	}
	family("route_info", "gauge", "Always 1; mode says what the route's URL reaches: transaction or session (a pooler), or direct (PostgreSQL itself).")
	for _, r := range routes {
		if r.s.MaxConns > 0 {
			fmt.Fprintf(&b, "supapool_pool_route_info{%smode=%q,route=%q} 1\n", labels, r.s.Mode, r.name)
		}
	}
	perRoute("max_conns", "gauge", "Configured cap on the route's connections in this instance (0: the route is off).", func(r pool.RouteStat) int64 { return int64(r.MaxConns) })
	perRoute("cap_conns", "gauge", "Cap in force now: it climbs to max_conns one connection at a time as callers fill it, and drops when the server says it is full.", func(r pool.RouteStat) int64 { return int64(r.Cap) })
	perRoute("total_conns", "gauge", "Connections the route holds, those being opened included.", func(r pool.RouteStat) int64 { return int64(r.TotalConns) })
	perRoute("acquired_conns", "gauge", "Connections in use.", func(r pool.RouteStat) int64 { return int64(r.AcquiredConns) })
	perRoute("idle_conns", "gauge", "Connections open and idle.", func(r pool.RouteStat) int64 { return int64(r.IdleConns) })
	perRoute("routed_calls_total", "counter", "Calls sent to the route.", func(r pool.RouteStat) int64 { return r.Routed })
	perRoute("connect_retries_total", "counter", "Connection attempts refused because the server or pooler was full, then tried again.", func(r pool.RouteStat) int64 { return r.Retried })
	perRoute("server_full_errors_total", "counter", "Callers whose context ended while waiting for a full server; they got ErrServerFull.", func(r pool.RouteStat) int64 { return r.ServerFull })
	perRoute("stale_retries_total", "counter", "Statements run again because a schema change made a cached description stale.", func(r pool.RouteStat) int64 { return r.StaleRetries })
	single("refused_statements_total", "counter", "Session statements refused on the pooled route (ErrSessionStatement).", s.Refused)
	connected := int64(0)
	if s.Listener.Connected {
		connected = 1
	}
	single("listener_connected", "gauge", "1 while the listener holds its connection.", connected)
	single("listener_channels", "gauge", "Channels the listener listens to.", s.Listener.Channels)
	single("listener_delivered_notifications_total", "counter", "Notifications handed to handlers.", s.Listener.Delivered)
	single("listener_dropped_notifications_total", "counter", "Notifications lost to full handler queues.", s.Listener.Dropped)
	single("listener_handler_errors_total", "counter", "Notification handler errors and panics.", s.Listener.HandlerErrors)
	single("listener_reconnects_total", "counter", "Listener recoveries after a lost connection; notifications sent in between were lost.", s.Listener.Reconnects)
	return b.String()
}

// value reads one series from g: name with route label route ("" for
// none).
func value(t *testing.T, g prometheus.Gatherer, name, route string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					got = l.GetValue()
				}
			}
			if got != route {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s{route=%q}", name, route)
	return 0
}

// A pool on the real servers runs calls on both routes, a refused
// statement and a notification; the collector reports what the pool
// counted, each route under its own label.
func TestPoolCollectorMatchesPoolStat(t *testing.T) {
	bed := testbed.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	p, err := pool.New(ctx, pool.Config{
		AppName:        "prom-pool",
		DirectURL:      bed.DirectURL,
		PooledURL:      bed.PooledURL,
		MaxConns:       3,
		MaxDirectConns: 2,
	})
	require.NoError(t, err)
	defer p.Close()

	got := make(chan string, 1)
	require.NoError(t, p.Listener().Listen(ctx, "prom_pool", func(_ context.Context, n *pgconn.Notification) error {
		got <- n.Payload
		return nil
	}))
	require.NoError(t, p.Notify(ctx, "prom_pool", "hello"))
	select {
	case s := <-got:
		require.Equal(t, "hello", s)
	case <-ctx.Done():
		t.Fatal("no notification")
	}
	require.Eventually(t, func() bool { return p.Stat().Listener.Delivered == 1 }, 10*time.Second, 10*time.Millisecond)

	before := p.Stat()
	const pooledCalls, directCalls = 5, 2
	for i := range pooledCalls {
		var n int
		require.NoError(t, p.QueryRow(ctx, "select $1::int", i).Scan(&n))
	}
	for range directCalls {
		c, err := p.Acquire(ctx, pool.Direct)
		require.NoError(t, err)
		_, err = c.Exec(ctx, "select 1")
		c.Release()
		require.NoError(t, err)
	}
	_, err = p.Exec(ctx, "set search_path = public")
	require.ErrorIs(t, err, pool.ErrSessionStatement)

	// The live collector, as a service registers it.
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(prommonitor.NewPoolCollector(p.Stat)))
	now := p.Stat()
	require.EqualValues(t, before.Pooled.Routed+pooledCalls, now.Pooled.Routed, "the pool counted the pooled calls")
	require.EqualValues(t, before.Direct.Routed+directCalls, now.Direct.Routed, "the pool counted the direct calls")
	require.NotEqual(t, now.Pooled.Routed, now.Direct.Routed, "the routes must differ for the label check to mean anything")
	assert.EqualValues(t, now.Pooled.Routed, value(t, reg, "supapool_pool_routed_calls_total", "pooled"))
	assert.EqualValues(t, now.Direct.Routed, value(t, reg, "supapool_pool_routed_calls_total", "direct"))
	assert.EqualValues(t, 3, value(t, reg, "supapool_pool_max_conns", "pooled"))
	assert.EqualValues(t, 2, value(t, reg, "supapool_pool_max_conns", "direct"))
	assert.EqualValues(t, before.Refused+1, value(t, reg, "supapool_pool_refused_statements_total", ""))
	assert.EqualValues(t, 1, value(t, reg, "supapool_pool_listener_connected", ""))
	assert.EqualValues(t, 1, value(t, reg, "supapool_pool_listener_channels", ""))
	assert.EqualValues(t, 1, value(t, reg, "supapool_pool_listener_delivered_notifications_total", ""))
	assert.GreaterOrEqual(t, value(t, reg, "supapool_pool_idle_conns", "pooled"), 1.0)
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 2+2*9+7, n, "two route_info, nine series per route, seven pool-wide")

	// Every series, against the same Stat rendered by hand. The stat is
	// frozen so that background work cannot slip in between.
	assert.Equal(t, pool.TransactionPooler, now.Pooled.Mode)
	assert.Equal(t, pool.NoPooler, now.Direct.Mode)
	frozen := prommonitor.NewPoolCollector(func() pool.Stat { return now })
	require.NoError(t, testutil.CollectAndCompare(frozen, strings.NewReader(expectedPool(now, ""))))

	problems, err := testutil.CollectAndLint(prommonitor.NewPoolCollector(p.Stat))
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// Each field of a Stat lands in its own series: with every value
// distinct, a swapped field or route shows.
func TestPoolCollectorMapsEveryField(t *testing.T) {
	next := int64(0)
	n := func() int64 { next++; return next }
	route := func(mode pool.PoolerMode) pool.RouteStat {
		return pool.RouteStat{
			Mode: mode, MaxConns: int32(n()), Cap: int32(n()),
			TotalConns: int32(n()), AcquiredConns: int32(n()), IdleConns: int32(n()),
			Routed: n(), Retried: n(), ServerFull: n(), StaleRetries: n(),
		}
	}
	s := pool.Stat{Pooled: route(pool.TransactionPooler), Direct: route(pool.NoPooler), Refused: n(),
		Listener: pool.ListenerStat{Connected: true, Channels: n(), Delivered: n(), Dropped: n(), HandlerErrors: n(), Reconnects: n()}}
	c := prommonitor.NewPoolCollector(func() pool.Stat { return s })
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(expectedPool(s, ""))))

	// A route that is off has no route_info, and zeros elsewhere.
	s.Direct = pool.RouteStat{}
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(expectedPool(s, ""))))
	assert.Equal(t, 1, testutil.CollectAndCount(c, "supapool_pool_route_info"))
}

func TestConstLabels(t *testing.T) {
	s := pool.Stat{Pooled: pool.RouteStat{Mode: pool.TransactionPooler, MaxConns: 4, Routed: 7}}
	c := prommonitor.NewPoolCollector(func() pool.Stat { return s },
		prommonitor.WithConstLabels(prometheus.Labels{"app": "orders"}))
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(expectedPool(s, `app="orders",`))))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)

	// The monitor's collector takes the same option.
	m := staleMonitor(t)
	mc := prommonitor.New(m, prommonitor.WithConstLabels(prometheus.Labels{"app": "orders"}))
	require.NoError(t, testutil.CollectAndCompare(mc, strings.NewReader(`# HELP supapool_monitor_up 1 when the latest poll succeeded
# TYPE supapool_monitor_up gauge
supapool_monitor_up{app="orders"} 0
`), "supapool_monitor_up"))

	// A label the collector sets itself cannot be a constant one.
	bad := prommonitor.NewPoolCollector(func() pool.Stat { return s },
		prommonitor.WithConstLabels(prometheus.Labels{"route": "x"}))
	assert.Error(t, prometheus.NewRegistry().Register(bad))
}
