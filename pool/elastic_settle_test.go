package pool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// After a look that changed the picture the next one comes after
// settleFirst; the gap doubles while nothing changes, up to viewEvery,
// and is short again after a change.
func TestSettleGap(t *testing.T) {
	e := newElastic("api#aaaaaa", nil, nil)
	steady := viewSummary{live: 28, pressure: pressureFull}
	var gaps []time.Duration
	for _, v := range []viewSummary{
		{live: 10, pressure: pressureRoomy}, // the first look
		steady, steady, steady, steady, steady, steady,
		{live: 29, pressure: pressureFull}, // an instance joined
	} {
		before := time.Now()
		e.settle(v)
		gaps = append(gaps, time.Duration(e.gap.Load()))
		assert.GreaterOrEqual(t, e.nextAt.Load(), before.Add(time.Duration(e.gap.Load())).UnixNano(), "nextAt is the gap away")
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, 100 * ms}, gaps)
}

// A route climbs past climbFree connections only when its last look was
// asked while it held as many as it holds now; a lower cap forgets the
// looks above it; while another look is under way it does not climb. The
// look itself, on the acquired connection, needs a server: see
// TestElasticClimbsWhileHolding.
func TestClimbLookWithoutAsking(t *testing.T) {
	r := testRoute(t)
	e := r.elastic
	climbs := climbsWithoutAsking(t, r)
	assert.True(t, climbs(0))
	assert.True(t, climbs(1), "the first two connections need no look")
	settle(e)
	e.seenHeld.Store(2)
	assert.True(t, climbs(2), "a look taken while the route held two covers the third")
	e.seenHeld.Store(4)
	assert.True(t, climbs(3), "a look at four covers climbing back to it")
	e.forget(2)
	assert.EqualValues(t, 2, e.seenHeld.Load(), "a cap lowered to two forgets the look at four")
	e.forget(3)
	assert.EqualValues(t, 2, e.seenHeld.Load(), "forget never raises it")
	e.seenHeld.Store(4)
	seen := e.seenHeld.Load() // a look asked while the route held 4
	e.forget(2)               // meanwhile a refusal lowered the cap to 2
	e.sawHeld(seen, 4)
	assert.EqualValues(t, 2, e.seenHeld.Load(), "a look that ends after a forget does not undo it")
	e.sawHeld(2, 3)
	assert.EqualValues(t, 3, e.seenHeld.Load())
	e.asking.Store(true)
	assert.False(t, climbs(4), "another look is under way: no climb on an old one")
	climb, usable := (&route{}).climbLook(nil, 5)
	assert.True(t, climb && usable, "a route that does not share climbs as it always did")
	(*elastic)(nil).forget(1) // a route that does not share has nothing to forget
}

// settle makes e's looks settled: the last one came climbSettle after the
// last that saw instances arrive.
func settle(e *elastic) {
	now := time.Now().UnixNano()
	e.roseAt.Store(now - int64(climbSettle))
	e.lookAt.Store(now)
}

// A look that sees more live instances than the one before marks the
// picture unsettled; fewer or as many do not. While instances arrived
// less than climbSettle ago, a route does not climb past climbFree, even
// on a look asked at its present count, and asks no look that could not
// find the picture settled; once climbSettle has passed with no arrival
// seen, it climbs as before.
func TestClimbWaitsForASettledPicture(t *testing.T) {
	r := testRoute(t)
	e := r.elastic
	climbs := climbsWithoutAsking(t, r)
	assert.False(t, e.settled(), "no look yet")
	e.settle(viewSummary{live: 10, pressure: pressureRoomy})
	assert.Equal(t, e.roseAt.Load(), e.lookAt.Load(), "the first look sees instances arrive")
	e.seenHeld.Store(2)
	assert.False(t, climbs(2), "instances arrived just now")
	assert.True(t, climbs(1), "the first two connections need no look")
	rose := e.roseAt.Load()
	e.settle(viewSummary{live: 9, pressure: pressureRoomy})
	e.settle(viewSummary{live: 9, pressure: pressureFull})
	assert.Equal(t, rose, e.roseAt.Load(), "an instance that left, or another pressure, is no arrival")
	assert.Greater(t, e.lookAt.Load(), rose)
	settle(e)
	assert.True(t, e.settled())
	assert.True(t, climbs(2), "settled, and a look at two covers the third")
	e.settle(viewSummary{live: 10, pressure: pressureFull})
	assert.False(t, e.settled(), "an instance arrived")
	assert.False(t, climbs(2))
	defer WithoutClimbSettle()()
	assert.True(t, climbs(2), "without the rule, as before")
}

