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
