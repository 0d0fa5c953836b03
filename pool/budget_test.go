package pool_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

const e2eSpec = `
limit: 60
reserved: 5   # 3 superuser slots, the test's sampler, one spare
apps:
  - {name: e2e_web,       instances: 4, weight: 2, direct: 1}
  - {name: e2e_api,       instances: 3, weight: 2}
  - {name: e2e_worker,    instances: 2, weight: 1, direct: 2}
  - {name: e2e_reports,   instances: 2, weight: 1, direct: 0}
  - {name: e2e_notifier,  instances: 1, weight: 1, direct: 1}
  - {name: e2e_scheduler, instances: 1, weight: 1, direct: 1}
  - {name: e2e_admin,     instances: 1, weight: 1}
`

// Seven apps, each instance a real Pool configured from SUPAPOOL_BUDGET
// exactly as a service's main.go would be, all under load at once: the
// server never holds more of their connections than the plan allows, and
// no caller sees "too many clients".
func TestBudgetPlanHoldsOnARealServer(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "budget.yaml")
	require.NoError(t, os.WriteFile(path, []byte(e2eSpec), 0o600))
	spec, err := budget.LoadFile(path)
	require.NoError(t, err)
	plan, err := budget.Plan(spec)
	require.NoError(t, err)
	allowed := 0
	for _, a := range plan.Apps() {
		allowed += a.Conns
	}
	require.LessOrEqual(t, allowed, 55)

	var pools []*pool.Pool
	for _, a := range spec.Apps {
		for i := 0; i < a.Instances; i++ {
			env := map[string]string{pool.EnvDirectURL: bed.DirectURL, pool.EnvAppName: a.Name, pool.EnvBudget: path}
			cfg, err := pool.ConfigFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			require.NoError(t, err)
			want := plan.For(a.Name)
			require.Equal(t, want.MaxConns, cfg.MaxConns, a.Name)
			require.Equal(t, want.MaxDirectConns == 0, cfg.NoDirect, a.Name)
			p, err := pool.New(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(p.Close)
			pools = append(pools, p)
		}
	}

	stop := sampleBackends(ctx, bed, testbed.Filter{AppPrefix: "e2e_"})
	var failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for _, p := range pools {
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func(p *pool.Pool, g int) {
				defer wg.Done()
				for q := 0; q < 100; q++ {
					var err error
					if g == 0 {
						var tx pgx.Tx
						if tx, err = p.Begin(ctx); err == nil {
							_, err = tx.Exec(ctx, "select pg_sleep(0.001)")
							if cerr := tx.Commit(ctx); err == nil {
								err = cerr
							}
						}
					} else {
						_, err = p.Exec(ctx, "select pg_sleep(0.001)")
					}
					if err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprint(err))
					}
				}
			}(p, g)
		}
	}
	wg.Wait()
	maxSeen, _ := stop()
	assert.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
	assert.Positive(t, maxSeen)
	assert.LessOrEqual(t, maxSeen, int64(allowed), "backends of the planned apps never exceed the plan")
	t.Logf("plan allows %d connections for %d instances; at most %d seen", allowed, len(pools), maxSeen)
	for _, p := range pools {
		assert.Zero(t, p.Stat().Pooled.Retried, "a plan that fits never meets a full server")
	}
}

func TestNoDirectRoute(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.NoDirect = true })
	tx, err := p.Begin(ctx)
	require.NoError(t, err, "Begin goes to the pooled route")
	assert.False(t, servedDirectly(t, ctx, tx.Conn()))
	require.NoError(t, tx.Rollback(ctx))
	_, err = p.Acquire(ctx, pool.Direct)
	assert.ErrorIs(t, err, pool.ErrNoDirectRoute)
	assert.ErrorIs(t, p.Listener().Listen(ctx, "x", nil), pool.ErrNoDirectRoute)
	assert.ErrorIs(t, p.DirectDB().PingContext(ctx), pool.ErrNoDirectRoute)
	assert.ErrorIs(t, p.PingRoute(ctx, pool.Direct), pool.ErrNoDirectRoute)
	assert.Equal(t, pool.RouteStat{}, p.Stat().Direct)

	_, err = pool.New(ctx, pool.Config{DirectURL: bed.DirectURL, NoDirect: true, TxRoute: pool.Direct})
	assert.Error(t, err)
}
