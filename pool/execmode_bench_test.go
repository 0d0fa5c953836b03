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
// default before the probe). Compare ns/op of the sub-benchmarks of one
// run; examples/bench -steps execmode prints ratios from alternated rounds.
func BenchmarkExecModeCatalogJoin(b *testing.B) {
	bed := testbed.Start(b)
	capable := testbed.TrixieBouncerT(b, bed, 200)
	ctx := testCtx(b)
	sp := newPool(b, bed, func(c *pool.Config) { c.PooledURL = capable.URL; c.MaxConns = 8 })
	candidates := []struct {
		name string
		q    bench.Execer
	}{{"supapool", sp}}
	for _, m := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe} {
		cfg, err := pgxpool.ParseConfig(capable.URL)
		require.NoError(b, err)
		cfg.MaxConns = 8
		cfg.ConnConfig.DefaultQueryExecMode = m
		raw, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(b, err)
		defer raw.Close()
		candidates = append(candidates, struct {
			name string
			q    bench.Execer
		}{"pgxpool_" + m.String(), raw})
	}
	q := bench.CatalogJoin
	for _, c := range candidates {
		b.Run(c.name, func(b *testing.B) {
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
