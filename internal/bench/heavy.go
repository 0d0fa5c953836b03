package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/supapool/supapool/pool"
)

// HeavyOn says where a HeavyLoad sends its heavy queries.
type HeavyOn int

const (
	NoHeavy     HeavyOn = iota // no heavy queries: the baseline
	HeavyLane                  // on Pool.Heavy
	HeavyPooled                // on the pooled route, beside the short ones
)

// HeavyLoad is Short goroutines of short queries on a Pool's pooled route,
// run for For, while Heavy queries of pg_sleep(Sleep) run on the route
// On names.
type HeavyLoad struct {
	Short, Heavy int
	Sleep, For   time.Duration
	On           HeavyOn
}

// ShortLatency is what the short queries of a HeavyLoad saw.
type ShortLatency struct {
	N, Errors int
	// Cut counts queries still running or waiting when the load ended
	// (at most one per goroutine); each counts in N and the percentiles
	// with the time it had taken so far, so a short query stuck behind
	// heavy ones shows in P99 even when the window ends first.
	Cut      int
	P50, P99 time.Duration
}

// RunHeavyLoad runs l on p. The heavy queries start first and have
// 200ms to reach the server before the short load starts; once the short
// load ends, the heavy queries still running or waiting are cancelled and
// awaited, so nothing of one round outlives it.
func RunHeavyLoad(ctx context.Context, p *pool.Pool, l HeavyLoad) (ShortLatency, error) {
	hctx, cancelHeavy := context.WithCancel(ctx)
	defer cancelHeavy()
	var hwg sync.WaitGroup
	var heavyErr atomic.Value
	if l.On != NoHeavy {
		sql := fmt.Sprintf("select pg_sleep(%g)", l.Sleep.Seconds())
		for range l.Heavy {
			hwg.Add(1)
			go func() {
				defer hwg.Done()
				var err error
				if l.On == HeavyLane {
					_, err = p.Heavy().Exec(hctx, sql)
				} else {
					_, err = p.Exec(hctx, sql)
				}
				if err != nil && hctx.Err() == nil {
					heavyErr.Store(err)
				}
			}()
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	sctx, cancelShort := context.WithTimeout(ctx, l.For)
	defer cancelShort()
	var mu sync.Mutex
	var lat []time.Duration
	var errs, cut atomic.Int64
	var swg sync.WaitGroup
	for range l.Short {
		swg.Add(1)
		go func() {
			defer swg.Done()
			var mine []time.Duration
			for q := 0; sctx.Err() == nil; q++ {
				start := time.Now()
				var n int
				err := p.QueryRow(sctx, "select $1::int + 1", q).Scan(&n)
				if err != nil && sctx.Err() != nil {
					// Still waiting when the load ended: at least
					// this slow.
					cut.Add(1)
					mine = append(mine, time.Since(start))
					break
				}
				if err != nil || n != q+1 {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	swg.Wait()
	cancelHeavy()
	hwg.Wait()
	if err, ok := heavyErr.Load().(error); ok {
		return ShortLatency{}, fmt.Errorf("bench: heavy query: %w", err)
	}
	if len(lat) == 0 {
		return ShortLatency{}, errors.New("bench: no short query finished")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return ShortLatency{N: len(lat), Errors: int(errs.Load()), Cut: int(cut.Load()), P50: lat[len(lat)/2], P99: lat[len(lat)*99/100]}, nil
}
