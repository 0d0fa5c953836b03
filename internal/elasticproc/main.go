// Command elasticproc is one instance of elastic sharing's storm as a
// process of its own, for the test that starts it many times against one
// server (pool/elastic_process_test.go): nothing shared inside one test
// binary can then make sharing work. It builds its Pool from the
// environment as a service does (DATABASE_URL, DATABASE_APP_NAME,
// DATABASE_MAX_CONNS, SUPAPOOL_BUDGET, DATABASE_ELASTIC), runs goroutines
// of a one-row query, and prints one JSON line (Report) on stdout.
//
//	elasticproc -goroutines 10 -for 10s        # run for a time
//	elasticproc -goroutines 10 -queries 10     # or a number of queries each
//	elasticproc -queries 200 -cpuprofile p.out # and write a CPU profile
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/pool"
)

// Report is the process's one line of output.
type Report struct {
	Queries, Errors int64
	Codes           map[string]int64
	// FirstMillis is the time from the process's start to its first
	// successful query.
	FirstMillis, ElapsedMillis int64
	// Closed is the connections elastic sharing closed (ElasticClosed),
	// Views its looks at the server, Refused the connection attempts the
	// server refused (Retried).
	Closed, Views, Refused int64
	// CPUMillis is the process's CPU time (user and system), start to end.
	CPUMillis int64
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "elasticproc:", err)
		os.Exit(1)
	}
}

func run() error {
	start := time.Now()
	goroutines := flag.Int("goroutines", 10, "goroutines running queries")
	queries := flag.Int("queries", 0, "queries per goroutine (0: run for -for)")
	dur := flag.Duration("for", 10*time.Second, "how long to run when -queries is 0")
	sleep := flag.Bool("sleep", true, "hold each connection for a millisecond (pg_sleep(0.001))")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *goroutines < 1 {
		return errors.New("-goroutines must be at least 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := pool.ConfigFromEnv()
	if err != nil {
		return err
	}
	p, err := pool.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	sql := "select $1::int + 1"
	if *sleep {
		sql = "select $1::int + 1 from pg_sleep(0.001)"
	}
	var until time.Time
	if *queries == 0 {
		until = start.Add(*dur)
	}
	var total, failed atomic.Int64
	var first atomic.Int64
	var mu sync.Mutex
	codes := map[string]int64{}
	var wg sync.WaitGroup
	for g := 0; g < *goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := 0; ; q++ {
				if *queries > 0 && q >= *queries || *queries == 0 && time.Now().After(until) {
					return
				}
				var n int
				err := p.QueryRow(ctx, sql, q).Scan(&n)
				total.Add(1)
				if err != nil || n != q+1 {
					failed.Add(1)
					mu.Lock()
					codes[code(err)]++
					mu.Unlock()
					continue
				}
				first.CompareAndSwap(0, int64(time.Since(start)/time.Millisecond)+1)
			}
		}()
	}
	wg.Wait()
	st := p.Stat()
	return json.NewEncoder(os.Stdout).Encode(Report{
		Queries: total.Load(), Errors: failed.Load(), Codes: codes,
		FirstMillis: first.Load(), ElapsedMillis: int64(time.Since(start) / time.Millisecond),
		Closed:    st.Pooled.ElasticClosed + st.Direct.ElasticClosed,
		Views:     st.Pooled.ElasticViews + st.Direct.ElasticViews,
		Refused:   st.Pooled.Retried + st.Direct.Retried,
		CPUMillis: int64(bench.ProcessCPU() / time.Millisecond),
	})
}

// code names how a query failed (bench.ErrCode), with the error's text
// for a failure of no known kind.
func code(err error) string {
	if c := bench.ErrCode(err); c != "other" {
		return c
	}
	return err.Error()
}
