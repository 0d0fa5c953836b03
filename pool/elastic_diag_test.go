package pool_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// A diagnostic, not a test: SUPAPOOL_ELASTIC_DIAG=1 prints a timeline of
// the storm's pools (connections held, limits, pools done).
func TestElasticDiag(t *testing.T) {
	if os.Getenv("SUPAPOOL_ELASTIC_DIAG") == "" {
		t.Skip("set SUPAPOOL_ELASTIC_DIAG=1")
	}
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	q := bench.QueryAdd
	if os.Getenv("DIAG_SLEEP") != "" {
		q = bench.QuerySleep
	}
	capsList := []int32{2, 4, 2, 4, 2, 4}
	if c := os.Getenv("DIAG_CAPS"); c != "" {
		n, _ := strconv.Atoi(c)
		capsList = []int32{int32(n)}
	}
	for _, caps := range capsList {
		var pools []*pool.Pool
		for a := 0; a < 7; a++ {
			for i := 0; i < 4; i++ {
				p, err := pool.New(ctx, pool.Config{AppName: "storm_app" + strconv.Itoa(a), DirectURL: bed.DirectURL, MaxConns: caps})
				require.NoError(t, err)
				pools = append(pools, p)
			}
		}
		var done atomic.Int32
		var nq atomic.Int64
		finish := make([]time.Duration, len(pools))
		start := time.Now()
		var wg sync.WaitGroup
		for k, p := range pools {
			var pw sync.WaitGroup
			for g := 0; g < 10; g++ {
				pw.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer pw.Done()
					for i := 0; i < 200; i++ {
						var n int
						if err := p.QueryRow(ctx, q, i).Scan(&n); err != nil {
							t.Error(err)
							return
						}
						nq.Add(1)
					}
				}()
			}
			go func() { pw.Wait(); finish[k] = time.Since(start); done.Add(1) }()
		}
		stop := make(chan struct{})
		var tl []string
		var q0, q1 int64
		var t0, t1 time.Duration
		go func() {
			tk := time.NewTicker(250 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
				}
				var hist [6]int
				var lim [6]int
				tot := 0
				for _, p := range pools {
					s := p.Stat().Pooled
					hist[min(int(s.TotalConns), 5)]++
					lim[min(int(s.ElasticLimit), 5)]++
					tot += int(s.TotalConns)
				}
				if q0 == 0 && time.Since(start) > 4*time.Second {
					q0, t0 = nq.Load(), time.Since(start)
				}
				if q1 == 0 && done.Load() > 0 {
					q1, t1 = nq.Load(), time.Since(start)
				}
				tl = append(tl, fmt.Sprintf("%5.2fs q=%d total=%d conns-hist=%v limit-hist=%v done=%d", time.Since(start).Seconds(), nq.Load(), tot, hist, lim, done.Load()))
			}
		}()
		wg.Wait()
		el := time.Since(start)
		close(stop)
		var closed, retried int64
		var fs []string
		for k, p := range pools {
			closed += p.Stat().Pooled.ElasticClosed
			retried += p.Stat().Pooled.Retried
			fs = append(fs, fmt.Sprintf("%.1f", finish[k].Seconds()))
			p.Close()
		}
		t.Logf("caps %d: %.0f qps in %v, closed %d, retried %d, steady %.0f qps", caps, 56000/el.Seconds(), el.Round(time.Millisecond), closed, retried, float64(q1-q0)/(t1-t0).Seconds())
		if os.Getenv("DIAG_V") != "" {
			t.Logf("finish: %s\n%s", strings.Join(fs, " "), strings.Join(tl, "\n"))
		}
		time.Sleep(time.Second)
	}
}

// Another diagnostic: SUPAPOOL_ELASTIC_AB=N runs the storm (28 pools × 10
// goroutines × 200 queries, select $1::int + 1, or pg_sleep(0.001) with
// DIAG_SLEEP set) N rounds, alternating budget caps 2, caps 4 with
// sharing and no budget file, and the same with routes climbing without a
// look first (pool.WithoutClimbLook, as before route.mayClimb), and prints
// per case the medians of: the storm's throughput against budget caps 2
// in the same round, the queries done after one second, the sessions the
// server opened, those closed by sharing, refused connects and looks.
func TestElasticClimbAB(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("SUPAPOOL_ELASTIC_AB"))
	if rounds < 1 {
		t.Skip("set SUPAPOOL_ELASTIC_AB to a number of rounds")
	}
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	s := bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: 200, Query: bench.QueryAdd}
	if os.Getenv("DIAG_SLEEP") != "" {
		s.Query = bench.QuerySleep
	}
	spec, err := bench.WriteSpec(t.TempDir(), bench.StormSpec(s))
	require.NoError(t, err)
	names := []string{"budget caps 2", "caps 4 + sharing, no budget file", "the same, climbing without a look"}
	type outcome struct{ ratio, atSecond, opened, closed, refused, views []float64 }
	got := make([]outcome, len(names))
	for round := 0; round < rounds; round++ {
		elapsed := make([]time.Duration, len(names))
		for k := range names {
			i := (k + round) % len(names)
			c := s
			c.Caps, c.Budget = bench.Fixed(4), ""
			if i == 0 {
				c.Caps, c.Budget = bench.Fixed(2), spec
			}
			restore := func() {}
			if i == 2 {
				restore = pool.WithoutClimbLook()
			}
			before, err := bench.Sessions(ctx, bed.AdminURL, bed.DirectURL)
			require.NoError(t, err)
			var done atomic.Int64
			c.OnQuery = func() { done.Add(1) }
			timer := time.AfterFunc(time.Second, func() { got[i].atSecond = append(got[i].atSecond, float64(done.Load())) })
			r, err := bench.RunStorm(ctx, bed.DirectURL, c)
			timer.Stop()
			restore()
			require.NoError(t, err)
			require.Zero(t, r.Errors, names[i])
			after, err := bench.Sessions(ctx, bed.AdminURL, bed.DirectURL)
			require.NoError(t, err)
			elapsed[i] = r.Elapsed
			o := &got[i]
			o.opened = append(o.opened, float64(after-before-1))
			o.closed = append(o.closed, float64(r.ElasticClosed))
			o.refused = append(o.refused, float64(r.Retried))
			o.views = append(o.views, float64(r.Views))
		}
		for i := range names {
			got[i].ratio = append(got[i].ratio, elapsed[0].Seconds()/elapsed[i].Seconds())
		}
	}
	med := func(x []float64) float64 {
		if len(x) == 0 {
			return 0
		}
		y := slices.Clone(x)
		slices.Sort(y)
		return y[len(y)/2]
	}
	for i, n := range names {
		o := got[i]
		t.Logf("%s: %.2f× budget caps 2 (rounds %.2f–%.2f), %.0f queries done after 1 s, %.0f sessions opened, %.0f closed by sharing, %.0f refused connects, %.0f looks",
			n, med(o.ratio), slices.Min(o.ratio), slices.Max(o.ratio), med(o.atSecond), med(o.opened), med(o.closed), med(o.refused), med(o.views))
	}
}
