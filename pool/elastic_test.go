package pool_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// The late joiner: 27 pools with caps 4 keep every slot busy; a 28th
// starts and must run 100 queries. Without elastic sharing it waits until
// one of the others goes quiet, which they never do here.
func TestElasticLateJoiner(t *testing.T) { lateJoiner(t, false, false) }

// The same with a quiet instance that holds only its listener's
// connection, which it never gives back. Before quiet instances counted
// one backend fewer (fairShare.idle), the crowd's busy routes saw that
// idle backend, took the headroom slot to make it yield, and kept it for
// good: the joiner was refused until its context ended.
func TestElasticLateJoinerBesideAListener(t *testing.T) { lateJoiner(t, false, true) }

func lateJoiner(t *testing.T, noElastic, listener bool) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	load, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var crowd []*pool.Pool
	defer func() {
		cancel()
		wg.Wait()
		for _, c := range crowd {
			c.Close()
		}
	}()
	if listener {
		lp, err := pool.New(ctx, pool.Config{AppName: "listens", DirectURL: bed.DirectURL})
		require.NoError(t, err)
		crowd = append(crowd, lp)
		require.NoError(t, lp.Listener().Listen(ctx, "late_news", func(context.Context, *pgconn.Notification) error { return nil }))
	}
	for i := 0; i < 27; i++ {
		p, err := pool.New(ctx, pool.Config{AppName: fmt.Sprintf("late%d", i/4), DirectURL: bed.DirectURL, MaxConns: 4, NoElastic: noElastic})
		require.NoError(t, err)
		crowd = append(crowd, p)
		for g := 0; g < 10; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var n int
				for load.Err() == nil {
					_ = p.QueryRow(load, bench.QuerySleep, 1).Scan(&n)
				}
			}()
		}
	}
	time.Sleep(3 * time.Second) // the crowd fills the server and settles
	// Only a report: while 27 pools reconnect, backends still logging in
	// can hold every slot, the superuser's reserved ones included, so the
	// count's own connection may be refused (53300).
	if clients, err := bed.Count(ctx, testbed.Filter{AppPrefix: "late"}); err == nil {
		t.Logf("the crowd holds %d backends", clients)
	} else {
		t.Logf("could not count the crowd: %v", err)
	}

	start := time.Now()
	p, err := pool.New(ctx, pool.Config{AppName: "late6", DirectURL: bed.DirectURL, MaxConns: 4})
	require.NoError(t, err)
	defer p.Close()
	short, cancelShort := context.WithTimeout(ctx, 20*time.Second) // a generous liveness bound
	defer cancelShort()
	var first time.Duration
	for i := 0; i < 100; i++ {
		var n int
		require.NoError(t, p.QueryRow(short, bench.QuerySleep, i).Scan(&n), "query %d", i)
		if i == 0 {
			first = time.Since(start)
		}
	}
	t.Logf("late joiner: first query after %v, 100 after %v", first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	var closed int64
	for _, c := range crowd {
		closed += c.Stat().Pooled.ElasticClosed
	}
	t.Logf("the crowd closed %d connections to share", closed)
	assert.True(t, p.Stat().Pooled.Elastic)
}
