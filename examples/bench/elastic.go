package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
)

// elasticSizes is the elastic step's share of sizes.
type elasticSizes struct {
	rounds       int           // alternated rounds of the storms
	queries      int           // per goroutine in a storm
	flowRounds   int           // alternated rounds of come-and-go vs a fixed population
	flowFor      time.Duration // each come-and-go (and fixed) run
	flowEvery    time.Duration // an instance comes or goes this often
	fitsFor      time.Duration // the budget that fits
	steadyRounds int           // alternated rounds of steady load, caps 4 + sharing vs the budget's caps 2
	steadyFor    time.Duration // each steady run
}

// elasticSizesFor derives the step's sizes from the run's: full sizes,
// or small ones under -quick (stormQueries below 200).
func elasticSizesFor(sz sizes) elasticSizes {
	if sz.stormQueries < 200 {
		return elasticSizes{rounds: 1, queries: sz.stormQueries, flowRounds: 1, flowFor: 6 * time.Second, flowEvery: time.Second, fitsFor: 3 * time.Second, steadyRounds: 1, steadyFor: 2 * time.Second}
	}
	return elasticSizes{rounds: 9, queries: sz.stormQueries, flowRounds: 2, flowFor: 60 * time.Second, flowEvery: 3 * time.Second, fitsFor: 30 * time.Second, steadyRounds: 3, steadyFor: 10 * time.Second}
}

