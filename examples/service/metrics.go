package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/supapool/supapool/pool"
)

// poolCollector exports pool.Stat at scrape time. Reading Stat is a few
// atomic loads, so scrapes cost the pool nothing.
type poolCollector struct {
	p *pool.Pool

	conns, maxConns, capConns                   *prometheus.Desc
	routed, retried, serverFull, staleRetries   *prometheus.Desc
	refused                                     *prometheus.Desc
	listenerUp, delivered, dropped, handlerErrs *prometheus.Desc
	reconnects                                  *prometheus.Desc
}

func newPoolCollector(p *pool.Pool) *poolCollector {
	route := []string{"route"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("supapool_pool_"+name, help, labels, nil)
	}
	return &poolCollector{
		p:            p,
		conns:        d("connections", "Connections this instance holds, by route and state (acquired, idle, opening).", "route", "state"),
		maxConns:     d("max_connections", "Configured cap on the route's connections.", route...),
		capConns:     d("cap_connections", "Cap in force now: lower than max while the server has recently said it is full.", route...),
		routed:       d("routed_total", "Calls sent to the route.", route...),
		retried:      d("retried_total", "Connection attempts refused because the server or pooler was full, and retried.", route...),
		serverFull:   d("server_full_total", "Calls that gave up waiting for a connection (ErrServerFull).", route...),
		staleRetries: d("stale_retries_total", "Statements run again after a schema change made a cached description stale.", route...),
		refused:      d("refused_total", "Session statements refused on the pooled route."),
		listenerUp:   d("listener_connected", "1 while the listener holds its connection."),
		delivered:    d("listener_delivered_total", "Notifications handed to handlers."),
		dropped:      d("listener_dropped_total", "Notifications lost to full queues."),
		handlerErrs:  d("listener_handler_errors_total", "Notification handler errors and panics."),
		reconnects:   d("listener_reconnects_total", "Listener recoveries after a lost connection; notifications in between were lost."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.conns, c.maxConns, c.capConns, c.routed, c.retried, c.serverFull, c.staleRetries,
		c.refused, c.listenerUp, c.delivered, c.dropped, c.handlerErrs, c.reconnects,
	} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stat()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, r := range []struct {
		name string
		s    pool.RouteStat
	}{{pool.Pooled.String(), s.Pooled}, {pool.Direct.String(), s.Direct}} {
		// TotalConns counts connections being opened too.
		opening := r.s.TotalConns - r.s.AcquiredConns - r.s.IdleConns
		gauge(c.conns, float64(r.s.AcquiredConns), r.name, "acquired")
		gauge(c.conns, float64(r.s.IdleConns), r.name, "idle")
		gauge(c.conns, float64(max(opening, 0)), r.name, "opening")
		gauge(c.maxConns, float64(r.s.MaxConns), r.name)
		gauge(c.capConns, float64(r.s.Cap), r.name)
		counter(c.routed, r.s.Routed, r.name)
		counter(c.retried, r.s.Retried, r.name)
		counter(c.serverFull, r.s.ServerFull, r.name)
		counter(c.staleRetries, r.s.StaleRetries, r.name)
	}
	counter(c.refused, s.Refused)
	up := 0.0
	if s.Listener.Connected {
		up = 1
	}
	gauge(c.listenerUp, up)
	counter(c.delivered, s.Listener.Delivered)
	counter(c.dropped, s.Listener.Dropped)
	counter(c.handlerErrs, s.Listener.HandlerErrors)
	counter(c.reconnects, s.Listener.Reconnects)
}
