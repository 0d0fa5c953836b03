package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openGate is a gate whose route has opened all its connections.
func openGate(max int32) *gate {
	g := newGate(max, nil)
	g.cap.Store(max)
	return g
}

// queue starts n callers that wait in g, and returns once all are queued;
// each admitted caller sends on the channel.
func queue(t *testing.T, g *gate, n int) <-chan struct{} {
	t.Helper()
	admitted := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			if g.enter(context.Background()) == nil {
				admitted <- struct{}{}
			}
		}()
	}
	require.Eventually(t, func() bool { return g.nwait.Load() == int32(n) }, time.Second, time.Millisecond)
	return admitted
}

// A route opens its connections one after another: the cap starts at one
// and each step waits until the last has become an open connection.
func TestGateStartsAtOneAndClimbs(t *testing.T) {
	g := newGate(4, nil)
	ctx := context.Background()
	assert.EqualValues(t, 1, g.limit())
	require.NoError(t, g.enter(ctx))
	admitted := queue(t, g, 3)
	g.ok(0, true)
	assert.EqualValues(t, 1, g.limit(), "no step before the first connection is open")
	g.ok(1, true)
	<-admitted
	assert.EqualValues(t, 2, g.limit())
	g.ok(1, true)
	assert.EqualValues(t, 2, g.limit(), "one connection being opened at a time")
	g.ok(2, false)
	assert.EqualValues(t, 2, g.limit(), "no step while climbing waits for a look")
	g.ok(2, true)
	<-admitted
	g.ok(3, true)
	<-admitted
	assert.EqualValues(t, 4, g.limit())
	assert.False(t, g.atCap(), "at MaxConns the gate only counts")
	for i := 0; i < 4; i++ {
		g.leave()
	}
	assert.Zero(t, g.inUse.Load())

	one := newGate(1, nil)
	require.NoError(t, one.enter(ctx))
	assert.False(t, one.atCap(), "a cap of one has nothing to climb")
}

func TestGateCapsAndAdmitsInOrder(t *testing.T) {
	g := openGate(3)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		require.NoError(t, g.enter(ctx))
	}
	g.full(2) // server full: only the two we hold... three are in use
	assert.EqualValues(t, 2, g.limit())

	admitted := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func(i int) {
			require.NoError(t, g.enter(ctx))
			admitted <- i
		}(i)
		// Each waiter is queued before the next starts.
		require.Eventually(t, func() bool { return g.nwait.Load() == int32(i+1) }, time.Second, time.Millisecond)
	}
	g.leave() // 2 in use, cap 2: nobody may enter yet
	select {
	case i := <-admitted:
		t.Fatalf("waiter %d admitted over the lowered cap", i)
	case <-time.After(20 * time.Millisecond):
	}
	g.leave()
	assert.Equal(t, 0, <-admitted, "first come, first served")
	g.leave()
	assert.Equal(t, 1, <-admitted)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	// A caller whose context ends while queued leaves no trace.
	assert.ErrorIs(t, g.enter(cctx), context.Canceled)
	g.leave()
	assert.Equal(t, 2, <-admitted)
	assert.EqualValues(t, 2, g.inUse.Load())
	assert.Zero(t, g.nwait.Load())
}

func TestGateRaisesCap(t *testing.T) {
	g := newGate(4, nil)
	ctx := context.Background()
	require.NoError(t, g.enter(ctx))
	g.full(1)
	assert.True(t, g.atCap())
	admitted := queue(t, g, 3)
	g.ok(1, true)
	assert.EqualValues(t, 1, g.limit(), "no probe within raiseEvery of a refusal")
	g.mu.Lock()
	g.lowered = time.Now().Add(-raiseEvery)
	g.mu.Unlock()
	g.ok(1, true)
	<-admitted
	assert.EqualValues(t, 2, g.limit())
	g.ok(1, true)
	assert.EqualValues(t, 2, g.limit(), "the next step waits until the last one is an open connection")
	g.ok(2, true)
	<-admitted
	assert.EqualValues(t, 3, g.limit(), "and then follows at once")
	g.full(2)
	assert.EqualValues(t, 2, g.limit(), "a refusal lowers the cap to what is held")
	g.ok(4, true)
	<-admitted
	assert.EqualValues(t, 4, g.limit(), "at once to the connections already held, never above MaxConns")
	assert.False(t, g.atCap())
	for i := 0; i < 4; i++ {
		g.leave()
	}
	assert.Zero(t, g.inUse.Load())
	g.setCeil(2)
	require.NoError(t, g.enter(ctx))
	require.NoError(t, g.enter(ctx))
	assert.False(t, g.atCap(), "at elastic sharing's limit ok has nothing to raise")
	g.setCeil(3)
	assert.True(t, g.atCap(), "a filled cap below a raised limit may climb")
}

// Waiters that arrive together probe once per raiseEvery for the whole
// gate, not once each: a slow first connection (or a refusal) does not let
// them all in at once.
func TestGateProbesOncePerRaiseEvery(t *testing.T) {
	g := newGate(20, nil)
	ctx := context.Background()
	require.NoError(t, g.enter(ctx)) // its connection is slow: ok is not called
	admitted := queue(t, g, 10)
	<-admitted // the first probe, after raiseEvery
	time.Sleep(raiseEvery / 2)
	assert.Len(t, admitted, 0, "more than one waiter let in by one round of probes")
	assert.EqualValues(t, 2, g.limit())
	for i := 0; i < 2; i++ {
		g.leave()
	}
	// The rest are admitted as places come back; let them through.
	for i := 0; i < 9; i++ {
		<-admitted
		g.leave()
	}
}

// Many callers through a gate whose cap drops and rises under them:
// nobody is left waiting and the counts come back to zero. (While the cap
// is at MaxConns the gate only counts; pgxpool's own cap holds callers.)
func TestGateUnderChurn(t *testing.T) {
	g := newGate(4, nil)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var admitted atomic.Int64
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if err := g.enter(ctx); err != nil {
					t.Error(err)
					return
				}
				admitted.Add(1)
				if j%50 == 0 {
					g.full(2)
				}
				g.leave()
				g.mu.Lock()
				g.lowered = time.Time{} // let ok raise at once
				g.mu.Unlock()
				g.ok(int32(j%5), true)
			}
		}()
	}
	wg.Wait()
	assert.EqualValues(t, 200*200, admitted.Load())
	assert.Zero(t, g.inUse.Load())
	assert.Zero(t, g.nwait.Load())
}

// nudge admits one waiter when callers fill the cap, unless the cap is at
// elastic sharing's limit or a refusal paused climbing; it does not pause
// the next step.
func TestGateNudge(t *testing.T) {
	g := newGate(4, nil)
	ctx := context.Background()
	require.NoError(t, g.enter(ctx))
	admitted := queue(t, g, 2)
	g.setCeil(1)
	g.nudge()
	assert.EqualValues(t, 1, g.limit(), "at the limit")
	g.setCeil(0)
	g.full(1)
	g.nudge()
	assert.EqualValues(t, 1, g.limit(), "within a refusal's pause")
	g.mu.Lock()
	g.lowered = time.Now().Add(-raiseEvery)
	g.mu.Unlock()
	g.nudge()
	<-admitted
	assert.EqualValues(t, 2, g.limit())
	g.nudge()
	<-admitted
	assert.EqualValues(t, 3, g.limit(), "no pause after a nudge")
	g.nudge()
	assert.EqualValues(t, 3, g.limit(), "nobody waits")
}
