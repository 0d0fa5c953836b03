// Package prommonitor exports supapool's state as Prometheus metrics: a
// [monitor.Monitor]'s latest snapshot ([New]) and a [pool.Pool]'s
// counters ([NewPoolCollector]). It lives apart from packages monitor and
// pool so that services which do not use Prometheus do not link its
// client.
//
//	reg.MustRegister(prommonitor.NewPoolCollector(p.Stat), prommonitor.New(m))
//
// # Monitor
//
// The pg_stat_activity metrics reuse postgres_exporter's names and
// labels, so dashboards built for it keep working:
//
//	pg_stat_activity_count{datname,usename,application_name,state}
//	pg_stat_activity_max_tx_duration{datname,usename,application_name,state}
//
// Unlike postgres_exporter, only groups that have backends are exported
// (no zero series for absent states), and backends the monitor's role
// cannot see carry state="<insufficient privilege>". supapool's own
// metrics are prefixed supapool_:
//
//	supapool_connections                    client backends (Snapshot.Total)
//	supapool_max_connections                the server's max_connections
//	supapool_connection_level               0 green, 1 yellow, 2 red
//	supapool_connection_level_threshold{level="yellow"|"red"}
//	supapool_app_connections{application_name}      client backends per app (lanes and instances folded)
//	supapool_app_idle_in_transaction_max_seconds{application_name}
//	supapool_budget_connections{application_name}   plan's Conns per app
//	supapool_budget_used_connections{application_name}
//	supapool_budget_over{application_name}          1 when over budget
//	supapool_monitor_up                     0 when the latest poll failed
//	supapool_monitor_poll_duration_seconds
//	supapool_monitor_polls_total, supapool_monitor_failed_polls_total
//
// A scrape reads the latest snapshot and never queries the database. When
// the latest poll failed, only the supapool_monitor_* metrics are exported,
// with supapool_monitor_up 0: old data must not pass for current data.
//
// # Pool
//
// [NewPoolCollector] exports [pool.Stat] under supapool_pool_. The
// connection gauges are pgxpool collectors' (pgxpool_max_conns,
// pgxpool_total_conns, pgxpool_acquired_conns, pgxpool_idle_conns) with a
// route label, "pooled" or "direct"; the rest are supapool's own:
//
//	supapool_pool_route_info{route,mode}           1; mode transaction, session or direct
//	supapool_pool_max_conns{route}                 configured cap (0: route off)
//	supapool_pool_cap_conns{route}                 cap in force now
//	supapool_pool_total_conns{route}               opening ones included
//	supapool_pool_acquired_conns{route}
//	supapool_pool_idle_conns{route}
//	supapool_pool_routed_calls_total{route}
//	supapool_pool_connect_retries_total{route}     server or pooler full, retried
//	supapool_pool_server_full_errors_total{route}  callers that got ErrServerFull
//	supapool_pool_stale_retries_total{route}       statements rerun after a schema change
//	supapool_pool_refused_statements_total         session statements refused on pooled
//	supapool_pool_listener_connected               0 or 1
//	supapool_pool_listener_channels
//	supapool_pool_listener_delivered_notifications_total
//	supapool_pool_listener_dropped_notifications_total
//	supapool_pool_listener_handler_errors_total
//	supapool_pool_listener_reconnects_total
//
// Worth an alert: any rise of server_full_errors_total (callers failed
// with ErrServerFull) or refused_statements_total (code sends session
// statements to the pooled route), a steady rise of
// connect_retries_total (the server or pooler is full), and
// listener_connected 0 while listener_channels is above 0 (notifications
// are being missed). cap_conns below max_conns is normal on a quiet
// route: it climbs only as callers fill it.
package prommonitor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/supapool/supapool/monitor"
)

// Source is what the collector reads; *monitor.Monitor is one.
type Source interface {
	Snapshot() monitor.Snapshot
}

// Collector is a prometheus.Collector over a [Source].
type Collector struct {
	src Source

	count, maxTx                 *prometheus.Desc
	total, maxConns, level, thr  *prometheus.Desc
	budget, budgetUsed, overBudg *prometheus.Desc
	appConns, appIdleTx          *prometheus.Desc
	up, pollSeconds, polls, fail *prometheus.Desc
}

