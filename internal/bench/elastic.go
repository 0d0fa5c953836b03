package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/pgstat"
	"github.com/supapool/supapool/pool"
)

// Elastic sharing's workloads (pool/elastic.go): the storm with caps too
// high for the server, a population of instances that come and go, and a
// budget that fits, each counting what sharing cost in reconnects.

// ElasticResult is a storm or flow's outcome with the connections it
// cost.
type ElasticResult struct {
	Result
	// Opened is the connections the server accepted for the run's
	// database (pg_stat_database.sessions), the bench's own drain
	// connection excluded: the storm's first connections plus every
	// reconnect.
	Opened int64
	// ChurnLastMinute is the pools' ElasticClosedLastMinute summed at the
	// end of the run (pools closed by a flow are counted when they close).
	ChurnLastMinute int64
	// MaxClients is the most client backends of the run's role seen at
	// once (sampled every SampleEvery), and Usable the slots an ordinary
	// role may use; 0 when nothing was sampled.
	MaxClients, Usable int
	// Created and Closed count the instances a flow started and stopped
	// besides its fixed population.
	Created, Closed int
}

// Sessions reads the server's count of sessions ever opened on the
// database directURL names, over adminURL (a superuser on another
// database, so that reading does not count itself). The server counts a
// session when its backend flushes its statistics, at the latest when
// it exits.
func Sessions(ctx context.Context, adminURL, directURL string) (int64, error) {
	db, err := dbName(directURL)
	if err != nil {
		return 0, err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return 0, fmt.Errorf("bench: sessions: %w", err)
	}
	defer conn.Close(context.Background())
	var n int64
	if _, err := conn.Exec(ctx, "select pg_stat_clear_snapshot()"); err != nil {
		return 0, fmt.Errorf("bench: sessions: %w", err)
	}
	if err := conn.QueryRow(ctx, "select coalesce(sum(sessions), 0)::int8 from pg_stat_database where datname = $1", db).Scan(&n); err != nil {
		return 0, fmt.Errorf("bench: sessions: %w", err)
	}
	return n, nil
}

func dbName(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", errors.New("bench: directURL is not a URL")
	}
	db := strings.TrimPrefix(p.Path, "/")
	if db == "" {
		return "", errors.New("bench: directURL names no database")
	}
	return db, nil
}

// RunElasticStorm is RunStorm with the connections it opened counted:
// adminURL reads the server's session counter before and after.
func RunElasticStorm(ctx context.Context, adminURL, directURL string, s Storm) (ElasticResult, error) {
	before, err := Sessions(ctx, adminURL, directURL)
	if err != nil {
		return ElasticResult{}, err
	}
	var churn int64
	s.onClose = func(p *pool.Pool) {
		st := p.Stat()
		churn += st.Pooled.ElasticClosedLastMinute + st.Direct.ElasticClosedLastMinute
	}
	res, err := RunStorm(ctx, directURL, s)
	if err != nil {
		return ElasticResult{}, err
	}
	after, err := Sessions(ctx, adminURL, directURL)
	if err != nil {
		return ElasticResult{}, err
	}
	return ElasticResult{Result: res, Opened: after - before - 1, ChurnLastMinute: churn}, nil
}

// PlannedCaps returns the caps the storm's budget (StormSpec) plans per
// instance, and the spec file's path written in dir.
func PlannedCaps(s Storm, dir string) (caps func(string) int32, specPath string, err error) {
	spec := StormSpec(s)
	plan, err := budget.Plan(spec)
	if err != nil {
		return nil, "", err
	}
	path, err := WriteSpec(dir, spec)
	if err != nil {
		return nil, "", err
	}
	return func(app string) int32 { return plan.For(app).MaxConns }, path, nil
}

// Flow is a storm that runs for a time instead of a number of queries:
// Apps × Instances pools, each with Goroutines running Query back to
// back. With Every set, one more instance comes and one goes every Every:
// instances start (a new Pool, a new instance id) and the oldest ones
// close, so that the population swings between its size and Swing above
// it.
type Flow struct {
	Storm
	For time.Duration
	// Every is how often an instance comes or goes; 0 keeps the
	// population fixed.
	Every time.Duration
	// Swing is how many instances above the fixed population come before
	// they go again (default 4).
	Swing int
	// AdminURL, when set, is a superuser's URL on another database: the
	// flow counts the sessions opened over it, and with Sample set it
	// samples the server's client backends every SampleEvery (default
	// 100 ms) over a connection of its own, held for the run, which
	// takes a slot.
	AdminURL    string
	Sample      bool
	SampleEvery time.Duration
}