// testRoute is a route with elastic sharing and a gate but no server: no
// look may be asked on it. Its nudging goroutine ends with the test.
func testRoute(t *testing.T) *route {
	closing := make(chan struct{})
	r := &route{elastic: newElastic("api#aaaaaa", nil, nil), gate: newGate(4, closing), closing: closing, bg: &sync.WaitGroup{}}
	t.Cleanup(func() { close(closing); r.bg.Wait() })
	return r
}

// A nudge that waited nudges the gate when no look came meanwhile, stops
// when a look came and found the picture settled, and waits on from the
// last look when that look saw another arrival. Before it waited on, a
// look seeing a second arrival within climbSettle ended the nudge, and a
// route whose callers hold every connection climbed by the gate's blind
// probe only, a second later.
func TestNudgeThen(t *testing.T) {
	e := newElastic("api#aaaaaa", nil, nil)
	e.settle(viewSummary{live: 10, pressure: pressureRoomy})
	at := e.lookAt.Load()
	nudge, stop, last := e.nudgeThen(at)
	assert.True(t, nudge, "no look meanwhile")
	assert.False(t, stop)
	assert.Equal(t, at, last)
	e.settle(viewSummary{live: 11, pressure: pressureRoomy}) // another arrival
	nudge, stop, last = e.nudgeThen(at)
	assert.False(t, nudge || stop, "a look saw another arrival: wait on")
	assert.Equal(t, e.lookAt.Load(), last)
	settle(e) // a look that found the picture settled
	nudge, stop, _ = e.nudgeThen(at)
	assert.False(t, nudge)
	assert.True(t, stop, "the look that found it settled lets the route climb")
}

// A route that did not climb because instances arrived lately, with a
// caller waiting in its gate and no release coming, lets that caller in
// by one step, even after a second arrival seen in the meantime: the
// nudge's goroutine and the gate end to end, bounded for liveness only.
// The waiter's own blind probe would also let it in after raiseEvery, so
// TestNudgeThen is the one that tells the nudge's decision apart.
func TestNudgeAdmitsAWaiter(t *testing.T) {
	r := testRoute(t)
	e, g := r.elastic, r.gate
	g.cap.Store(2)
	require.NoError(t, g.enter(context.Background()))
	require.NoError(t, g.enter(context.Background()))
	admitted := make(chan struct{})
	go func() {
		if g.enter(context.Background()) == nil {
			close(admitted)
		}
	}()
	require.Eventually(t, func() bool { return g.nwait.Load() == 1 }, time.Second, time.Millisecond)
	e.settle(viewSummary{live: 10, pressure: pressureRoomy})
	e.seenHeld.Store(2)
	climb, _ := r.climbLook(nil, 2)
	assert.False(t, climb, "instances arrived just now")
	e.settle(viewSummary{live: 11, pressure: pressureRoomy}) // one more, meanwhile
	select {
	case <-admitted:
	case <-time.After(5 * time.Second): // a liveness bound, not a timing claim
		t.Fatal("the waiter was never let in")
	}
	assert.EqualValues(t, 3, g.limit(), "one step: the look on the new connection decides the next")
	g.leave()
	g.leave()
	g.leave()
}

// climbsWithoutAsking is climbLook on r with no connection: no look may be
// asked on it, and none may leave it unusable.
func climbsWithoutAsking(t *testing.T, r *route) func(held int32) bool {
	return func(held int32) bool {
		climb, usable := r.climbLook(nil, held)
		require.True(t, usable)
		return climb
	}
}
