package prommonitor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/supapool/supapool/pool"
)

// Option configures a collector.
type Option func(*options)

type options struct {
	constLabels prometheus.Labels
}

// WithConstLabels adds labels with fixed values to every metric, such as
// pool="orders" to tell apart two pools in one process. Prometheus adds
// job and instance when it scrapes, so an app or host label is seldom
// needed. A label the collector sets itself (route, for example) makes
// registration fail.
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) {
		if o.constLabels == nil {
			o.constLabels = prometheus.Labels{}
		}
		for k, v := range l {
			o.constLabels[k] = v
		}
	}
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// PoolCollector is a prometheus.Collector over [pool.Stat].
type PoolCollector struct {
	stat func() pool.Stat

	info                                      *prometheus.Desc
	maxConns, capConns                        *prometheus.Desc
	totalConns, acquiredConns, idleConns      *prometheus.Desc
	routed, retried, serverFull, staleRetries *prometheus.Desc
	refused                                   *prometheus.Desc
	lConnected, lChannels                     *prometheus.Desc
	lDelivered, lDropped, lHandlerErrors      *prometheus.Desc
	lReconnects                               *prometheus.Desc
}

// NewPoolCollector returns a collector that calls stat once per scrape;
// pass (*pool.Pool).Stat:
//
//	reg.MustRegister(prommonitor.NewPoolCollector(p.Stat))
//
// Reading a Stat costs a few atomic loads and never touches the
// database. The connection gauges mirror pgxpool collectors'
// (pgxpool_total_conns and so on) with a route label, "pooled" or
// "direct"; see the package documentation for every name. stat must not
// be nil.
func NewPoolCollector(stat func() pool.Stat, opts ...Option) *PoolCollector {
	if stat == nil {
		panic("prommonitor: NewPoolCollector with a nil stat func")
	}
	o := newOptions(opts)
	route := []string{"route"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("supapool_pool_"+name, help, labels, o.constLabels)
	}
	return &PoolCollector{
		stat:           stat,
		info:           d("route_info", "Always 1; mode says what the route's URL reaches: transaction or session (a pooler), or direct (PostgreSQL itself).", []string{"route", "mode"}),
		maxConns:       d("max_conns", "Configured cap on the route's connections in this instance (0: the route is off).", route),
		capConns:       d("cap_conns", "Cap in force now: it climbs to max_conns one connection at a time as callers fill it, and drops when the server says it is full.", route),
		totalConns:     d("total_conns", "Connections the route holds, those being opened included.", route),
		acquiredConns:  d("acquired_conns", "Connections in use.", route),
		idleConns:      d("idle_conns", "Connections open and idle.", route),
		routed:         d("routed_calls_total", "Calls sent to the route.", route),
		retried:        d("connect_retries_total", "Connection attempts refused because the server or pooler was full, then tried again.", route),
		serverFull:     d("server_full_errors_total", "Callers whose context ended while waiting for a full server; they got ErrServerFull.", route),
		staleRetries:   d("stale_retries_total", "Statements run again because a schema change made a cached description stale.", route),
		refused:        d("refused_statements_total", "Session statements refused on the pooled route (ErrSessionStatement).", nil),
		lConnected:     d("listener_connected", "1 while the listener holds its connection.", nil),
		lChannels:      d("listener_channels", "Channels the listener listens to.", nil),
		lDelivered:     d("listener_delivered_notifications_total", "Notifications handed to handlers.", nil),
		lDropped:       d("listener_dropped_notifications_total", "Notifications lost to full handler queues.", nil),
		lHandlerErrors: d("listener_handler_errors_total", "Notification handler errors and panics.", nil),
		lReconnects:    d("listener_reconnects_total", "Listener recoveries after a lost connection; notifications sent in between were lost.", nil),
	}
}

// Describe sends every metric's description.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info, c.maxConns, c.capConns, c.totalConns, c.acquiredConns, c.idleConns,
		c.routed, c.retried, c.serverFull, c.staleRetries, c.refused,
		c.lConnected, c.lChannels, c.lDelivered, c.lDropped, c.lHandlerErrors, c.lReconnects,
	} {
		ch <- d
	}
}

// Collect sends the metrics of one Stat. Both routes are always exported,
// a route that is off with zeros and no route_info, so series do not come
// and go.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, r := range []struct {
		route pool.Route
		s     pool.RouteStat
	}{{pool.Pooled, s.Pooled}, {pool.Direct, s.Direct}} {
		name := r.route.String()
		if r.s.MaxConns > 0 {
			gauge(c.info, 1, name, r.s.Mode.String())
		}
		gauge(c.maxConns, float64(r.s.MaxConns), name)
		gauge(c.capConns, float64(r.s.Cap), name)
		gauge(c.totalConns, float64(r.s.TotalConns), name)
		gauge(c.acquiredConns, float64(r.s.AcquiredConns), name)
		gauge(c.idleConns, float64(r.s.IdleConns), name)
		counter(c.routed, r.s.Routed, name)
		counter(c.retried, r.s.Retried, name)
		counter(c.serverFull, r.s.ServerFull, name)
		counter(c.staleRetries, r.s.StaleRetries, name)
	}
	counter(c.refused, s.Refused)
	connected := 0.0
	if s.Listener.Connected {
		connected = 1
	}
	gauge(c.lConnected, connected)
	gauge(c.lChannels, float64(s.Listener.Channels))
	counter(c.lDelivered, s.Listener.Delivered)
	counter(c.lDropped, s.Listener.Dropped)
	counter(c.lHandlerErrors, s.Listener.HandlerErrors)
	counter(c.lReconnects, s.Listener.Reconnects)
}
