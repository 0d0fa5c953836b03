package monitor

import (
	"time"
)

// History bounds. The fine ring keeps every poll of the last hour, at
// most historyFineMax points; older polls are folded into one coarse
// point per historyCoarseStep, the busiest poll of each step, for
// historyCoarseMax steps (a day). Alerts keep the newest historyEvents.
//
// A point costs about 100 bytes plus about 40 bytes per app it names, so
// with 10 apps the whole history stays under 3 MB: (3600 + 1440) points ×
// 500 bytes.
const (
	historyFineSpan   = time.Hour
	historyFineMax    = 3600
	historyCoarseStep = time.Minute
	historyCoarseMax  = 1440
	historyEvents     = 200
)

// Point is one poll in the monitor's history: what a chart over time
// needs, without the groups.
type Point struct {
	// Time is the poll's time (the server's now()); for a coarse point,
	// the time of the busiest poll in its step.
	Time time.Time `json:"time"`
	// Total is client backends (Snapshot.Total); Apps splits it by app.
	Total int            `json:"total"`
	Apps  map[string]int `json:"apps,omitempty"`
	// Level is the level after the poll.
	Level Level `json:"level"`
	// Stale marks a failed poll: Total and Apps are then the last good
	// poll's. A coarse point is stale when any poll in its step was.
	Stale bool `json:"stale,omitempty"`
	// Coarse marks a point that stands for a whole step of polls older
	// than an hour: the busiest of them.
	Coarse bool `json:"coarse,omitempty"`
}

// Event is one entry of the monitor's alert log: a level change or an
// alert raised or cleared.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is "level" for a level change, or the AlertKind.
	Kind string `json:"kind"`
	// Application is the app concerned, if any.
	Application string `json:"application,omitempty"`
	// Raised is true for a raise or a rise in level.
	Raised bool `json:"raised"`
	// Level is the level after a level change.
	Level Level `json:"level"`
	// Message says what happened, for people.
	Message string `json:"message"`
}

// History is the part of the monitor's history a caller asked for, oldest
// point first and newest event first.
type History struct {
	// Interval is the monitor's poll interval, so a chart can tell a gap
	// in the polls from a steady value.
	Interval time.Duration `json:"-"`
	// Since is when the level last changed (zero before the first poll);
	// the dashboard shows it as "red since 14:02".
	Since  time.Time `json:"level_since"`
	Points []Point   `json:"points"`
	Events []Event   `json:"events"`
}

// ring is a fixed-capacity buffer of T, oldest first.
type ring[T any] struct {
	buf   []T
	start int // index of the oldest
	n     int
}

func newRing[T any](capacity int) ring[T] { return ring[T]{buf: make([]T, capacity)} }

// push appends v, dropping and returning the oldest when full.
func (r *ring[T]) push(v T) (dropped T, ok bool) {
	if len(r.buf) == 0 {
		return v, true
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = v
		r.n++
		return dropped, false
	}
	dropped = r.buf[r.start]
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
	return dropped, true
}

func (r *ring[T]) at(i int) T { return r.buf[(r.start+i)%len(r.buf)] }

func (r *ring[T]) last() (T, bool) {
	if r.n == 0 {
		var zero T
		return zero, false
	}
	return r.at(r.n - 1), true
}

// history is the monitor's memory of past polls. Its owner guards it
// (Monitor.mu).
type history struct {
	fine   ring[Point]
	coarse ring[Point]
	events ring[Event]
	// pending is the coarse point being built from polls dropped off the
	// fine ring; open says it has any.
	pending Point
	open    bool
	since   time.Time
}

func newHistory(interval time.Duration) *history {
	n := historyFineMax
	if interval > 0 {
		n = min(historyFineMax, int((historyFineSpan+interval-1)/interval))
	}
	return &history{
		fine:   newRing[Point](n),
		coarse: newRing[Point](historyCoarseMax),
		events: newRing[Event](historyEvents),
	}
}

// pointOf makes s a history point.
func pointOf(s Snapshot) Point {
	p := Point{Time: s.Time, Total: s.Total, Level: s.Level, Stale: s.Stale}
	if len(s.Apps) > 0 {
		p.Apps = make(map[string]int, len(s.Apps))
		for _, a := range s.Apps {
			if a.Total > 0 {
				p.Apps[a.Application] = a.Total
			}
		}
	}
	return p
}

// add records a poll's snapshot; at is the time to file it under (a
// stale snapshot keeps the last good poll's Time, so the caller passes
// the time of the failure).
func (h *history) add(s Snapshot, at time.Time) {
	p := pointOf(s)
	p.Time = at
	if h.since.IsZero() {
		h.since = at
	} else if last, ok := h.fine.last(); ok && last.Level != p.Level {
		h.since = at
	}
	old, dropped := h.fine.push(p)
	if dropped {
		h.fold(old)
	}
}

// fold merges a point that left the fine ring into its coarse step.
func (h *history) fold(p Point) {
	step := p.Time.Truncate(historyCoarseStep)
	if h.open && !h.pending.Time.Truncate(historyCoarseStep).Equal(step) {
		h.coarse.push(h.pending)
		h.open = false
	}
	if !h.open {
		h.pending, h.open = p, true
		h.pending.Coarse = true
		return
	}
	stale := h.pending.Stale || p.Stale
	if p.Total > h.pending.Total || (p.Total == h.pending.Total && p.Level > h.pending.Level) {
		h.pending = p
		h.pending.Coarse = true
	}
	h.pending.Level = max(h.pending.Level, p.Level)
	h.pending.Stale = stale
}

func (h *history) event(e Event) { h.events.push(e) }

// since returns the points and events at or after t (all when t is zero),
// copied so the caller may keep them.
func (h *history) after(t time.Time) History {
	out := History{Since: h.since, Points: []Point{}, Events: []Event{}}
	keep := func(at time.Time) bool { return t.IsZero() || !at.Before(t) }
	for i := range h.coarse.n {
		if p := h.coarse.at(i); keep(p.Time) {
			out.Points = append(out.Points, p)
		}
	}
	if h.open && keep(h.pending.Time) {
		out.Points = append(out.Points, h.pending)
	}
	for i := range h.fine.n {
		if p := h.fine.at(i); keep(p.Time) {
			out.Points = append(out.Points, p)
		}
	}
	for i := h.events.n - 1; i >= 0; i-- {
		if e := h.events.at(i); keep(e.Time) {
			out.Events = append(out.Events, e)
		}
	}
	return out
}
