package pool

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShareEqualAndFixed(t *testing.T) {
	var rows []clientCount
	for _, id := range []string{"aaaaaa", "bbbbbb", "cccccc"} {
		rows = append(rows, clientCount{name: "web#" + id, n: 4})
	}
	rows = append(rows, clientCount{name: "psql", n: 3}) // no instance id: a fixed cost
	v := serverView{usable: 20, rows: rows}
	one := func(string) int { return 1 }
	// 20 - 3 fixed - 1 headroom = 16 among 3: 6, 5, 5 by key order.
	got := []int{}
	for _, id := range []string{"aaaaaa", "bbbbbb", "cccccc"} {
		fs := v.share(instanceKey{"web", id}, one)
		got = append(got, fs.share)
		assert.Equal(t, 4, fs.mine)
		assert.Equal(t, 3, fs.live)
		assert.Equal(t, 5, fs.free)
	}
	assert.Equal(t, []int{6, 5, 5}, got)
	assert.Equal(t, 16, got[0]+got[1]+got[2], "shares add up to the usable slots less fixed ones and headroom")
}

func TestShareWeightedNeverBelowOne(t *testing.T) {
	v := serverView{usable: 10, rows: []clientCount{{name: "api#aaaaaa", n: 6}, {name: "cron#bbbbbb", n: 1}}}
	w := func(app string) int {
		if app == "api" {
			return 8
		}
		return 1
	}
	assert.Equal(t, 8, v.share(instanceKey{"api", "aaaaaa"}, w).share)
	assert.Equal(t, 1, v.share(instanceKey{"cron", "bbbbbb"}, w).share)
	crowded := serverView{usable: 3, rows: []clientCount{{name: "a#aaaaaa", n: 1}, {name: "a#bbbbbb", n: 1}, {name: "a#cccccc", n: 1}}}
	assert.Equal(t, 1, crowded.share(instanceKey{"a", "aaaaaa"}, w).share, "never below 1")
}

func TestPressureHysteresis(t *testing.T) {
	p := pressureUnknown
	for _, step := range []struct {
		free int
		want pressure
	}{{10, pressureRoomy}, {3, pressureRoomy}, {2, pressureFull}, {3, pressureFull}, {4, pressureRoomy}, {0, pressureFull}} {
		p = p.next(step.free)
		assert.Equal(t, step.want, p, "free %d", step.free)
	}
}

// Quiet instances (every backend idle for over a second) on a full
// server: exactly one busy instance at its share may take the headroom
// slot, the first by key, so that the quiet ones' yielding starts.
func TestShareTakerForQuietInstances(t *testing.T) {
	v := serverView{usable: 9, rows: []clientCount{
		{name: "a#aaaaaa", n: 2, quiet: 2}, // quiet
		{name: "b#bbbbbb", n: 1},           // below its share
		{name: "c#cccccc", n: 2, quiet: 1}, // busy at its share: the taker
		{name: "d#dddddd", n: 2},
	}}
	one := func(string) int { return 1 }
	// 9 - 1 headroom = 8 among 4: 2 each.
	var takers []string
	for _, id := range []string{"a#aaaaaa", "b#bbbbbb", "c#cccccc", "d#dddddd"} {
		fs := v.share(instanceKey{id[:1], id[2:]}, one)
		assert.Equal(t, 2, fs.share, id)
		if id != "a#aaaaaa" {
			assert.Equal(t, 2, fs.idle, id)
		}
		if fs.taker {
			takers = append(takers, id)
		}
	}
	assert.Equal(t, []string{"c#cccccc"}, takers)
	v.rows[0].quiet = 1 // a is busy again: nobody takes the headroom
	for _, id := range []string{"a#aaaaaa", "b#bbbbbb", "c#cccccc", "d#dddddd"} {
		assert.False(t, v.share(instanceKey{id[:1], id[2:]}, one).taker, id)
	}
}
