package pool

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShareEqualAndFixed(t *testing.T) {
	var rows []clientCount
	for _, id := range []string{"aaaaaa", "bbbbbb", "cccccc"} {
		rows = append(rows, clientCount{"web#" + id, 4})
	}
	rows = append(rows, clientCount{"psql", 3}) // no instance id: a fixed cost
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
	v := serverView{usable: 10, rows: []clientCount{{"api#aaaaaa", 6}, {"cron#bbbbbb", 1}}}
	w := func(app string) int {
		if app == "api" {
			return 8
		}
		return 1
	}
	assert.Equal(t, 8, v.share(instanceKey{"api", "aaaaaa"}, w).share)
	assert.Equal(t, 1, v.share(instanceKey{"cron", "bbbbbb"}, w).share)
	crowded := serverView{usable: 3, rows: []clientCount{{"a#aaaaaa", 1}, {"a#bbbbbb", 1}, {"a#cccccc", 1}}}
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