// instance is one running pool of a flow.
type instance struct {
	p      *pool.Pool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// RunFlow runs f against directURL and returns its outcome. Errors count
// every failed query but those a closing instance cut short itself.
func RunFlow(ctx context.Context, directURL string, f Flow) (res ElasticResult, err error) {
	var before int64
	if f.AdminURL != "" {
		if before, err = Sessions(ctx, f.AdminURL, directURL); err != nil {
			return ElasticResult{}, err
		}
	}
	var total, failed atomic.Int64
	var mu sync.Mutex
	codes := map[string]int64{}
	var closed, churn, retried, views int64
	sql := f.query()
	start := func(app string) (*instance, error) {
		p, err := f.newPool(ctx, directURL, app)
		if err != nil {
			return nil, err
		}
		lctx, cancel := context.WithCancel(ctx)
		in := &instance{p: p, cancel: cancel}
		for g := 0; g < f.Goroutines; g++ {
			in.wg.Add(1)
			go func() {
				defer in.wg.Done()
				for q := 0; lctx.Err() == nil; q++ {
					var n int
					err := p.QueryRow(lctx, sql, q).Scan(&n)
					if lctx.Err() != nil && err != nil {
						return // cut short by its own instance's end
					}
					total.Add(1)
					if err != nil || n != q+1 {
						failed.Add(1)
						mu.Lock()
						codes[ErrCode(err)]++
						mu.Unlock()
					}
				}
			}()
		}
		return in, nil
	}
	stop := func(in *instance) {
		in.cancel()
		in.wg.Wait()
		st := in.p.Stat()
		mu.Lock()
		closed += st.Pooled.ElasticClosed + st.Direct.ElasticClosed
		churn += st.Pooled.ElasticClosedLastMinute + st.Direct.ElasticClosedLastMinute
		retried += st.Pooled.Retried + st.Direct.Retried
		views += st.Pooled.ElasticViews + st.Direct.ElasticViews
		mu.Unlock()
		in.p.Close()
	}
	var live []*instance
	defer func() {
		for _, in := range live {
			stop(in)
		}
		if derr := drain(ctx, directURL); err == nil {
			err = derr
		}
	}()

	var sampleStop func() (int, int, error)
	if f.AdminURL != "" && f.Sample {
		if sampleStop, err = sampleClients(ctx, f.AdminURL, f.SampleEvery); err != nil {
			return ElasticResult{}, err
		}
	}
	began := time.Now()
	for a := 0; a < f.Apps; a++ {
		for i := 0; i < f.Instances; i++ {
			in, err := start("storm_app" + strconv.Itoa(a))
			if err != nil {
				return ElasticResult{}, err
			}
			live = append(live, in)
		}
	}
	swing := f.Swing
	if swing == 0 {
		swing = 4
	}
	fixed := len(live)
	deadline := time.NewTimer(f.For)
	defer deadline.Stop()
	var tick <-chan time.Time
	if f.Every > 0 {
		t := time.NewTicker(f.Every)
		defer t.Stop()
		tick = t.C
	}
	growing, next := true, 0
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return ElasticResult{}, ctx.Err()
		case <-deadline.C:
			done = true
		case <-tick:
			if growing {
				// A new instance of the next app: it joins a full server.
				in, err := start("storm_app" + strconv.Itoa(next%max(f.Apps, 1)))
				if err != nil {
					return ElasticResult{}, err
				}
				next++
				live = append(live, in)
				res.Created++
				growing = len(live) < fixed+swing
				continue
			}
			// The oldest instance goes.
			old := live[0]
			live = live[1:]
			stop(old)
			res.Closed++
			growing = len(live) <= fixed
		}
	}
	// The run ends here for every instance at once: queries counted so
	// far, and no instance left running while the others stop one by one
	// (it would grow into their slots and count queries after the end).
	elapsed := time.Since(began)
	queries, fails := total.Load(), failed.Load()
	for _, in := range live {
		in.cancel()
	}
	for _, in := range live {
		stop(in)
	}
	live = nil
	if sampleStop != nil {
		if res.MaxClients, res.Usable, err = sampleStop(); err != nil {
			return ElasticResult{}, err
		}
	}
	if err := drain(ctx, directURL); err != nil {
		return ElasticResult{}, err
	}
	res.Queries, res.Errors, res.Codes, res.Elapsed = queries, fails, codes, elapsed
	res.ElasticClosed, res.ChurnLastMinute, res.Retried, res.Views = closed, churn, retried, views
	if f.AdminURL != "" {
		after, err := Sessions(ctx, f.AdminURL, directURL)
		if err != nil {
			return ElasticResult{}, err
		}
		res.Opened = after - before - 1 // the drain's connection
	}
	return res, nil
}

// sampleClients counts the client backends of every role but the
// superuser's (pgstat.ClientBackend) every every, over one connection of
// adminURL's, until stop is called; stop returns the most seen and the
// usable slots.
func sampleClients(ctx context.Context, adminURL string, every time.Duration) (stop func() (int, int, error), err error) {
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("bench: sample clients: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	var most, usable int
	var serr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			var n, u int
			err := conn.QueryRow(sctx, `select count(*) filter (where `+pgstat.ClientBackend+` and not usesysid in (select oid from pg_roles where rolsuper)), `+pgstat.Usable+` from pg_stat_activity`).Scan(&n, &u)
			if sctx.Err() != nil {
				return
			}
			if err != nil {
				serr = err
				return
			}
			most, usable = max(most, n), u
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() (int, int, error) {
		cancel()
		<-done
		conn.Close(context.Background())
		if serr != nil {
			return 0, 0, fmt.Errorf("bench: sample clients: %w", serr)
		}
		return most, usable, nil
	}, nil
}
