// Command bench prints supapool's numbers: every row is measured side by
// side with its baseline in one run, on the same servers, and reported as
// a ratio, because absolute times on a shared machine are not stable.
//
//	go run ./examples/bench          # about two minutes
//	go run ./examples/bench -quick   # smaller loads, for a smoke test
//	go run ./examples/bench -steps pgbench -cpuprofile cpu.out
//
// It starts its own PostgreSQL (max_connections 60) and transaction-mode
// PgBouncer with internal/testbed, so it needs the Debian packages
// postgresql and pgbouncer.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
	"github.com/supapool/supapool/pool"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type sizes struct {
	rounds, rowQueries          int // QueryRow overhead: interleaved rounds of rowQueries each
	modeGoroutines, modeQueries int
	modeRounds                  int
	stormQueries, stormRounds   int
	notifications, listenRounds int
	polls                       int
	heavyRounds                 int
	heavyFor, heavySleep        time.Duration
	pgbenchRounds               int
	pgbenchFor                  time.Duration
}

// step is one group of rows in the table.
type step struct {
	name string
	run  func(context.Context, *testbed.Bed, sizes, io.Writer, func(string, ...any)) error
}

var steps = []step{
	{"queryrow", queryRowOverhead}, {"modes", execModes}, {"execmode", detectedModes}, {"storms", storms}, {"listener", listener}, {"monitor", monitorPoll}, {"heavy", heavyLane}, {"pgbench", pgbenchCeiling}, {"replica", replicaReads}, {"elastic", elastic},
}

