package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// detectedModes compares supapool's detected exec mode with pgx set by
// hand to cache_statement (pgx's default) and to cache_describe, through
// PgBouncer 1.24 with named statement support (max_prepared_statements
// 200) and without (0), and through the bed's PgBouncer 1.18. Every pool
// is made once and warmed; rounds alternate which runs first, and each
// ratio is the median of per-round ratios. A baseline that fails in the
// first round (pgx's default where the pooler passes names through) is
// shown failing and not run again. Rounds are many and short: on two
// cores shared with PgBouncer and PostgreSQL one round's throughput moves
// by ±25 % (measured), so a few long rounds say less than many short ones.
// Beside each ratio of throughput it prints the median ratio of the
// client's CPU per query (this process's, around each round): what
// supapool's own per-call work costs.
func detectedModes(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	capable, err := bed.StartTrixieBouncer(ctx, 200)
	if err != nil {
		return err
	}
	defer capable.Close()
	off, err := bed.StartTrixieBouncer(ctx, 0)
	if err != nil {
		return err
	}
	defer off.Close()
	rounds := sz.modeRounds
	progress("detected exec mode: %d goroutines × %d queries, 3 poolers × 2 queries, %d interleaved rounds", sz.modeGoroutines, sz.modeQueries, rounds)
	poolers := []struct{ name, url string }{
		{"PgBouncer 1.24 (max_prepared_statements=200)", capable.URL},
		{"PgBouncer 1.24 (max_prepared_statements=0)", off.URL},
		{"PgBouncer 1.18", bed.PooledURL},
	}
	hand := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"cache_statement by hand", pgx.QueryExecModeCacheStatement},
		{"cache_describe by hand", pgx.QueryExecModeCacheDescribe},
	}
	for _, pl := range poolers {
		sp, err := pool.New(ctx, pool.Config{AppName: "bench", DirectURL: bed.DirectURL, PooledURL: pl.url, MaxConns: int32(sz.modeGoroutines)})
		if err != nil {
			return err
		}
		defer sp.Close()
		candidates := []bench.Execer{sp}
		for _, h := range hand {
			p, err := rawPool(ctx, pl.url, int32(sz.modeGoroutines), h.mode)
			if err != nil {
				return err
			}
			defer p.Close()
			candidates = append(candidates, p)
		}
		for _, q := range []bench.Query{bench.Trivial, bench.CatalogJoin} {
			for _, c := range candidates {
				bench.LoadQuery(ctx, c, sz.modeGoroutines, 10, q)
			}
			qps := make([][]float64, len(candidates))
			ratios := make([][]float64, len(hand))
			cpuRatios := make([][]float64, len(hand)) // client CPU per query, supapool / baseline
			codes := make([]map[string]int64, len(candidates))
			for round := 0; round < rounds; round++ {
				got := make([]float64, len(candidates))
				cpu := make([]float64, len(candidates))
				for k := range candidates {
					i := (k + round) % len(candidates)
					if codes[i] != nil {
						continue // failed in an earlier round: shown failing
					}
					c0 := bench.ProcessCPU()
					r := bench.LoadQuery(ctx, candidates[i], sz.modeGoroutines, sz.modeQueries, q)
					cpu[i] = float64(bench.ProcessCPU()-c0) / float64(r.Queries)
					if i == 0 && r.Errors > 0 {
						return fmt.Errorf("supapool through %s failed %d queries: %v", pl.name, r.Errors, r.Codes)
					}
					if r.Errors > 0 {
						codes[i] = r.Codes
					}
					got[i] = r.QPS()
					qps[i] = append(qps[i], r.QPS())
				}
				for i := range hand {
					if codes[i+1] == nil {
						ratios[i] = append(ratios[i], got[0]/got[i+1])
						cpuRatios[i] = append(cpuRatios[i], cpu[0]/cpu[i+1])
					}
				}
			}
			st := sp.Stat().Pooled.ExecMode
			for i, h := range hand {
				ratio, base := "baseline fails", fmt.Sprintf("%.0f qps, errors: %v", median(qps[i+1]), codes[i+1])
				if codes[i+1] == nil {
					ratio = fmt.Sprintf("%.2f× (rounds %.2f–%.2f); client CPU per query %.2f×", median(ratios[i]), slices.Min(ratios[i]), slices.Max(ratios[i]), median(cpuRatios[i]))
					base = fmt.Sprintf("%.0f qps, 0 errors", median(qps[i+1]))
				}
				fmt.Fprintf(out, "| %s, %s, %d goroutines: supapool (detected %s) vs pgx %s | %.0f qps, 0 errors | %s | %s |\n",
					pl.name, q.Name, sz.modeGoroutines, strings.ReplaceAll(st.Mode.String(), " ", "_"), h.name, median(qps[0]), base, ratio)
			}
		}
	}
	return nil
}
