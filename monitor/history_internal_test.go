package monitor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHistoryIsBoundedAndFoldsOldPolls(t *testing.T) {
	const interval = 10 * time.Second
	h := newHistory(interval)
	require.Equal(t, 360, len(h.fine.buf), "an hour at the interval")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Two days of polls: totals 0..5 repeating; one busy poll per minute
	// at second 30 (total 50, red); one failed poll.
	polls := int(48 * time.Hour / interval)
	for i := range polls {
		at := t0.Add(time.Duration(i) * interval)
		s := Snapshot{Total: i % 6, Apps: []AppUsage{{Application: "web", Total: i % 6}}}
		if at.Second() == 30 {
			s.Total, s.Level, s.Apps[0].Total = 50, Red, 50
		}
		if i == polls-400 {
			s.Stale = true
		}
		h.add(s, at)
	}
	got := h.after(time.Time{})
	require.LessOrEqual(t, len(got.Points), historyFineMax+historyCoarseMax+1, "memory is bounded")
	var fine, coarse int
	for i, p := range got.Points {
		if i > 0 {
			require.True(t, p.Time.After(got.Points[i-1].Time), "oldest first, at %d", i)
		}
		if p.Coarse {
			coarse++
			assert.Equal(t, 50, p.Total, "a coarse point is its minute's busiest poll")
			assert.Equal(t, Red, p.Level)
			assert.Equal(t, 50, p.Apps["web"])
		} else {
			fine++
		}
	}
	assert.Equal(t, 360, fine)
	assert.InDelta(t, historyCoarseMax, coarse, 1, "a day of minutes")
	last := got.Points[len(got.Points)-1]
	assert.Equal(t, t0.Add(time.Duration(polls-1)*interval), last.Time)

	var stale bool
	for _, p := range got.Points {
		stale = stale || p.Stale
	}
	assert.True(t, stale, "a failed poll folds into a stale coarse point")

	since := last.Time.Add(-time.Minute)
	assert.Len(t, h.after(since).Points, 7, "since is inclusive")
}

func TestHistoryEventsNewestFirstAndBounded(t *testing.T) {
	h := newHistory(time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range historyEvents + 50 {
		h.event(Event{Time: t0.Add(time.Duration(i) * time.Second), Kind: "level"})
	}
	got := h.after(time.Time{}).Events
	require.Len(t, got, historyEvents)
	assert.Equal(t, t0.Add(time.Duration(historyEvents+49)*time.Second), got[0].Time)
	assert.True(t, got[0].Time.After(got[1].Time))
}

func TestParseSince(t *testing.T) {
	want := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	for _, v := range []string{"2026-12-02T14:00:00Z", "1796220000"} {
		got, err := parseSince(v)
		require.NoError(t, err, v)
		assert.True(t, want.Equal(got), "%s: %s", v, got)
	}
	_, err := parseSince("-5")
	assert.ErrorContains(t, err, "since must be")
}