var activityLabels = []string{"datname", "usename", "application_name", "state"}

// New returns a collector for src's snapshots:
//
//	reg.MustRegister(prommonitor.New(m))
func New(src Source, opts ...Option) *Collector {
	app := []string{"application_name"}
	cl := newOptions(opts).constLabels
	return &Collector{
		src:         src,
		count:       prometheus.NewDesc("pg_stat_activity_count", "number of connections in this state", activityLabels, cl),
		maxTx:       prometheus.NewDesc("pg_stat_activity_max_tx_duration", "max duration in seconds any active transaction has been running", activityLabels, cl),
		total:       prometheus.NewDesc("supapool_connections", "client backends on the server, hidden ones and the monitor's own included", nil, cl),
		maxConns:    prometheus.NewDesc("supapool_max_connections", "the server's max_connections", nil, cl),
		level:       prometheus.NewDesc("supapool_connection_level", "connection level after hysteresis: 0 green, 1 yellow, 2 red", nil, cl),
		thr:         prometheus.NewDesc("supapool_connection_level_threshold", "connections at which yellow begins and above which red begins", []string{"level"}, cl),
		appConns:    prometheus.NewDesc("supapool_app_connections", "client backends of the app, its lanes and instances folded in", app, cl),
		appIdleTx:   prometheus.NewDesc("supapool_app_idle_in_transaction_max_seconds", "longest time one of the app's sessions has sat idle inside a transaction", app, cl),
		budget:      prometheus.NewDesc("supapool_budget_connections", "connections the budget plan allows the app, all instances together", app, cl),
		budgetUsed:  prometheus.NewDesc("supapool_budget_used_connections", "connections a planned app holds", app, cl),
		overBudg:    prometheus.NewDesc("supapool_budget_over", "1 when the app holds more connections than its budget", app, cl),
		up:          prometheus.NewDesc("supapool_monitor_up", "1 when the latest poll succeeded", nil, cl),
		pollSeconds: prometheus.NewDesc("supapool_monitor_poll_duration_seconds", "duration of the latest poll", nil, cl),
		polls:       prometheus.NewDesc("supapool_monitor_polls_total", "polls attempted", nil, cl),
		fail:        prometheus.NewDesc("supapool_monitor_failed_polls_total", "polls that failed", nil, cl),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.count, c.maxTx, c.total, c.maxConns, c.level, c.thr,
		c.appConns, c.appIdleTx, c.budget, c.budgetUsed, c.overBudg, c.up, c.pollSeconds, c.polls, c.fail} {
		ch <- d
	}
}

// Collect sends the latest snapshot's metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up := 1.0
	if s.Stale {
		up = 0
	}
	gauge(c.up, up)
	gauge(c.pollSeconds, s.PollDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(s.Polls))
	ch <- prometheus.MustNewConstMetric(c.fail, prometheus.CounterValue, float64(s.Failed))
	if s.Stale {
		return
	}
	for _, g := range s.Groups {
		gauge(c.count, float64(g.Count), g.Database, g.User, g.Application, g.State)
		gauge(c.maxTx, g.LongestXact.Seconds(), g.Database, g.User, g.Application, g.State)
	}
	gauge(c.total, float64(s.Total))
	gauge(c.maxConns, float64(s.MaxConnections))
	gauge(c.level, float64(s.Level))
	gauge(c.thr, s.YellowAt, "yellow")
	gauge(c.thr, s.RedAbove, "red")
	for _, a := range s.Apps {
		gauge(c.appConns, float64(a.Total), a.Application)
		gauge(c.appIdleTx, a.LongestIdleInTx.Seconds(), a.Application)
		if !a.Planned {
			continue
		}
		over := 0.0
		if a.Over {
			over = 1
		}
		gauge(c.budget, float64(a.Budget), a.Application)
		gauge(c.budgetUsed, float64(a.Total), a.Application)
		gauge(c.overBudg, over, a.Application)
	}
}
