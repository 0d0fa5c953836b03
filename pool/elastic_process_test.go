package pool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
)

// elasticReport mirrors internal/elasticproc's Report.
type elasticReport struct {
	Queries, Errors            int64
	Codes                      map[string]int64
	FirstMillis, ElapsedMillis int64
	Closed, Views, Refused     int64
	CPUMillis                  int64
}

// procs starts instances of internal/elasticproc (built once) against one
// server, each a process of its own, configured through its environment
// as a service is: nothing shared inside one test binary can then make
// sharing work.
type procs struct {
	t    testing.TB
	ctx  context.Context
	bin  string
	base []string // this process's environment without database settings
	url  string
	// nice, when set, starts instances at nice 10 (nice(1)).
	nice bool
}

type proc struct {
	cmd         *exec.Cmd
	out, errOut bytes.Buffer
}

func newProcs(t testing.TB, ctx context.Context, directURL string) *procs {
	bin := filepath.Join(t.TempDir(), "elasticproc")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/supapool/supapool/internal/elasticproc")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	ps := &procs{t: t, ctx: ctx, bin: bin, url: directURL}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_") && !strings.HasPrefix(kv, "SUPAPOOL_") && !strings.HasPrefix(kv, "PG") {
			ps.base = append(ps.base, kv)
		}
	}
	return ps
}

// start runs one instance of app with caps and, when set, a budget spec;
// args go to elasticproc.
func (ps *procs) start(app string, caps int, budget string, args ...string) *proc {
	p := &proc{cmd: exec.CommandContext(ps.ctx, ps.bin, args...)}
	if ps.nice {
		p.cmd = exec.CommandContext(ps.ctx, "nice", append([]string{"-n", "10", ps.bin}, args...)...)
	}
	p.cmd.Env = append(append([]string(nil), ps.base...), "DATABASE_URL="+ps.url, "DATABASE_APP_NAME="+app, fmt.Sprintf("DATABASE_MAX_CONNS=%d", caps))
	if budget != "" {
		p.cmd.Env = append(p.cmd.Env, "SUPAPOOL_BUDGET="+budget)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	require.NoError(ps.t, p.cmd.Start())
	return p
}

// wait waits for p and reads its report; it fails the test when the
// process failed or reported an error of a query.
func (ps *procs) wait(p *proc) elasticReport {
	require.NoError(ps.t, p.cmd.Wait(), "stderr: %s", p.errOut.String())
	var r elasticReport
	require.NoError(ps.t, json.Unmarshal(p.out.Bytes(), &r), "stdout: %q", p.out.String())
	assert.Zero(ps.t, r.Errors, "a process's errors: %v", r.Codes)
	return r
}

// The storm as 28 separate processes: 27 instances (7 apps, caps 4, 10
// goroutines of pg_sleep(0.001)) fill the server for 14 s; once they hold
// it and have had 2 s to settle, a late joiner runs 100 queries; then
// instances come and go (one more every 2 s, each for 4 s). Every process
// must see 0 errors. The crowd runs at nice 10: on two cores, 27 busy
// processes at the joiner's priority left it so little CPU that its first
// query came 0.6-7.5 s after its start with free slots on the server all
// along (0 refused connects), a measure of the scheduler, not of sharing;
// instances on machines of their own do not take each other's CPU.
func TestElasticProcesses(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	ps := newProcs(t, ctx, bed.DirectURL)
	var crowd []*proc
	ps.nice = true
	for i := 0; i < 27; i++ {
		crowd = append(crowd, ps.start(fmt.Sprintf("proc_app%d", i/4), 4, "", "-for", "14s"))
	}
	ps.nice = false
	// The late joiner starts once the crowd holds the server (or after a
	// generous bound; the count is then only reported).
	admin, err := pgx.Connect(ctx, bed.AdminURL)
	require.NoError(t, err)
	var held int
	for wait := time.Now(); time.Since(wait) < 8*time.Second; time.Sleep(100 * time.Millisecond) {
		if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name like 'proc\\_app%'").Scan(&held); err == nil && held >= 50 {
			break
		}
	}
	admin.Close(context.Background())
	time.Sleep(2 * time.Second)
	lr := ps.wait(ps.start("proc_app6", 4, "", "-queries", "10"))
	var comers []*proc
	for i := 0; i < 3; i++ {
		comers = append(comers, ps.start(fmt.Sprintf("proc_app%d", i), 4, "", "-for", "4s"))
		time.Sleep(2 * time.Second)
	}
	var total, closed int64
	for _, p := range append(crowd, comers...) {
		r := ps.wait(p)
		total, closed = total+r.Queries, closed+r.Closed
	}
	t.Logf("the crowd held %d backends when the late joiner started; crowd and %d that came and went: %d queries, %d closed by sharing; late joiner: %d queries, first after %d ms, all after %d ms, %d refused connects",
		held, len(comers), total, closed, lr.Queries, lr.FirstMillis, lr.ElapsedMillis, lr.Refused)
	assert.EqualValues(t, 100, lr.Queries)
	assert.Positive(t, total)
}