// stepNames lists the steps for -steps' help and errors.
func stepNames() string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "small loads (a smoke test, not numbers to quote)")
	only := fs.String("steps", "", "comma-separated steps to run ("+stepNames()+"); default all")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (supapool's side; pgbench is another process) to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sz := sizes{rounds: 31, rowQueries: 1000, modeGoroutines: 40, modeQueries: 250, modeRounds: 15, stormQueries: 200, stormRounds: 9, notifications: 5000, listenRounds: 5, polls: 200, heavyRounds: 5, heavyFor: 3 * time.Second, heavySleep: 2 * time.Second, pgbenchRounds: 5, pgbenchFor: 4 * time.Second}
	if *quick {
		sz = sizes{rounds: 3, rowQueries: 200, modeGoroutines: 10, modeQueries: 50, modeRounds: 2, stormQueries: 20, stormRounds: 1, notifications: 500, listenRounds: 1, polls: 20, heavyRounds: 1, heavyFor: 500 * time.Millisecond, heavySleep: 200 * time.Millisecond, pgbenchRounds: 3, pgbenchFor: time.Second}
	}
	want := map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			want[name] = true
		}
	}
	for name := range want {
		if !slices.ContainsFunc(steps, func(s step) bool { return s.name == name }) {
			fmt.Fprintf(stderr, "bench: -steps: unknown step %q, expected one of %s\n", name, stepNames())
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	progress := func(f string, a ...any) { fmt.Fprintf(stderr, "bench: "+f+"\n", a...) }
	bed, err := testbed.New(ctx, testbed.Options{MaxConnections: 60, Logf: progress})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer bed.Close()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "bench: -cpuprofile:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench: -cpuprofile:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintln(stdout, "| measurement | supapool | baseline | ratio |")
	fmt.Fprintln(stdout, "|---|---|---|---|")
	for _, step := range steps {
		if len(want) > 0 && !want[step.name] {
			continue
		}
		if err := step.run(ctx, bed, sz, stdout, progress); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	return 0
}

// median is the middle value, or the mean of the two middle values of an
// even count (two rounds: their mean, not the larger).
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

func rawPool(ctx context.Context, url string, maxConns int32, mode pgx.QueryExecMode) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	if mode != 0 {
		cfg.ConnConfig.DefaultQueryExecMode = mode
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// queryRowOverhead alternates rounds of serial QueryRow through supapool
// and through pgxpool configured by hand the same way, so drifts in the
// machine's speed hit both alike.
func queryRowOverhead(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	progress("QueryRow overhead: %d interleaved rounds of %d queries", sz.rounds, sz.rowQueries)
	raw, err := rawPool(ctx, bed.PooledURL, 4, pgx.QueryExecModeCacheDescribe)
	if err != nil {
		return err
	}
	defer raw.Close()
	sp, err := pool.New(ctx, pool.Config{AppName: "bench", DirectURL: bed.DirectURL, PooledURL: bed.PooledURL, MaxConns: 4})
	if err != nil {
		return err
	}
	defer sp.Close()
	timeIt := func(q bench.Execer) (time.Duration, error) {
		start := time.Now()
		var n int
		for i := 0; i < sz.rowQueries; i++ {
			if err := q.QueryRow(ctx, "select $1::int + 1", i).Scan(&n); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	var ratios, supa, base []float64
	for r := 0; r < sz.rounds; r++ {
		var a, b time.Duration
		var err error
		if r%2 == 0 { // neither side always goes first
			if a, err = timeIt(raw); err == nil {
				b, err = timeIt(sp)
			}
		} else if b, err = timeIt(sp); err == nil {
			a, err = timeIt(raw)
		}
		if err != nil {
			return err
		}
		ratios = append(ratios, float64(b)/float64(a))
		supa = append(supa, float64(b.Microseconds())/float64(sz.rowQueries))
		base = append(base, float64(a.Microseconds())/float64(sz.rowQueries))
	}
	fmt.Fprintf(out, "| pooled QueryRow latency through PgBouncer (median of %d rounds) | %.0f µs | pgxpool, same exec mode: %.0f µs | %.3f× |\n",
		sz.rounds, median(supa), median(base), median(ratios))
	return nil
}

// execModes runs the same concurrent load through the transaction pooler
// with supapool's default and with each of pgx's modes set by hand.
func execModes(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	progress("exec modes: %d goroutines × %d queries through PgBouncer, 7 interleaved rounds", sz.modeGoroutines, sz.modeQueries)
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"default (cache_statement)", pgx.QueryExecModeCacheStatement},
		{"exec", pgx.QueryExecModeExec},
		{"simple_protocol", pgx.QueryExecModeSimpleProtocol},
		{"cache_describe by hand", pgx.QueryExecModeCacheDescribe},
	}
	// Every pool is made once and warmed, then rounds alternate which
	// runs first; each row is the median of per-round ratios.
	sp, err := pool.New(ctx, pool.Config{AppName: "bench", DirectURL: bed.DirectURL, PooledURL: bed.PooledURL, MaxConns: int32(sz.modeGoroutines)})
	if err != nil {
		return err
	}
	defer sp.Close()
	candidates := []bench.Execer{sp}
	for _, m := range modes {
		p, err := rawPool(ctx, bed.PooledURL, int32(sz.modeGoroutines), m.mode)
		if err != nil {
			return err
		}
		defer p.Close()
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		bench.Load(ctx, c, sz.modeGoroutines, 10)
	}
	const rounds = 7
	qps := make([][]float64, len(candidates))
	ratios := make([][]float64, len(modes))
	codes := make([]map[string]int64, len(modes))
	for round := 0; round < rounds; round++ {
		got := make([]float64, len(candidates))
		for k := range candidates {
			i := (k + round) % len(candidates)
			r := bench.Load(ctx, candidates[i], sz.modeGoroutines, sz.modeQueries)
			if i == 0 && r.Errors > 0 {
				return fmt.Errorf("supapool's default mode failed %d queries: %v", r.Errors, r.Codes)
			}
			if i > 0 && r.Errors > 0 {
				codes[i-1] = r.Codes
			}
			got[i] = r.QPS()
			qps[i] = append(qps[i], r.QPS())
		}
		for i := range modes {
			ratios[i] = append(ratios[i], got[0]/got[i+1])
		}
	}
	for i, m := range modes {
		ratio := fmt.Sprintf("%.2f× qps", median(ratios[i]))
		base := fmt.Sprintf("%.0f qps, 0 errors", median(qps[i+1]))
		if codes[i] != nil {
			ratio = "baseline fails"
			base = fmt.Sprintf("%.0f qps, errors: %v", median(qps[i+1]), codes[i])
		}
		fmt.Fprintf(out, "| through PgBouncer, %d goroutines: supapool default vs pgx %s | %.0f qps, 0 errors | %s | %s |\n",
			sz.modeGoroutines, m.name, median(qps[0]), base, ratio)
	}
	return nil
}

// storms runs the seed's incident: 7 apps × 4 instances × 10 goroutines
// against 60 connections, with naive caps and with caps from a plan.
func storms(ctx context.Context, _ *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	// A server of their own: the other rows' PgBouncer keeps server
	// connections open, which would take slots the plan counts on.
	bed, err := testbed.New(ctx, testbed.Options{MaxConnections: 60, NoPooler: true})
	if err != nil {
		return err
	}
	defer bed.Close()
	spec := budget.Spec{Limit: 60, Reserved: 3}
	for a := 0; a < 7; a++ {
		spec.Apps = append(spec.Apps, budget.App{Name: fmt.Sprintf("storm_app%d", a), Instances: 4})
	}
	plan, err := budget.Plan(spec)
	if err != nil {
		return err
	}
	planned := func(app string) int32 { return plan.For(app).MaxConns }
	cases := []struct {
		name  string
		caps  func(string) int32
		plain bool
	}{
		{"naive caps 4", bench.Fixed(4), true},
		{"naive caps 4", bench.Fixed(4), false},
		{"budget caps", planned, true},
		{"budget caps", planned, false},
	}
	// Rounds alternate the order of the cases, so drifts in the machine's
	// speed hit all alike; each row is the median over rounds.
	qps := make([][]float64, len(cases))
	errRate := make([]float64, len(cases))
	ratios := make([][]float64, 3)
	for round := 0; round < sz.stormRounds; round++ {
		got := make([]bench.Result, len(cases))
		for k := range cases {
			i := (k + round) % len(cases)
			c := cases[i]
			who := "supapool"
			if c.plain {
				who = "pgxpool"
			}
			progress("storm round %d/%d: %s, %s (28 pools × 10 goroutines × %d queries)", round+1, sz.stormRounds, who, c.name, sz.stormQueries)
			if got[i], err = bench.RunStorm(ctx, bed.DirectURL, bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: sz.stormQueries, Caps: c.caps, Plain: c.plain}); err != nil {
				return err
			}
			qps[i] = append(qps[i], got[i].QPS())
			errRate[i] = max(errRate[i], got[i].ErrorRate())
		}
		ratios[0] = append(ratios[0], got[1].QPS()/got[0].QPS())
		ratios[1] = append(ratios[1], got[3].QPS()/got[2].QPS())
		ratios[2] = append(ratios[2], got[1].QPS()/got[3].QPS())
	}
	cell := func(i int) string {
		return fmt.Sprintf("%.0f qps, %.1f%% errors", median(qps[i]), 100*errRate[i])
	}
	n := sz.stormRounds
	fmt.Fprintf(out, "| storm, naive caps 4 (28 pools, 60 conns; median of %d rounds): supapool vs pgxpool | %s | %s | %.2f× qps |\n", n, cell(1), cell(0), median(ratios[0]))
	fmt.Fprintf(out, "| storm, budget caps %d (median of %d rounds): supapool vs pgxpool | %s | %s | %.2f× qps |\n", plan.For("storm_app0").MaxConns, n, cell(3), cell(2), median(ratios[1]))
	fmt.Fprintf(out, "| storm: supapool naive caps 4 vs supapool budget caps (median of %d rounds) | %s | %s | %.2f× qps |\n", n, cell(1), cell(3), median(ratios[2]))
	return nil
}

// listener compares the Listener with a hand-written WaitForNotification
// loop on one connection.
func listener(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	progress("listener: %d rounds of %d notifications", sz.listenRounds, sz.notifications)
	recvRaw := make(chan string, sz.notifications)
	stop, err := bench.RawListener(ctx, bed.DirectURL, "bench_raw", recvRaw)
	if err != nil {
		return err
	}
	defer stop()
	sp, err := pool.New(ctx, pool.Config{AppName: "bench", DirectURL: bed.DirectURL, PooledURL: bed.PooledURL, ListenerQueueSize: sz.notifications})
	if err != nil {
		return err
	}
	defer sp.Close()
	recvSupa := make(chan string, sz.notifications)
	if err := sp.Listener().Listen(ctx, "bench_listener", func(_ context.Context, n *pgconn.Notification) error {
		recvSupa <- n.Payload
		return nil
	}); err != nil {
		return err
	}
	var rate, p50, p99 [2][]float64
	for r := 0; r < sz.listenRounds; r++ {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0} // neither side always goes first
		}
		for _, i := range order {
			c := []struct {
				ch   string
				recv chan string
			}{{"bench_listener", recvSupa}, {"bench_raw", recvRaw}}[i]
			l, err := bench.Listen(ctx, bed.DirectURL, c.ch, sz.notifications, c.recv)
			if err != nil {
				return err
			}
			if l.Missing > 0 || l.OutOfOrderAt >= 0 {
				return fmt.Errorf("%s: %d missing, first out of order at %d", c.ch, l.Missing, l.OutOfOrderAt)
			}
			rate[i] = append(rate[i], l.PerSecond)
			p50[i] = append(p50[i], float64(l.P50.Microseconds()))
			p99[i] = append(p99[i], float64(l.P99.Microseconds()))
		}
	}
	fmt.Fprintf(out, "| listener throughput vs raw WaitForNotification loop | %.0f/s | %.0f/s | %.2f× |\n", median(rate[0]), median(rate[1]), median(rate[0])/median(rate[1]))
	fmt.Fprintf(out, "| listener latency p50 | %.0f µs | %.0f µs | %.2f× |\n", median(p50[0]), median(p50[1]), median(p50[0])/median(p50[1]))
	fmt.Fprintf(out, "| listener latency p99 | %.0f µs | %.0f µs | %.2f× |\n", median(p99[0]), median(p99[1]), median(p99[0])/median(p99[1]))
	return nil
}