// elastic measures elastic sharing (pool/elastic.go) on the seed's storm:
// 28 pools (7 apps × 4 instances) × 10 goroutines on a server of 60
// connections, no pooler. Caps 4 (too high: 112 > 57 usable) with sharing,
// with the budget's weights and without any budget file, against the
// budget's caps 2, all supapool, on a query that holds its connection for
// a millisecond and on a cheap one; rounds alternate the order of the
// three and each ratio is the median of per-round ratios. Then the same
// two populations under steady load for a time (caps 4 + sharing without
// a budget file against the budget's caps 2), instances that come and go
// against a fixed population, and a budget that fits.
func elastic(ctx context.Context, _ *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	es := elasticSizesFor(sz)
	// A server of its own, no pooler: the other rows' PgBouncer keeps
	// server connections open.
	bed, err := testbed.New(ctx, testbed.Options{MaxConnections: 60, NoPooler: true})
	if err != nil {
		return err
	}
	defer bed.Close()
	dir, err := os.MkdirTemp("", "supapool-bench-elastic")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base := bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: es.queries}
	planned, spec, err := bench.PlannedCaps(base, dir)
	if err != nil {
		return err
	}
	cases := []struct {
		name   string
		caps   func(string) int32
		budget string
	}{
		{"budget caps 2", planned, spec},
		{"caps 4 + sharing, budget weights", bench.Fixed(4), spec},
		{"caps 4 + sharing, no budget file", bench.Fixed(4), ""},
	}
	cell := func(r []bench.ElasticResult) string {
		var qps, spread []float64
		var errs, opened, closed int64
		for _, x := range r {
			qps = append(qps, x.QPS())
			spread = append(spread, x.Spread)
			errs += x.Errors
			opened = max(opened, x.Opened)
			closed = max(closed, x.ElasticClosed)
		}
		s := fmt.Sprintf("%.0f qps, %d errors, ≤ %d connections opened, ≤ %d closed by sharing", median(qps), errs, opened, closed)
		if spread[0] > 0 {
			// Flows run for a time: every pool ends together.
			s += fmt.Sprintf(", slowest pool %.2f× the median's time", median(spread))
		}
		return s
	}
	queries := []struct{ name, sql string }{{"`pg_sleep(0.001)`", bench.QuerySleep}, {"`select $1::int + 1`", bench.QueryAdd}}
	for _, q := range queries {
		got := make([][]bench.ElasticResult, len(cases))
		ratios := make([][]float64, len(cases))
		for round := 0; round < es.rounds; round++ {
			var r = make([]bench.ElasticResult, len(cases))
			for k := range cases {
				i := (k + round) % len(cases)
				c := cases[i]
				s := base
				s.Caps, s.Budget, s.Query = c.caps, c.budget, q.sql
				progress("elastic storm round %d/%d on %s: %s (28 pools × 10 goroutines × %d queries)", round+1, es.rounds, q.name, c.name, es.queries)
				if r[i], err = bench.RunElasticStorm(ctx, bed.AdminURL, bed.DirectURL, s); err != nil {
					return err
				}
				got[i] = append(got[i], r[i])
			}
			for i := 1; i < len(cases); i++ {
				ratios[i] = append(ratios[i], r[i].QPS()/r[0].QPS())
			}
		}
		for i := 1; i < len(cases); i++ {
			fmt.Fprintf(out, "| elastic storm on %s (28 pools, 60 conns, no pooler; median of %d rounds): %s vs budget caps 2 | %s | %s | %.2f× qps (rounds %.2f–%.2f) |\n",
				q.name, es.rounds, cases[i].name, cell(got[i]), cell(got[0]), median(ratios[i]), slices.Min(ratios[i]), slices.Max(ratios[i]))
		}
	}

	// The same two populations under steady load for a time instead of a
	// number of queries, the start included but a small part of the run:
	// what sharing costs beyond the start (a storm's time is its slowest
	// instance's, and an instance that got fewer connections while the
	// others were still finding each other finishes last).
	for _, q := range queries {
		names := [2]string{"budget caps 2", "caps 4 + sharing, no budget file"}
		plannedR, shared, ratios, err := alternate(es.steadyRounds, func(round, i int) (bench.ElasticResult, error) {
			f := bench.Flow{Storm: base, For: es.steadyFor, AdminURL: bed.AdminURL}
			f.Query = q.sql
			if i == 0 {
				f.Caps, f.Budget = planned, spec
			} else {
				f.Caps = bench.Fixed(4)
			}
			progress("elastic steady round %d/%d on %s, %v: %s", round+1, es.steadyRounds, q.name, es.steadyFor, names[i])
			return bench.RunFlow(ctx, bed.DirectURL, f)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "| elastic, steady load on %s for %v (28 pools, median of %d rounds): caps 4 + sharing, no budget file vs budget caps 2 | %s | %s | %.2f× qps (rounds %.2f–%.2f) |\n",
			q.name, es.steadyFor, es.steadyRounds, cell(shared), cell(plannedR), median(ratios), slices.Min(ratios), slices.Max(ratios))
	}

	// Instances that come and go, against the same population fixed.
	flow := bench.Flow{Storm: base, For: es.flowFor, AdminURL: bed.AdminURL, Sample: true}
	flow.Caps, flow.Query = bench.Fixed(4), bench.QuerySleep
	fixedR, comeR, ratios, err := alternate(es.flowRounds, func(round, i int) (bench.ElasticResult, error) {
		f := flow
		if i == 1 {
			f.Every = es.flowEvery
		}
		progress("elastic flow round %d/%d: %v, caps 4, pg_sleep(0.001), come and go: %v", round+1, es.flowRounds, es.flowFor, i == 1)
		return bench.RunFlow(ctx, bed.DirectURL, f)
	})
	if err != nil {
		return err
	}
	flowCell := func(rs []bench.ElasticResult) string {
		var qps []float64
		var errs int64
		most, usable, created := 0, 0, 0
		for _, r := range rs {
			qps = append(qps, r.QPS())
			errs += r.Errors
			most, usable, created = max(most, r.MaxClients), r.Usable, created+r.Created
		}
		s := fmt.Sprintf("%.0f qps, %d errors, at most %d of %d usable slots", median(qps), errs, most, usable)
		if created > 0 {
			s += fmt.Sprintf(", %d instances came and went", created)
		}
		return s
	}
	fmt.Fprintf(out, "| elastic, instances come and go every %v during %v (caps 4, `pg_sleep(0.001)`; median of %d rounds) vs the same 28 fixed | %s | %s | %.2f× qps |\n",
		es.flowEvery, es.flowFor, es.flowRounds, flowCell(comeR), flowCell(fixedR), median(ratios))

	// A budget that fits: sharing must close nothing. No sampler: its
	// connection would take the plan's spare slot.
	fits := bench.Flow{Storm: base, For: es.fitsFor, AdminURL: bed.AdminURL}
	fits.Caps, fits.Budget, fits.Query = planned, spec, bench.QuerySleep
	progress("elastic: a budget that fits, %v", es.fitsFor)
	r, err := bench.RunFlow(ctx, bed.DirectURL, fits)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "| elastic, a budget that fits (caps 2 from the plan, %v, `pg_sleep(0.001)`) | %d closed by sharing, %d connections opened for 56 planned, %d errors | 0 closed | %.0f qps |\n",
		es.fitsFor, r.ElasticClosed, r.Opened, r.Errors, r.QPS())
	return nil
}

// alternate runs two cases for rounds rounds, the order swapped each
// round (run(round, i) runs case i), and returns each case's results and
// the per-round ratios of case 1's throughput to case 0's.
func alternate(rounds int, run func(round, i int) (bench.ElasticResult, error)) (base, other []bench.ElasticResult, ratios []float64, err error) {
	for round := 0; round < rounds; round++ {
		var r [2]bench.ElasticResult
		for k := 0; k < 2; k++ {
			i := (k + round) % 2
			if r[i], err = run(round, i); err != nil {
				return nil, nil, nil, err
			}
		}
		base, other = append(base, r[0]), append(other, r[1])
		ratios = append(ratios, r[1].QPS()/r[0].QPS())
	}
	return base, other, ratios, nil
}
