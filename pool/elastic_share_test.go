package pool

import (
	"fmt"
	"testing"
	"time"

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
		fs := v.share(instanceKey{"web", id}, one, nil)
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
	assert.Equal(t, 8, v.share(instanceKey{"api", "aaaaaa"}, w, nil).share)
	assert.Equal(t, 1, v.share(instanceKey{"cron", "bbbbbb"}, w, nil).share)
	crowded := serverView{usable: 3, rows: []clientCount{{name: "a#aaaaaa", n: 1}, {name: "a#bbbbbb", n: 1}, {name: "a#cccccc", n: 1}}}
	assert.Equal(t, 1, crowded.share(instanceKey{"a", "aaaaaa"}, w, nil).share, "never below 1")
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

// Quiet instances (every backend idle for over a second) are counted
// for every other instance, so that a busy one may fill the server and
// make them yield.
func TestShareCountsQuietInstances(t *testing.T) {
	v := serverView{usable: 9, rows: []clientCount{
		{name: "a#aaaaaa", n: 2, quiet: 2}, // quiet
		{name: "b#bbbbbb", n: 1},
		{name: "c#cccccc", n: 3, quiet: 1}, // two backends in use lately: not quiet
		{name: "psql", n: 1, quiet: 1},     // no instance: never counted as quiet
	}}
	one := func(string) int { return 1 }
	assert.Equal(t, 1, v.share(instanceKey{"b", "bbbbbb"}, one, nil).idle, "a's backends but one (a listener's, maybe)")
	assert.Equal(t, 1, v.share(instanceKey{"c", "cccccc"}, one, nil).idle)
	assert.Equal(t, 0, v.share(instanceKey{"a", "aaaaaa"}, one, nil).idle, "not its own")
	v.rows[0].quiet = 1
	assert.Equal(t, 1, v.share(instanceKey{"b", "bbbbbb"}, one, nil).idle, "all but one: yielding asks over one")
	v.rows[0].quiet = 0
	assert.Equal(t, 0, v.share(instanceKey{"b", "bbbbbb"}, one, nil).idle, "a is busy again")
	v.rows[0] = clientCount{name: "a#aaaaaa", n: 1, quiet: 1}
	assert.Equal(t, 0, v.share(instanceKey{"b", "bbbbbb"}, one, nil).idle, "an instance holding one idle backend (a listener's) gives nothing back")
}

// The rule that keeps slots taken while quiet instances hold idle ones
// applies for keepFor from its first use at most; then not until their
// count changes.
func TestKeepLatch(t *testing.T) {
	var k keepLatch
	t0 := time.Now()
	assert.False(t, k.allow(t0, false, 0), "not wanted")
	assert.True(t, k.allow(t0, true, 3))
	assert.False(t, k.allow(t0, false, 3), "not wanted")
	assert.True(t, k.allow(t0.Add(keepFor), true, 3), "within keepFor of its first use")
	assert.False(t, k.allow(t0.Add(keepFor+time.Millisecond), true, 3), "keepFor passed with the quiet ones still holding 3")
	assert.False(t, k.allow(t0.Add(time.Minute), false, 3))
	assert.False(t, k.allow(t0.Add(time.Minute), true, 3), "spent while their count stays")
	assert.True(t, k.allow(t0.Add(time.Minute), true, 2), "they gave one back: the rule works here, again")
	assert.False(t, k.allow(t0.Add(time.Minute+keepFor+time.Millisecond), true, 2), "and is spent again after keepFor")
	assert.True(t, k.allow(t0.Add(2*time.Minute), true, 5), "more quiet ones: another try")
}

// A budget that fits exactly (28 instances × 2 of 57 usable) keeps every
// instance at its plan although a tool's backend took the headroom slot
// and logins not yet named show in the view: no share below 2, so sharing
// closes nothing.
func TestShareBudgetThatFitsKeepsThePlan(t *testing.T) {
	v := serverView{usable: 57, rows: []clientCount{{name: "psql", n: 1}}}
	var keys []instanceKey
	for a := 0; a < 7; a++ {
		for i := 0; i < 4; i++ {
			k := instanceKey{fmt.Sprintf("app%d", a), fmt.Sprintf("k%dq%dzz", a, i)}
			keys = append(keys, k)
			v.rows = append(v.rows, clientCount{name: k.app + "#" + k.instance, n: 2})
		}
	}
	two := func(string) int { return 2 }
	plan := map[string]int{}
	for a := 0; a < 7; a++ {
		plan[fmt.Sprintf("app%d", a)] = 4
	}
	for _, k := range keys {
		fs := v.share(k, two, plan)
		assert.Equal(t, 2, fs.share, k)
		assert.True(t, fs.fits, "within the plan, routes keep the plan's connections")
	}
	// Logins not yet named crowd the view: the plan still holds.
	crowded := v
	crowded.rows = append(append([]clientCount(nil), v.rows...), clientCount{name: "", n: 3})
	for _, k := range keys {
		assert.Equal(t, 2, crowded.share(k, two, plan).share, k)
	}
	// A 29th instance does not fit the plan any more: shares shrink.
	v.rows = append(v.rows, clientCount{name: "app0#latezz", n: 1})
	assert.False(t, v.share(keys[0], two, plan).fits)
	total := 0
	for _, k := range append(keys, instanceKey{"app0", "latezz"}) {
		total += v.share(k, two, plan).share
	}
	assert.LessOrEqual(t, total, 57-1-headroom, "over the plan, shares fit the server again")
}

// The deficit is what busy instances below their shares lack; quiet
// instances and this one are not counted.
func TestShareDeficit(t *testing.T) {
	// 20 usable - 1 headroom = 19 among 4: 5, 5, 5, 4 by key order.
	v := serverView{usable: 20, rows: []clientCount{
		{name: "a#aaaaaa", n: 4},           // me
		{name: "a#bbbbbb", n: 1},           // busy, 4 below its share of 5
		{name: "a#cccccc", n: 2, quiet: 2}, // quiet: wants nothing
		{name: "a#dddddd", n: 5},           // above its share of 4
	}}
	one := func(string) int { return 1 }
	fs := v.share(instanceKey{"a", "aaaaaa"}, one, nil)
	assert.Equal(t, 5, fs.share)
	assert.Equal(t, 4, fs.deficit)
	assert.Equal(t, 8, fs.free)
	// With a plan that fits, the shares are the plan's.
	plan := map[string]int{"a": 4}
	two := func(string) int { return 2 }
	fs = v.share(instanceKey{"a", "aaaaaa"}, two, plan)
	assert.True(t, fs.fits)
	assert.Equal(t, 1, fs.deficit, "b lacks one of its 2; d is above")
}

// limit: a full server keeps a route to its share (quiet instances' idle
// slots aside); a roomy one lets it grow only by its part of what is left
// once busy instances below their shares have theirs.
func TestShareLimit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		fs           fairShare
		p            pressure
		held, target int32
		waiting      bool
		want         int32
		spent        bool // the keep rule's keepFor has passed (keepLatch)
	}{
		{"full: the share", fairShare{free: 1, live: 28}, pressureFull, 4, 2, true, 2, false},
		{"full, quiet instances' idle slots: take the free ones", fairShare{free: 2, idle: 4, live: 28}, pressureFull, 2, 2, true, 4, false},
		{"full, quiet instances but nobody waiting: the share", fairShare{free: 2, idle: 4, live: 28}, pressureFull, 2, 2, false, 2, false},
		{"full to the last slot, quiet instances still holding theirs: keep what it took", fairShare{free: 0, idle: 4, live: 28}, pressureFull, 4, 2, true, 4, false},
		{"over full, quiet instances: keep, never more", fairShare{free: -1, idle: 4, live: 28}, pressureFull, 4, 2, true, 4, false},
		{"quiet instances held theirs for keepFor: back to the share", fairShare{free: 0, idle: 4, live: 28}, pressureFull, 4, 2, true, 2, true},
		{"free slots, but keepFor is spent: the share", fairShare{free: 2, idle: 4, live: 28}, pressureFull, 2, 2, true, 2, true},
		{"roomy, others lack more than is free: back to the share", fairShare{free: 21, deficit: 20, live: 28}, pressureRoomy, 3, 2, true, 2, false},
		{"roomy, spare for all: keep what it holds", fairShare{free: 21, deficit: 10, live: 28}, pressureRoomy, 3, 2, true, 3, false},
		{"roomy, its part of the spare", fairShare{free: 30, deficit: 0, live: 10}, pressureRoomy, 3, 2, true, 5, false},
		{"roomy, alone: no limit", fairShare{free: 50, live: 1}, pressureRoomy, 3, 2, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.fs.limit(tc.p, tc.held, tc.target, tc.waiting, !tc.spent, 10))
		})
	}
}
