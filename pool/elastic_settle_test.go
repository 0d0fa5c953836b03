package pool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
// asked while it held as many as it holds now; a refusal to climb asks
// for a look at the next release.
func TestMayClimb(t *testing.T) {
	r := &route{elastic: newElastic("api#aaaaaa", nil, nil)}
	e := r.elastic
	assert.True(t, r.mayClimb(0))
	assert.True(t, r.mayClimb(1), "the first two connections need no look")
	assert.False(t, e.climbWanted.Load())
	assert.False(t, r.mayClimb(2), "the third needs a look taken while the route held two")
	assert.True(t, e.climbWanted.Load(), "and asks for one")
	e.seenHeld.Store(2)
	e.climbWanted.Store(false)
	assert.True(t, r.mayClimb(2))
	assert.False(t, r.mayClimb(3), "a look at two does not cover the fourth")
	e.seenHeld.Store(4)
	assert.True(t, r.mayClimb(3), "a route that closed connections since its look may climb back")
	assert.True(t, (&route{}).mayClimb(5), "a route that does not share climbs as it always did")
}
