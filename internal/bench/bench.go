// Package bench holds the workloads behind supapool's numbers, shared by
// the packages' Go benchmarks and by examples/bench, which prints them as
// ratios measured side by side in one run. Every workload runs against
// real servers (see internal/testbed).
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/pool"
)

// Result counts a load's outcomes.
type Result struct {
	Queries, Errors int64
	Codes           map[string]int64 // SQLSTATE (or ErrServerFull, other) → count
	Elapsed         time.Duration
	// ElasticClosed is the connections supapool's pools closed to share
	// the server (pool.RouteStat.ElasticClosed), Retried their refused
	// connection attempts and Views their looks at pg_stat_activity,
	// each summed over the pools (storms only).
	ElasticClosed, Retried, Views int64
	// Spread is the slowest pool's time to finish its queries over the
	// median pool's (storms only): a storm's time is its slowest pool's,
	// so a pool that got fewer connections than the others is what a
	// storm's throughput loses to.
	Spread float64
}

// The storms' queries: a cheap one, and one that holds its connection for
// a millisecond, as a real query does. Both return $1 + 1.
const (
	QueryAdd   = "select $1::int + 1"
	QuerySleep = "select $1::int + 1 from pg_sleep(0.001)"
)

// QPS is successful queries per second.
func (r Result) QPS() float64 { return float64(r.Queries-r.Errors) / r.Elapsed.Seconds() }

// ErrorRate is the share of queries that failed, 0 to 1.
func (r Result) ErrorRate() float64 {
	if r.Queries == 0 {
		return 0
	}
	return float64(r.Errors) / float64(r.Queries)
}

// Execer is what a load needs from a pool: pgxpool.Pool and pool.Pool both
// are one.
type Execer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Close()
}

// Load runs goroutines × queries of a one-row query on p and counts
// outcomes.
func Load(ctx context.Context, p Execer, goroutines, queries int) Result {
	return loadAll(ctx, []Execer{p}, goroutines, queries, QueryAdd, nil)
}

func loadAll(ctx context.Context, pools []Execer, goroutines, queries int, sql string, onQuery func()) Result {
	var total, failed atomic.Int64
	var mu sync.Mutex
	codes := map[string]int64{}
	var wg sync.WaitGroup
	finish := make([]time.Duration, len(pools))
	start := time.Now()
	for i, p := range pools {
		var pw sync.WaitGroup // the pool's own goroutines
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			pw.Add(1)
			go func(p Execer) {
				defer wg.Done()
				defer pw.Done()
				for q := 0; q < queries; q++ {
					total.Add(1)
					var n int
					if err := p.QueryRow(ctx, sql, q).Scan(&n); err != nil || n != q+1 {
						failed.Add(1)
						mu.Lock()
						codes[ErrCode(err)]++
						mu.Unlock()
					} else if onQuery != nil {
						onQuery()
					}
				}
			}(p)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pw.Wait()
			finish[i] = time.Since(start)
		}()
	}
	wg.Wait()
	res := Result{Queries: total.Load(), Errors: failed.Load(), Codes: codes, Elapsed: time.Since(start)}
	if len(pools) > 1 {
		sort.Slice(finish, func(i, j int) bool { return finish[i] < finish[j] })
		res.Spread = finish[len(finish)-1].Seconds() / finish[len(finish)/2].Seconds()
	}
	return res
}

// ErrCode names how a query failed, for counting: the SQLSTATE of a
// server's error, "ErrServerFull" for supapool's, "wrong result" for no
// error (the query ran and returned something else), "other" otherwise.
func ErrCode(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return "wrong result"
	case errors.As(err, &pgErr):
		return pgErr.Code
	case errors.Is(err, pool.ErrServerFull):
		return "ErrServerFull"
	}
	return "other"
}

// Storm is the seed's incident: Apps × Instances pools, each with
// Goroutines running Queries short queries, against one server.
type Storm struct {
	Apps, Instances, Goroutines, Queries int
	// Caps gives each app's pooled cap per instance.
	Caps func(app string) int32
	// Plain uses hand-configured pgxpool instead of supapool.
	Plain bool
	// Query is the statement each goroutine runs; default QueryAdd.
	Query string
	// Budget, when set, is the SUPAPOOL_BUDGET of every supapool pool:
	// its weights steer elastic sharing, and Caps still sets the caps
	// (as DATABASE_MAX_CONNS).
	Budget string
	// NoElastic turns supapool's elastic sharing off (DATABASE_ELASTIC=off).
	NoElastic bool
	// OnQuery, when set, runs after each query that succeeded.
	OnQuery func()
	// onClose, when set, sees each supapool pool just before it closes.
	onClose func(*pool.Pool)
}

// newPool makes one of the storm's supapool pools the way a service does,
// from its environment.
func (s Storm) newPool(ctx context.Context, directURL, app string) (*pool.Pool, error) {
	env := map[string]string{
		pool.EnvDirectURL: directURL,
		pool.EnvAppName:   app,
		pool.EnvMaxConns:  strconv.Itoa(int(s.Caps(app))),
		pool.EnvBudget:    s.Budget,
	}
	if s.NoElastic {
		env[pool.EnvElastic] = "off"
	}
	cfg, err := pool.ConfigFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return nil, err
	}
	return pool.New(ctx, cfg)
}

func (s Storm) query() string {
	if s.Query == "" {
		return QueryAdd
	}
	return s.Query
}

