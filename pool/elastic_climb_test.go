package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// A route opens its first two connections at once and every one beyond
// only after a look at the server taken while it held all the others: by
// the time its connections (opened or being opened) first number k > 2,
// it has looked at least k-2 times. Before route.mayClimb a busy route on
// a roomy server looked once and climbed to its cap within a few
// milliseconds.
func TestElasticClimbsAfterLooking(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	p, err := pool.New(ctx, pool.Config{AppName: "climb", DirectURL: bed.DirectURL, MaxConns: 4})
	require.NoError(t, err)
	defer p.Close()
	load, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
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
	// viewsAt[k] is the route's looks when it first had k connections:
	// looks only grow, so a sample taken late can only show more.
	viewsAt := map[int32]int64{}
	deadline := time.Now().Add(20 * time.Second)
	for len(viewsAt) < 4 && time.Now().Before(deadline) {
		s := p.Stat().Pooled
		for k := int32(1); k <= s.TotalConns; k++ {
			if _, ok := viewsAt[k]; !ok {
				viewsAt[k] = s.ElasticViews
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	require.Len(t, viewsAt, 4, "the route reaches its cap of 4 on an empty server")
	t.Logf("looks when the route first had 1..4 connections: %d %d %d %d", viewsAt[1], viewsAt[2], viewsAt[3], viewsAt[4])
	for k := int32(3); k <= 4; k++ {
		assert.GreaterOrEqual(t, viewsAt[k], int64(k-2), "looks before connection %d", k)
	}
}
