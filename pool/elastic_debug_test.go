package pool_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

func TestElasticDebug(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	var pools []*pool.Pool
	for i := 0; i < 28; i++ {
		p, err := pool.New(ctx, pool.Config{AppName: fmt.Sprintf("dbg%d", i/4), DirectURL: bed.DirectURL, MaxConns: 4})
		require.NoError(t, err)
		defer p.Close()
		pools = append(pools, p)
	}
	var wg sync.WaitGroup
	start := time.Now()
	ends := make([]time.Duration, len(pools))
	for i, p := range pools {
		for g := 0; g < 10; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var n int
				for q := 0; q < 200; q++ {
					if err := p.QueryRow(ctx, "select $1::int + 1 from pg_sleep(0.001)", q).Scan(&n); err != nil {
						t.Error(err)
						return
					}
				}
				ends[i] = time.Since(start)
			}()
		}
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			line := fmt.Sprintf("%5dms", time.Since(start).Milliseconds())
			for _, p := range pools {
				st := p.Stat().Pooled
				line += fmt.Sprintf(" %d/%d/%d", st.TotalConns, st.Cap, st.ElasticLimit)
			}
			t.Log(line)
		}
	}()
	wg.Wait()
	close(stop)
	for i, p := range pools {
		st := p.Stat().Pooled
		t.Logf("pool %d: end %v views %d closed %d retried %d limit %d", i, ends[i], st.ElasticViews, st.ElasticClosed, st.Retried, st.ElasticLimit)
	}
}
