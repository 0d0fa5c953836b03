package pool_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// BenchmarkExecModeCatalogJoin runs the catalog join (cheap to run,
// costly to plan) from parallel goroutines through PgBouncer 1.24 with
// named statement support: supapool's detected mode against pgxpool set
// by hand to cache_statement and to cache_describe (supapool's fixed
// default before the probe), 20 goroutines per core. Compare ns/op of the sub-benchmarks of one
// run; examples/bench -steps execmode prints ratios from alternated rounds.
func BenchmarkExecModeCatalogJoin(b *testing.B) {
	bed := testbed.Start(b)
	capable := testbed.TrixieBouncerT(b, bed, 200)
	benchExecModes(b, bed, capable.URL, bench.CatalogJoin, true)
}

// BenchmarkExecModeTrivial is BenchmarkExecModeCatalogJoin with a query
// that costs nothing to plan or run, so supapool's own work per call is
// what differs; through each of the three poolers. Profile one candidate
// with -bench 'ExecModeTrivial/capable/supapool' -cpuprofile.
func BenchmarkExecModeTrivial(b *testing.B) {
	bed := testbed.Start(b)
	capable := testbed.TrixieBouncerT(b, bed, 200)
	off := testbed.TrixieBouncerT(b, bed, 0)
	for _, pl := range []struct {
		name    string
		url     string
		capable bool
	}{{"capable", capable.URL, true}, {"off", off.URL, false}, {"bouncer118", bed.PooledURL, false}} {
		b.Run(pl.name, func(b *testing.B) { benchExecModes(b, bed, pl.url, bench.Trivial, pl.capable) })
	}
}

// benchExecModes runs q through url with supapool and with pgxpool set by
// hand to cache_describe, and to cache_statement where the pooler renames
// statements (elsewhere that fails with 42P05).
func benchExecModes(b *testing.B, bed *testbed.Bed, url string, q bench.Query, capable bool) {
	ctx := testCtx(b)
	sp := newPool(b, bed, func(c *pool.Config) { c.PooledURL = url; c.MaxConns = 40 })
	candidates := []struct {
		name string
		q    bench.Execer
	}{{"supapool", sp}}
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheDescribe}
	if capable {
		modes = append(modes, pgx.QueryExecModeCacheStatement)
	}
	for _, m := range modes {
		cfg, err := pgxpool.ParseConfig(url)
		require.NoError(b, err)
		cfg.MaxConns = 40
		cfg.ConnConfig.DefaultQueryExecMode = m
		raw, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(b, err)
		b.Cleanup(raw.Close)
		candidates = append(candidates, struct {
			name string
			q    bench.Execer
		}{"pgxpool_" + m.String(), raw})
	}
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(20) // 40 goroutines on 2 cores, as examples/bench
			b.RunParallel(func(pb *testing.PB) {
				dest := q.Dest()
				i := 0
				for pb.Next() {
					if err := c.q.QueryRow(ctx, q.SQL, q.Args(i)...).Scan(dest...); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
