package pool_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// BenchmarkQueryRow compares a pooled QueryRow through supapool with raw
// pgxpool configured by hand the same way (CacheDescribe, same cap), both
// through the transaction pooler. Compare ns/op of the two sub-benchmarks
// of one run; examples/bench prints the ratio from interleaved rounds.
func BenchmarkQueryRow(b *testing.B) {
	bed := testbed.Start(b)
	ctx := testCtx(b)
	cfg, err := pgxpool.ParseConfig(bed.PooledURL)
	require.NoError(b, err)
	cfg.MaxConns = 4
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	raw, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	defer raw.Close()
	sp := newPool(b, bed, func(c *pool.Config) { c.MaxConns = 4 })

	for _, c := range []struct {
		name string
		q    bench.Execer
	}{{"pgxpool", raw}, {"supapool", sp}} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			for i := 0; i < b.N; i++ {
				if err := c.q.QueryRow(ctx, "select $1::int + 1", i).Scan(&n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStorm runs the 28-pool storm (7 apps × 4 instances × 10
// goroutines × 200 queries, 60 connections) side by side: plain pgxpool
// and supapool with caps too high (4), and with caps that fit (2).
func BenchmarkStorm(b *testing.B) {
	bed := testbed.NewT(b, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(b)
	for _, c := range []struct {
		name  string
		caps  int32
		plain bool
	}{{"pgxpool/caps=4", 4, true}, {"supapool/caps=4", 4, false}, {"supapool/caps=2", 2, false}, {"pgxpool/caps=2", 2, true}} {
		b.Run(c.name, func(b *testing.B) {
			var total bench.Result
			for i := 0; i < b.N; i++ {
				r, err := bench.RunStorm(ctx, bed.DirectURL, bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: 200, Caps: bench.Fixed(c.caps), Plain: c.plain})
				require.NoError(b, err)
				total.Queries += r.Queries
				total.Errors += r.Errors
				total.Elapsed += r.Elapsed
			}
			b.ReportMetric(total.QPS(), "ok-qps")
			b.ReportMetric(100*total.ErrorRate(), "%errors")
		})
	}
}

// BenchmarkListener measures notification throughput and latency through
// the Listener and through a hand-written WaitForNotification loop.
func BenchmarkListener(b *testing.B) {
	bed := testbed.Start(b)
	ctx := testCtx(b)
	const n = 5000
	report := func(b *testing.B, recv chan string, channel string) {
		var lat bench.Latency
		for i := 0; i < b.N; i++ {
			var err error
			lat, err = bench.Listen(ctx, bed.DirectURL, channel, n, recv)
			require.NoError(b, err)
			require.Zero(b, lat.Missing)
		}
		b.ReportMetric(lat.PerSecond, "notifications/s")
		b.ReportMetric(float64(lat.P50.Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat.P99.Microseconds()), "p99-µs")
	}
	b.Run("raw", func(b *testing.B) {
		recv := make(chan string, n)
		stop, err := bench.RawListener(ctx, bed.DirectURL, "bench_raw", recv)
		require.NoError(b, err)
		defer stop()
		report(b, recv, "bench_raw")
	})
	b.Run("supapool", func(b *testing.B) {
		recv := make(chan string, n)
		p := newPool(b, bed, func(c *pool.Config) { c.ListenerQueueSize = n })
		require.NoError(b, p.Listener().Listen(ctx, "bench_listener", func(_ context.Context, nt *pgconn.Notification) error {
			recv <- nt.Payload
			return nil
		}))
		report(b, recv, "bench_listener")
	})
}