// monitorPoll compares one monitor poll with the cheapest round trip on
// the same connection.
func monitorPoll(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	progress("monitor: %d polls", sz.polls)
	p, err := rawPool(ctx, bed.DirectURL, 1, 0)
	if err != nil {
		return err
	}
	defer p.Close()
	m, err := monitor.New(monitor.Config{DB: p})
	if err != nil {
		return err
	}
	defer m.Close()
	var polls, pings []float64
	for i := 0; i < sz.polls; i++ {
		start := time.Now()
		if _, err := m.Poll(ctx); err != nil {
			return err
		}
		polls = append(polls, float64(time.Since(start).Microseconds()))
		start = time.Now()
		if _, err := p.Exec(ctx, "select 1"); err != nil {
			return err
		}
		pings = append(pings, float64(time.Since(start).Microseconds()))
	}
	fmt.Fprintf(out, "| monitor poll (one query, one connection) vs `select 1` | %.0f µs | %.0f µs | %.1f× |\n", median(polls), median(pings), median(polls)/median(pings))
	return nil
}

// heavyLane measures 40 goroutines of short pooled queries, run for a few
// seconds, beside 100 concurrent pg_sleep queries on the heavy lane
// (MaxHeavyConns 1), and beside the same heavy queries sent to the pooled
// route, each against the same short load with no heavy queries; rounds
// alternate the order of the three.
func heavyLane(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	progress("heavy lane: %d rounds of %v of 40 short-query goroutines beside 100 heavy queries of %v", sz.heavyRounds, sz.heavyFor, sz.heavySleep)
	sp, err := pool.New(ctx, pool.Config{AppName: "bench_heavy", DirectURL: bed.DirectURL, PooledURL: bed.PooledURL})
	if err != nil {
		return err
	}
	defer sp.Close()
	ons := []bench.HeavyOn{bench.NoHeavy, bench.HeavyLane, bench.HeavyPooled}
	var p99 [3][]float64
	for r := 0; r < sz.heavyRounds; r++ {
		for k := range ons {
			i := (k + r) % len(ons) // no variant always goes first
			l, err := bench.RunHeavyLoad(ctx, sp, bench.HeavyLoad{Short: 40, Heavy: 100, Sleep: sz.heavySleep, For: sz.heavyFor, On: ons[i]})
			if err != nil {
				return err
			}
			if l.Errors > 0 {
				return fmt.Errorf("heavy lane: %d short queries failed", l.Errors)
			}
			p99[i] = append(p99[i], float64(l.P99.Microseconds()))
		}
	}
	base := median(p99[0])
	fmt.Fprintf(out, "| short pooled p99 beside 100 heavy on Heavy() vs no heavy | %.0f µs | %.0f µs | %.2f× |\n", median(p99[1]), base, median(p99[1])/base)
	fmt.Fprintf(out, "| short pooled p99 beside 100 heavy on the pooled route vs no heavy | %.0f µs | %.0f µs | %.2f× |\n", median(p99[2]), base, median(p99[2])/base)
	return nil
}
