package monitor

import (
	"errors"
	"fmt"
	"math"
)

// Level is how full the server is, judged by client backends against
// max_connections.
type Level int

// The levels, in increasing order of concern.
const (
	Green Level = iota
	Yellow
	Red
)

// String returns "green", "yellow" or "red".
func (l Level) String() string {
	switch l {
	case Green:
		return "green"
	case Yellow:
		return "yellow"
	case Red:
		return "red"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// MarshalText writes the level as [Level.String] does, so JSON shows names
// rather than numbers that a reader has to look up.
func (l Level) MarshalText() ([]byte, error) {
	if l < Green || l > Red {
		return nil, fmt.Errorf("monitor: unknown level %d", int(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText accepts what MarshalText writes.
func (l *Level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "green":
		*l = Green
	case "yellow":
		*l = Yellow
	case "red":
		*l = Red
	default:
		return fmt.Errorf("monitor: unknown level %q", b)
	}
	return nil
}

// Defaults for Levels' zero fields, each stated on its field: the
// thresholds Supabase's Free tier (60 connections) is watched with by
// hand, Green below 30, Yellow from 30 to 45, Red above 45; a margin of 3
// connections there; three polls before a level drops.
const (
	defaultYellow = 0.50
	defaultRed    = 0.75
	defaultMargin = 0.05
	defaultPolls  = 3
)

// Levels says where Yellow and Red begin and how reluctantly they end.
//
// Yellow, Red and Margin each take one number on the same scale: a value up
// to 1 is a fraction of max_connections (0.5 is half), a value above 1 is a
// count of connections (45 is 45). Fractions follow the server when its
// max_connections changes (a Supabase tier upgrade); counts do not. A zero
// field takes its default.
//
// Usage u (client backends, see [Snapshot.Total]) against the thresholds y
// and r resolved to counts:
//
//	Green   u < y
//	Yellow  y ≤ u ≤ r
//	Red     u > r
//
// so the defaults on a 60-connection server give Green below 30, Yellow
// for 30 to 45, and Red from 46, the ranges the operators use.
//
// Rising is immediate. Falling is not: the monitor leaves a level only after
// Polls consecutive polls in which usage was below it by more than Margin
// (below y−m for Yellow, at or below r−m for Red), and then falls to the
// highest level those polls support. That keeps a server that hovers around
// a threshold from calling OnChange on every poll.
type Levels struct {
	// Yellow is where Yellow begins (inclusive). Default 0.50.
	Yellow float64
	// Red is where Red begins (exclusive: usage must exceed it). Default
	// 0.75.
	Red float64
	// Margin is how far below a threshold usage must stay before the
	// level drops. Default 0.05; negative means no margin.
	Margin float64
	// Polls is how many consecutive polls usage must stay below the margin
	// before the level drops. Default 3; 1 drops on the first such poll.
	Polls int
}

func (l Levels) withDefaults() Levels {
	if l.Yellow == 0 {
		l.Yellow = defaultYellow
	}
	if l.Red == 0 {
		l.Red = defaultRed
	}
	if l.Margin == 0 {
		l.Margin = defaultMargin
	}
	if l.Polls == 0 {
		l.Polls = defaultPolls
	}
	return l
}

func (l Levels) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"yellow", l.Yellow}, {"red", l.Red}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("monitor: levels: %s must be a fraction up to 1 or a count above 1, got %v", f.name, f.v))
		}
	}
	if math.IsNaN(l.Margin) || math.IsInf(l.Margin, 0) {
		errs = append(errs, fmt.Errorf("monitor: levels: margin must be a number, got %v", l.Margin))
	}
	if l.Polls < 0 {
		errs = append(errs, fmt.Errorf("monitor: levels: polls must not be negative, got %d", l.Polls))
	}
	d := l.withDefaults()
	// Mixed scales can only be compared once max_connections is known;
	// Resolve then lets Red win.
	if len(errs) == 0 && (d.Yellow <= 1) == (d.Red <= 1) && d.Yellow > d.Red {
		errs = append(errs, fmt.Errorf("monitor: levels: yellow %v is above red %v", d.Yellow, d.Red))
	}
	return errors.Join(errs...)
}

// scale turns a value on the Levels scale into a count of connections.
func scale(v float64, maxConns int) float64 {
	if v <= 1 {
		return v * float64(maxConns)
	}
	return v
}

// Resolve returns the Yellow and Red thresholds and the margin as counts
// of connections on a server with maxConns connections, defaults applied.
func (l Levels) Resolve(maxConns int) (yellow, red, margin float64) {
	d := l.withDefaults()
	// Negative margins mean none; withDefaults keeps them negative so that
	// it can be applied twice.
	return scale(d.Yellow, maxConns), scale(d.Red, maxConns), max(0, scale(d.Margin, maxConns))
}

// Classify returns the level of used connections out of maxConns, without
// hysteresis: what a single poll says.
func (l Levels) Classify(used, maxConns int) Level {
	y, r, _ := l.Resolve(maxConns)
	return classify(float64(used), y, r)
}

func classify(u, y, r float64) Level {
	switch {
	case u > r:
		return Red
	case u >= y:
		return Yellow
	}
	return Green
}

// hysteresis holds the level across polls; the poll loop owns it.
type hysteresis struct {
	levels Levels // defaults applied
	cur    Level
	recent []Level // margin-adjusted levels of the last Polls polls, oldest first
}

func newHysteresis(l Levels) *hysteresis {
	d := l.withDefaults()
	return &hysteresis{levels: d, recent: make([]Level, 0, d.Polls)}
}

// observe records one poll and returns the level after it.
func (h *hysteresis) observe(used, maxConns int) Level {
	y, r, m := h.levels.Resolve(maxConns)
	u := float64(used)
	raw := classify(u, y, r)
	// With the thresholds lowered by the margin, a level is kept until
	// usage has really left it.
	kept := classify(u, y-m, r-m)
	if len(h.recent) == h.levels.Polls {
		copy(h.recent, h.recent[1:])
		h.recent = h.recent[:len(h.recent)-1]
	}
	h.recent = append(h.recent, kept)
	switch {
	case raw > h.cur:
		h.cur = raw
	case len(h.recent) == h.levels.Polls:
		highest := Green
		for _, l := range h.recent {
			highest = max(highest, l)
		}
		if highest < h.cur {
			h.cur = highest
		}
	}
	return h.cur
}
