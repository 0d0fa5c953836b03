package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A ReadQuery is a read for the replica step: it returns
// pg_is_in_recovery() (which server served it) and a number the load
// checks against Want.
type ReadQuery struct {
	Name string
	SQL  string
	Arg  int
	Want int64
}

// The replica step's reads: one that costs the server nothing, and a
// 5,000-row scan that costs it some CPU, where spreading reads over two
// servers could matter.
var (
	ReadTrivial = ReadQuery{Name: "trivial read", SQL: "select pg_is_in_recovery(), $1::int8 + 1", Arg: 41, Want: 42}
	ReadScan    = ReadQuery{Name: "5k-row scan", SQL: "select pg_is_in_recovery(), sum(i)::int8 from generate_series(1, $1::int8) i", Arg: 5000, Want: 5000 * 5001 / 2}
)

// Reader runs one read: QueryRow on a pool, or on Pool.Replica().
type Reader func(ctx context.Context, sql string, args ...any) pgx.Row

// ReadResult counts a read load's outcomes.
type ReadResult struct {
	Reads, Errors int64
	// OnReplica counts reads a server in recovery served.
	OnReplica int64
	Elapsed   time.Duration
}

// QPS is successful reads per second.
func (r ReadResult) QPS() float64 { return float64(r.Reads-r.Errors) / r.Elapsed.Seconds() }

// ReplicaShare is the share of successful reads a replica served, 0 to 1.
func (r ReadResult) ReplicaShare() float64 {
	if ok := r.Reads - r.Errors; ok > 0 {
		return float64(r.OnReplica) / float64(ok)
	}
	return 0
}

// RunReads runs goroutines × perGoroutine reads of q; goroutine g's i-th
// read goes to readers[(g+i) % len(readers)], so two readers split the
// reads evenly at every moment of the load.
func RunReads(ctx context.Context, q ReadQuery, goroutines, perGoroutine int, readers ...Reader) ReadResult {
	var reads, errs, onRep atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perGoroutine {
				var in bool
				var got int64
				err := readers[(g+i)%len(readers)](ctx, q.SQL, q.Arg).Scan(&in, &got)
				reads.Add(1)
				switch {
				case err != nil || got != q.Want:
					errs.Add(1)
				case in:
					onRep.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ReadResult{Reads: reads.Load(), Errors: errs.Load(), OnReplica: onRep.Load(), Elapsed: time.Since(start)}
}

// CheckReads says what went wrong in r, if anything: errors, or reads
// served elsewhere than wantShare of them on a replica (±1 read per
// goroutine for the split's rounding, and a slack for a replica taken out
// of use by a lag check mid-load).
func CheckReads(r ReadResult, wantShare float64) error {
	if r.Errors > 0 {
		return fmt.Errorf("bench: %d of %d reads failed or returned a wrong value", r.Errors, r.Reads)
	}
	if d := r.ReplicaShare() - wantShare; d > 0.05 || d < -0.05 {
		return fmt.Errorf("bench: %.1f%% of reads ran on a replica, expected %.0f%%", 100*r.ReplicaShare(), 100*wantShare)
	}
	return nil
}
