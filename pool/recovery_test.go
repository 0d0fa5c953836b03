package pool_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// load runs queries on both routes until stopped, counting outcomes.
type load struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(ctx context.Context, p *pool.Pool) *load {
	l := &load{stop: make(chan struct{})}
	for g := 0; g < 8; g++ {
		l.wg.Add(1)
		go func(g int) {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var err error
				if g%4 == 0 {
					var tx interface{ Commit(context.Context) error }
					if t, e := p.Begin(qctx); e == nil {
						tx = t
						_, err = t.Exec(qctx, "select 1")
						if cerr := tx.Commit(qctx); err == nil {
							err = cerr
						}
					} else {
						err = e
					}
				} else {
					var n int
					err = p.QueryRow(qctx, "select $1::int", g).Scan(&n)
				}
				cancel()
				if err != nil {
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
					time.Sleep(10 * time.Millisecond)
				} else {
					l.ok.Add(1)
				}
			}
		}(g)
	}
	return l
}

func (l *load) halt() { close(l.stop); l.wg.Wait() }

// recovered waits until both routes answer again, the way a service's
// next requests would.
func recovered(t *testing.T, ctx context.Context, p *pool.Pool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := errors.Join(p.PingRoute(qctx, pool.Pooled), p.PingRoute(qctx, pool.Direct))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool did not recover after %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPoolRecoversFromRestartsUnderLoad(t *testing.T) {
	noLeaks(t)
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 30})
	ctx := testCtx(t)
	p := newPool(t, bed, nil)
	l := startLoad(ctx, p)
	defer func() {
		select {
		case <-l.stop:
		default:
			l.halt()
		}
	}()

	faults := []struct {
		name string
		do   func() error
	}{
		{"fast postgres restart", func() error { return bed.RestartPostgres(ctx, testbed.Fast) }},
		{"immediate postgres restart", func() error { return bed.RestartPostgres(ctx, testbed.Immediate) }},
		{"pgbouncer stop/start", func() error {
			if err := bed.StopPooler(); err != nil {
				return err
			}
			time.Sleep(200 * time.Millisecond)
			return bed.StartPooler(ctx)
		}},
	}
	for _, f := range faults {
		before := l.ok.Load()
		time.Sleep(200 * time.Millisecond)
		require.Greater(t, l.ok.Load(), before, "load runs before %s", f.name)
		failedBefore := l.failed.Load()
		testbed.Fault(t, f.do())
		recovered(t, ctx, p, f.name)
		after := l.ok.Load()
		require.Eventually(t, func() bool { return l.ok.Load() > after+50 }, 30*time.Second, 10*time.Millisecond,
			"queries succeed again after %s", f.name)
		t.Logf("%s: %d queries failed during the fault (last: %v)", f.name, l.failed.Load()-failedBefore, l.lastErr.Load())
	}
	l.halt()
	st := p.Stat()
	assert.LessOrEqual(t, st.Pooled.TotalConns, st.Pooled.MaxConns)
	assert.LessOrEqual(t, st.Direct.TotalConns, st.Direct.MaxConns)
}

// A pooler that accepts TCP and never answers must not pin the route:
// each connection attempt ends at the connect timeout (10s by default,
// connect_timeout in the URL wins), so once the pooler answers again calls
// succeed, although callers gave up meanwhile.
func TestHungPoolerDoesNotPinTheRoute(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name  string
		param string
		wait  time.Duration // how long the first call after recovery may take
	}{
		{"default connect timeout", "", 40 * time.Second},
		{"connect_timeout in the URL", "&connect_timeout=1", 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, pooled := newHangProxy(t, bed.PooledURL)
			proxy.setHang(true)
			p := newPool(t, bed, func(c *pool.Config) { c.PooledURL = pooled + tc.param; c.MaxConns = 1 })
			var wg sync.WaitGroup
			for i := 0; i < 6; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					defer cancel()
					_, err := p.Exec(short, "select 1")
					assert.ErrorIs(t, err, context.DeadlineExceeded)
				}()
			}
			wg.Wait()
			proxy.setHang(false)
			wctx, cancel := context.WithTimeout(ctx, tc.wait)
			defer cancel()
			_, err := p.Exec(wctx, "select 1")
			require.NoError(t, err, "the route recovers once the pooler answers")
		})
	}
}

// PgBouncer's PAUSE: connections are accepted and queries wait. Callers
// whose contexts end get their error, and calls succeed after RESUME.
func TestPausedPoolerRecovers(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{})
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxConns = 2 })
	require.NoError(t, p.Ping(ctx))
	testbed.Fault(t, bed.PausePooler(ctx))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			_, err := p.Exec(short, "select 1")
			assert.Error(t, err)
		}()
	}
	wg.Wait()
	testbed.Fault(t, bed.ResumePooler(ctx))
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := p.Exec(wctx, "select 1")
	require.NoError(t, err)
}