// The storm of 28 processes (7 apps × 4, 10 goroutines × 200 queries of
// select $1::int + 1) with the budget's caps 2, then with caps 4 and no
// budget file: every process sees 0 errors, and the budget that fits
// closes nothing. The time of each is reported, not asserted: starting
// 28 processes is part of it (BenchmarkElasticProcessStorm measures the
// ratio over alternated rounds).
func TestElasticProcessStorm(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ps := newProcs(t, testCtx(t), bed.DirectURL)
	spec, err := bench.WriteSpec(t.TempDir(), bench.StormSpec(bench.Storm{Apps: 7, Instances: 4}))
	require.NoError(t, err)
	planned := ps.storm(2, spec)
	shared := ps.storm(4, "")
	t.Logf("28 processes: budget caps 2: %v; caps 4 with sharing and no budget file: %v; %.2f× the budget's throughput",
		planned, shared, planned.elapsed.Seconds()/shared.elapsed.Seconds())
	assert.Zero(t, planned.closed, "a budget that fits closes nothing")
}

// BenchmarkElasticProcessStorm runs TestElasticProcessStorm's two storms
// side by side, with the budget's caps 2 run twice (caps2-again: the same
// population against itself, which shows how far the machine's noise
// alone moves a ratio), in an order rotated per round. It reports the
// median over rounds of each case's throughput against the first caps 2
// of its round (x, with the rounds' min and max), and each case's
// medians of connections closed by sharing, refused connects, looks, the
// slowest process's time over the median process's, and the processes'
// CPU time. Run with -benchtime 20x for 20 rounds (about 15 s each).
func BenchmarkElasticProcessStorm(b *testing.B) {
	bed := testbed.NewT(b, testbed.Options{MaxConnections: 60, NoPooler: true})
	// Not testCtx's two minutes: every process ends itself within two
	// minutes, but the rounds take longer.
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ps := newProcs(b, ctx, bed.DirectURL)
	spec, err := bench.WriteSpec(b.TempDir(), bench.StormSpec(bench.Storm{Apps: 7, Instances: 4}))
	require.NoError(b, err)
	names := []string{"caps2", "caps2-again", "caps4"}
	got := make([]map[string][]float64, len(names))
	for i := range got {
		got[i] = map[string][]float64{}
	}
	for round := 0; round < b.N; round++ {
		r := make([]procStorm, len(names))
		for k := range names {
			if i := (k + round) % len(names); i < 2 {
				r[i] = ps.storm(2, spec)
			} else {
				r[i] = ps.storm(4, "")
			}
		}
		for i, s := range r {
			m := got[i]
			m["x"] = append(m["x"], r[0].elapsed.Seconds()/s.elapsed.Seconds())
			m["closed"] = append(m["closed"], float64(s.closed))
			m["refused"] = append(m["refused"], float64(s.refused))
			m["looks"] = append(m["looks"], float64(s.views))
			m["spread"] = append(m["spread"], s.spread)
			m["cpu-s"] = append(m["cpu-s"], s.cpu.Seconds())
		}
		b.Logf("round %d: caps2 %v; caps2 again %.2f×; caps4 %v; %.2f×", round, r[0], got[1]["x"][round], r[2], got[2]["x"][round])
	}
	for i, n := range names[1:] {
		x := got[i+1]["x"]
		b.ReportMetric(slices.Min(x), n+"-x-min")
		b.ReportMetric(slices.Max(x), n+"-x-max")
		b.Logf("%s: %.2f× budget caps 2 (rounds %.2f–%.2f)", n, median(x), slices.Min(x), slices.Max(x))
	}
	for i, n := range names {
		for k, v := range got[i] {
			if i > 0 || k != "x" {
				b.ReportMetric(median(v), n+"-"+k)
			}
		}
	}
}

// procStorm is one storm of 28 processes.
type procStorm struct {
	elapsed                time.Duration // from the first start to the last exit
	closed, refused, views int64
	cpu                    time.Duration // the processes' CPU time, all of them
	spread                 float64       // the slowest process's time over the median process's
	slowFirst              int64         // the latest first query, ms after its process started
}

func (s procStorm) String() string {
	return fmt.Sprintf("%v (%d closed by sharing, %d refused, %d looks, slowest process %.2f× the median, latest first query %d ms, processes' CPU %v)",
		s.elapsed.Round(time.Millisecond), s.closed, s.refused, s.views, s.spread, s.slowFirst, s.cpu.Round(time.Millisecond))
}

// storm runs 28 processes (7 apps × 4, 10 goroutines × 200 queries of
// select $1::int + 1) with caps and, when set, a budget spec.
func (ps *procs) storm(caps int, budget string) procStorm {
	began := time.Now()
	var all []*proc
	for i := 0; i < 28; i++ {
		all = append(all, ps.start(fmt.Sprintf("storm_app%d", i/4), caps, budget, "-queries", "200", "-sleep=false"))
	}
	var s procStorm
	var times []float64
	for _, p := range all {
		r := ps.wait(p)
		assert.EqualValues(ps.t, 2000, r.Queries)
		s.closed += r.Closed
		s.refused += r.Refused
		s.views += r.Views
		s.cpu += time.Duration(r.CPUMillis) * time.Millisecond
		s.slowFirst = max(s.slowFirst, r.FirstMillis)
		times = append(times, float64(r.ElapsedMillis))
	}
	s.elapsed = time.Since(began)
	s.spread = slices.Max(times) / median(times)
	return s
}
