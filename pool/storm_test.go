package pool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// storm is the seed's incident: 7 apps × 4 instances, each instance its
// own pool, 10 goroutines each, all against one 60-connection server.
type storm struct {
	apps, instances, goroutines, queries int
	caps                                 int32
	plain                                bool // plain pgxpool instead of supapool
}

type stormResult struct {
	queries, errors int64
	codes           map[string]int64
	elapsed         time.Duration
}

func (r stormResult) qps() float64 { return float64(r.queries-r.errors) / r.elapsed.Seconds() }

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Close()
}

func runStorm(tb testing.TB, ctx context.Context, bed *testbed.Bed, s storm) stormResult {
	tb.Helper()
	var pools []execer
	for a := 0; a < s.apps; a++ {
		for i := 0; i < s.instances; i++ {
			name := fmt.Sprintf("storm_app%d", a)
			if s.plain {
				cfg, err := pgxpool.ParseConfig(bed.DirectURL)
				require.NoError(tb, err)
				cfg.MaxConns = s.caps
				cfg.ConnConfig.RuntimeParams["application_name"] = name
				p, err := pgxpool.NewWithConfig(ctx, cfg)
				require.NoError(tb, err)
				pools = append(pools, p)
				continue
			}
			p, err := pool.New(ctx, pool.Config{AppName: name, DirectURL: bed.DirectURL, MaxConns: s.caps})
			require.NoError(tb, err)
			pools = append(pools, p)
		}
	}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	var total, failed atomic.Int64
	var mu sync.Mutex
	codes := map[string]int64{}
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range pools {
		for g := 0; g < s.goroutines; g++ {
			wg.Add(1)
			go func(p execer) {
				defer wg.Done()
				for q := 0; q < s.queries; q++ {
					total.Add(1)
					if _, err := p.Exec(ctx, "select $1::int", q); err != nil {
						failed.Add(1)
						code := "other"
						var pgErr *pgconn.PgError
						if errors.As(err, &pgErr) {
							code = pgErr.Code
						} else if errors.Is(err, pool.ErrServerFull) {
							code = "ErrServerFull"
						}
						mu.Lock()
						codes[code]++
						mu.Unlock()
					}
				}
			}(p)
		}
	}
	wg.Wait()
	return stormResult{queries: total.Load(), errors: failed.Load(), codes: codes, elapsed: time.Since(start)}
}

// With caps too high for the server (28 pools × 4 > 57 usable slots),
// plain pgxpool surfaces "too many clients" to callers; supapool waits for
// a connection instead and no caller sees an error.
func TestStormWithCapsTooHigh(t *testing.T) {
	if testing.Short() {
		t.Skip("storm needs a private 60-connection server")
	}
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	s := storm{apps: 7, instances: 4, goroutines: 10, queries: 50, caps: 4}

	plain := runStorm(t, ctx, bed, storm{apps: s.apps, instances: s.instances, goroutines: s.goroutines, queries: s.queries, caps: s.caps, plain: true})
	t.Logf("plain pgxpool, caps 4: %d of %d queries failed %v", plain.errors, plain.queries, plain.codes)
	assert.Positive(t, plain.codes["53300"], "the storm must overload the server for this test to mean anything")

	got := runStorm(t, ctx, bed, s)
	t.Logf("supapool, caps 4: %d of %d queries failed %v", got.errors, got.queries, got.codes)
	assert.Zero(t, got.errors)
	assert.EqualValues(t, 7*4*10*50, got.queries)
}

// BenchmarkStorm runs the 28-pool storm side by side: plain pgxpool and
// supapool with caps too high (4), and supapool with caps that fit (2).
// Compare qps and errors/op between the sub-benchmarks of one run.
func BenchmarkStorm(b *testing.B) {
	bed := testbed.NewT(b, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(b)
	for _, c := range []struct {
		name  string
		caps  int32
		plain bool
	}{
		{"pgxpool/caps=4", 4, true},
		{"supapool/caps=4", 4, false},
		{"supapool/caps=2", 2, false},
		{"pgxpool/caps=2", 2, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var queries, errs int64
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				r := runStorm(b, ctx, bed, storm{apps: 7, instances: 4, goroutines: 10, queries: 200, caps: c.caps, plain: c.plain})
				queries += r.queries
				errs += r.errors
				elapsed += r.elapsed
			}
			b.ReportMetric(float64(queries-errs)/elapsed.Seconds(), "ok-qps")
			b.ReportMetric(100*float64(errs)/float64(queries), "%errors")
		})
	}
}
