package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/jackc/pgx/v5"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// pgbenchClients is the client count of the C-client ceiling: pgbench's
// connections and supapool's goroutines (and MaxConns) alike.
const pgbenchClients = 8

// pgbenchCeiling compares supapool with the C client: `pgbench -S`
// (select-only, scale 1) through PgBouncer 1.24 with named statement
// support (max_prepared_statements 200) and through the bed's PgBouncer
// 1.18, with the same client count, against supapool running the same
// query from as many goroutines for the same time, and against pgx set by
// hand to the exec mode supapool detects (so the gap splits into pgx's
// and supapool's shares). pgbench runs with
// -M extended everywhere and -M prepared on the capable pooler, on
// GOMAXPROCS threads. Every pool is made once and warmed; rounds
// alternate which runs first, and each ratio is the median of per-round
// ratios.
func pgbenchCeiling(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	bin, err := bench.Pgbench()
	if err != nil {
		return err
	}
	if err := bench.PgbenchInit(ctx, bin, bed.DirectURL); err != nil {
		return err
	}
	capable, err := bed.StartTrixieBouncer(ctx, 200)
	if err != nil {
		return err
	}
	defer capable.Close()
	threads := runtime.GOMAXPROCS(0)
	progress("C-client ceiling: %d clients, %d interleaved rounds of %v, pgbench -j %d", pgbenchClients, sz.pgbenchRounds, sz.pgbenchFor, threads)
	poolers := []struct {
		name, url string
		raw       pgx.QueryExecMode // pgx by hand, as supapool detects it
		rawName   string
		modes     []string // pgbench -M
	}{
		{"PgBouncer 1.24 (max_prepared_statements=200)", capable.URL, pgx.QueryExecModeCacheStatement, "cache_statement", []string{"extended", "prepared"}},
		{"PgBouncer 1.18", bed.PooledURL, pgx.QueryExecModeCacheDescribe, "cache_describe", []string{"extended"}},
	}
	for _, pl := range poolers {
		sp, err := pool.New(ctx, pool.Config{AppName: "bench", DirectURL: bed.DirectURL, PooledURL: pl.url, MaxConns: pgbenchClients})
		if err != nil {
			return err
		}
		defer sp.Close()
		raw, err := rawPool(ctx, pl.url, pgbenchClients, pl.raw)
		if err != nil {
			return err
		}
		defer raw.Close()
		goClients := []bench.Execer{sp, raw}
		for _, c := range goClients {
			bench.LoadQuery(ctx, c, pgbenchClients, 10, bench.AccountLookup)
		}
		// Candidates 0 and 1 are supapool and pgx by hand, i > 1 is
		// pgbench -M pl.modes[i-2].
		n := len(goClients) + len(pl.modes)
		tps := make([][]float64, n)
		ratios := make([][]float64, n)
		for round := 0; round < sz.pgbenchRounds; round++ {
			got := make([]float64, n)
			for k := range n {
				i := (k + round) % n
				if i < len(goClients) {
					r := bench.LoadFor(ctx, goClients[i], pgbenchClients, sz.pgbenchFor, bench.AccountLookup)
					if r.Errors > 0 {
						return fmt.Errorf("client %d through %s failed %d queries: %v", i, pl.name, r.Errors, r.Codes)
					}
					got[i] = r.QPS()
				} else if got[i], err = bench.PgbenchSelect(ctx, bin, pl.url, pl.modes[i-len(goClients)], pgbenchClients, threads, sz.pgbenchFor); err != nil {
					return err
				}
				tps[i] = append(tps[i], got[i])
			}
			for i := 1; i < n; i++ {
				ratios[i] = append(ratios[i], got[0]/got[i])
			}
		}
		st := sp.Stat().Pooled.ExecMode
		for i := 1; i < n; i++ {
			base := "pgx " + pl.rawName + " by hand"
			if i >= len(goClients) {
				base = "`pgbench -S -M " + pl.modes[i-len(goClients)] + "`"
			}
			fmt.Fprintf(out, "| C-client ceiling: %s, `%s`, %d clients, %d rounds of %v: supapool (detected %s) vs %s | %.0f tps, 0 errors | %.0f tps | %.2f× |\n",
				pl.name, bench.AccountLookup.SQL, pgbenchClients, sz.pgbenchRounds, sz.pgbenchFor, st.Mode, base, median(tps[0]), median(tps[i]), median(ratios[i]))
		}
	}
	return nil
}
