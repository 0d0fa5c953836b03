package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/supapool/supapool/monitor/prommonitor"
	"github.com/supapool/supapool/pool"
)

// newPoolCollector exports p.Stat() at scrape time as supapool_pool_*
// metrics (see package prommonitor for the names). Reading Stat is a few
// atomic loads, so scrapes cost the pool nothing.
func newPoolCollector(p *pool.Pool) prometheus.Collector {
	return prommonitor.NewPoolCollector(p.Stat)
}
