package pool_test

import (
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestZZScratchCPU(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	ctx := testCtx(t)
	sp := newPool(t, bed, func(c *pool.Config) { c.PooledURL = capable.URL; c.MaxConns = 40 })
	cfg, err := pgxpool.ParseConfig(capable.URL)
	require.NoError(t, err)
	cfg.MaxConns = 40
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	raw, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer raw.Close()
	cands := []bench.Execer{sp, raw}
	for _, c := range cands {
		bench.LoadQuery(ctx, c, 40, 50, bench.Trivial)
	}
	var ratios, cpur []float64
	for round := 0; round < 20; round++ {
		var qps, cpu [2]float64
		for k := range cands {
			i := (k + round) % 2
			c0 := cpuNow()
			r := bench.LoadQuery(ctx, cands[i], 40, 250, bench.Trivial)
			cpu[i] = float64(cpuNow()-c0) / float64(r.Queries) / 1e3
			qps[i] = r.QPS()
		}
		ratios = append(ratios, qps[0]/qps[1])
		cpur = append(cpur, cpu[0]/cpu[1])
		fmt.Printf("round %d: qps %.0f %.0f ratio %.2f | client cpu us/q %.1f %.1f\n", round, qps[0], qps[1], qps[0]/qps[1], cpu[0], cpu[1])
	}
	sort.Float64s(ratios)
	sort.Float64s(cpur)
	fmt.Printf("median qps ratio %.3f, cpu ratio %.3f\n", ratios[10], cpur[10])
}
