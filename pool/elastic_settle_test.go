package pool

import (
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
	r := &route{elastic: newElastic("api#aaaaaa", nil, nil)}
	e := r.elastic
	climbs := func(held int32) bool {
		climb, usable := r.climbLook(nil, held) // nil: no look may be asked on it
		require.True(t, usable)
		return climb
	}
	assert.True(t, climbs(0))
	assert.True(t, climbs(1), "the first two connections need no look")
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
