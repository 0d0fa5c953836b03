package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// replicaReads starts a streaming replica of the bed's PostgreSQL and
// measures, in one run with rounds alternated:
//
//   - read throughput with the reads split evenly between the primary
//     (Pool's QueryRow) and the replica (Replica().QueryRow), against the
//     same reads all on the primary, on one Pool;
//   - the cost of the replica lane (its routing and its lag check) per
//     read: Replica().QueryRow against the same reads on a second Pool
//     whose only URL is the replica's, so they take supapool's ordinary
//     route there, with no lag check;
//   - the lag queries per read, counted (ReplicaStat.LagChecks).
//
// Both servers run on this machine's cores, so the split cannot add CPU:
// on one 2-core machine the rows show overhead and correctness (every
// replica read served where pg_is_in_recovery() is true, none failed)
// more than scale-out.
func replicaReads(ctx context.Context, bed *testbed.Bed, sz sizes, out io.Writer, progress func(string, ...any)) error {
	rep, err := bed.StartReplica(ctx)
	if err != nil {
		return err
	}
	defer rep.Close()
	goroutines := min(sz.modeGoroutines, 16)
	per := max(sz.modeQueries, 10)
	rounds := sz.pgbenchRounds
	progress("replica: %d rounds of %d goroutines × %d reads, 2 reads × 4 routes; on one machine this shows overhead and correctness more than scale-out", rounds, goroutines, per)

	// No pooler on either side, so primary and replica reads take the
	// same kind of connection.
	sp, err := pool.New(ctx, pool.Config{AppName: "bench_replica", DirectURL: bed.DirectURL, MaxConns: int32(goroutines), ReplicaURLs: []string{rep.DirectURL}})
	if err != nil {
		return err
	}
	defer sp.Close()
	plain, err := pool.New(ctx, pool.Config{AppName: "bench_replica_plain", DirectURL: rep.DirectURL, MaxConns: int32(goroutines)})
	if err != nil {
		return err
	}
	defer plain.Close()

	primary := bench.Reader(sp.QueryRow)
	replica := bench.Reader(sp.Replica().QueryRow)
	variants := []struct {
		readers []bench.Reader
		share   float64 // of reads on the replica
	}{
		{[]bench.Reader{primary}, 0},           // 0: primary alone
		{[]bench.Reader{primary, replica}, .5}, // 1: spread over primary + replica
		{[]bench.Reader{replica}, 1},           // 2: all on Replica()
		{[]bench.Reader{plain.QueryRow}, 1},    // 3: the replica through a plain route, no lag check
	}
	for qi, q := range []bench.ReadQuery{bench.ReadTrivial, bench.ReadScan} {
		n := per
		if qi == 1 {
			n = max(per/10, 10) // the scan is dearer; keep the step a few minutes at most
		}
		// Warm every route (connections open, statements described).
		for _, v := range variants {
			if err := bench.CheckReads(bench.RunReads(ctx, q, goroutines, 5, v.readers...), v.share); err != nil {
				return fmt.Errorf("replica warm-up: %w", err)
			}
		}
		qps := make([][]float64, len(variants))
		spread, lane := []float64{}, []float64{}
		var laneReads int64 // reads sent through Replica()
		checks0, start := sp.Stat().Replicas[0].LagChecks, time.Now()
		for r := 0; r < rounds; r++ {
			got := make([]float64, len(variants))
			for k := range variants {
				i := (k + r) % len(variants) // no variant always goes first
				res := bench.RunReads(ctx, q, goroutines, n, variants[i].readers...)
				if err := bench.CheckReads(res, variants[i].share); err != nil {
					return fmt.Errorf("replica, %s, variant %d: %w", q.Name, i, err)
				}
				got[i] = res.QPS()
				qps[i] = append(qps[i], res.QPS())
				if i == 1 || i == 2 {
					laneReads += res.OnReplica
				}
			}
			spread = append(spread, got[1]/got[0])
			lane = append(lane, got[2]/got[3])
		}
		elapsed := time.Since(start)
		checks := sp.Stat().Replicas[0].LagChecks - checks0
		fmt.Fprintf(out, "| %s, %d goroutines: spread over primary + 1 replica (50%% served in recovery, 0 errors) vs primary alone; one 2-core machine: overhead and correctness, not scale-out | %.0f qps | %.0f qps | %.2f× |\n",
			q.Name, goroutines, median(qps[1]), median(qps[0]), median(spread))
		fmt.Fprintf(out, "| %s, %d goroutines: Replica() (routing + lag check) vs the same reads on a plain pool to the replica (no lag check) | %.0f qps | %.0f qps | %.2f× |\n",
			q.Name, goroutines, median(qps[2]), median(qps[3]), median(lane))
		fmt.Fprintf(out, "| %s: lag queries sent (counted, ReplicaStat.LagChecks), none by the calls: the check runs once a second in the background, so per read it is 1/(reads per second) | %d in %.1fs (%.2f/s) for %d Replica() reads | 0 | %.5f per read |\n",
			q.Name, checks, elapsed.Seconds(), float64(checks)/elapsed.Seconds(), laneReads, float64(checks)/float64(max(laneReads, 1)))
	}
	return nil
}