// RunStorm runs the storm with every pool on directURL (no pooler, as a
// service pointed at DATABASE_URL alone would be). It returns once the
// storm's backends have left the server, so one storm's closing
// connections never count against the next.
func RunStorm(ctx context.Context, directURL string, s Storm) (res Result, err error) {
	var pools []Execer
	defer func() {
		for _, p := range pools {
			if sp, ok := p.(*pool.Pool); ok && s.onClose != nil {
				s.onClose(sp)
			}
			p.Close()
		}
		if derr := drain(ctx, directURL); err == nil {
			err = derr
		}
	}()
	for a := 0; a < s.Apps; a++ {
		name := "storm_app" + strconv.Itoa(a)
		for i := 0; i < s.Instances; i++ {
			if s.Plain {
				cfg, err := pgxpool.ParseConfig(directURL)
				if err != nil {
					return Result{}, err
				}
				cfg.MaxConns = s.Caps(name)
				cfg.ConnConfig.RuntimeParams["application_name"] = name
				p, err := pgxpool.NewWithConfig(ctx, cfg)
				if err != nil {
					return Result{}, err
				}
				pools = append(pools, p)
				continue
			}
			p, err := s.newPool(ctx, directURL, name)
			if err != nil {
				return Result{}, err
			}
			pools = append(pools, p)
		}
	}
	res = loadAll(ctx, pools, s.Goroutines, s.Queries, s.query(), s.OnQuery)
	for _, p := range pools {
		if sp, ok := p.(*pool.Pool); ok {
			st := sp.Stat()
			res.ElasticClosed += st.Pooled.ElasticClosed + st.Direct.ElasticClosed
			res.Retried += st.Pooled.Retried + st.Direct.Retried
			res.Views += st.Pooled.ElasticViews + st.Direct.ElasticViews
		}
	}
	return res, nil
}

// drain waits until no backend of a storm app is left on the server.
func drain(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := 0; i < 200; i++ {
		var n int
		if err := conn.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name like 'storm\\_app%'").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("bench: the storm's connections did not close within 10s")
}

// Fixed returns a Caps function giving every app n.
func Fixed(n int32) func(string) int32 { return func(string) int32 { return n } }

// Latency summarises notification latencies.
type Latency struct {
	N            int
	Elapsed      time.Duration // first send to last receipt
	P50, P99     time.Duration
	PerSecond    float64
	Missing      int
	OutOfOrderAt int // index of the first out-of-order payload, -1 if none
}

// Listen sends n notifications on channel from a connection of its own
// and reads their payloads from recv, where the listener under test puts
// them. Payloads carry the send time, so latency is measured end to end.
func Listen(ctx context.Context, notifyURL, channel string, n int, recv <-chan string) (Latency, error) {
	sender, err := pgx.Connect(ctx, notifyURL)
	if err != nil {
		return Latency{}, err
	}
	defer sender.Close(context.Background())
	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		const batch = 50
		for i := 0; i < n; i += batch {
			b := &pgx.Batch{}
			for j := i; j < i+batch && j < n; j++ {
				b.Queue("select pg_notify($1, $2)", channel, strconv.Itoa(j)+" "+strconv.FormatInt(time.Now().UnixNano(), 10))
			}
			if err := sender.SendBatch(ctx, b).Close(); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	lat := make([]time.Duration, 0, n)
	l := Latency{N: n, OutOfOrderAt: -1}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for i := 0; i < n; i++ {
		select {
		case p := <-recv:
			var seq int
			var sent int64
			if _, err := fmt.Sscanf(p, "%d %d", &seq, &sent); err != nil {
				return l, fmt.Errorf("bench: bad payload %q", p)
			}
			if seq != i && l.OutOfOrderAt < 0 {
				l.OutOfOrderAt = i
			}
			lat = append(lat, time.Since(time.Unix(0, sent)))
		case <-timeout.C:
			l.Missing = n - i
			i = n
		}
	}
	l.Elapsed = time.Since(start)
	if err := <-sendErr; err != nil {
		return l, err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		l.P50 = lat[len(lat)/2]
		l.P99 = lat[len(lat)*99/100]
	}
	l.PerSecond = float64(len(lat)) / l.Elapsed.Seconds()
	return l, nil
}

// RawListener is the hand-written baseline: one pgx connection in a
// WaitForNotification loop, payloads sent to out.
func RawListener(ctx context.Context, directURL, channel string, out chan<- string) (stop func(), err error) {
	conn, err := pgx.Connect(ctx, directURL)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(lctx)
			if err != nil {
				return
			}
			out <- n.Payload
		}
	}()
	return func() {
		cancel()
		<-done
		conn.Close(context.Background())
	}, nil
}

// StormSpec is the storm's budget: s.Apps apps (storm_app0, ...) of
// s.Instances instances each on a server of 60 connections with 3
// reserved, no pooler, and no direct connections (the storm uses the
// pooled route only). Its plan gives each instance 2.
func StormSpec(s Storm) budget.Spec {
	spec := budget.Spec{Limit: 60, Reserved: 3}
	for a := 0; a < s.Apps; a++ {
		spec.Apps = append(spec.Apps, budget.App{Name: "storm_app" + strconv.Itoa(a), Instances: s.Instances})
	}
	return spec
}

// WriteSpec writes spec as a JSON spec file in dir and returns its path,
// for SUPAPOOL_BUDGET.
func WriteSpec(dir string, spec budget.Spec) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "budget.json")
	return path, os.WriteFile(path, b, 0o600)
}
