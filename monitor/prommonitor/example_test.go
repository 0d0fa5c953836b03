package prommonitor_test

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/supapool/supapool/monitor"
	"github.com/supapool/supapool/monitor/prommonitor"
	"github.com/supapool/supapool/pool"
)

// A service exports its pool's counters and the monitor's view of the
// server on one registry.
func ExampleNewPoolCollector() {
	ctx := context.Background()
	p, err := pool.NewFromEnv(ctx)
	if err != nil {
		panic(err)
	}
	defer p.Close()
	m, err := monitor.New(monitor.Config{DB: p})
	if err != nil {
		panic(err)
	}
	go func() { _ = m.Run(ctx) }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(prommonitor.NewPoolCollector(p.Stat), prommonitor.New(m))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}
