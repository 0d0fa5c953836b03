package pool_test

import (
	"fmt"
	"os"
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
