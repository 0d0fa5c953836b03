package monitor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLevelsClassifyBoundaries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		levels Levels
		max    int
		used   int
		want   Level
	}{
		{"defaults: 29 of 60 is green", Levels{}, 60, 29, Green},
		{"defaults: 30 of 60 is yellow", Levels{}, 60, 30, Yellow},
		{"defaults: 45 of 60 is still yellow", Levels{}, 60, 45, Yellow},
		{"defaults: 46 of 60 is red", Levels{}, 60, 46, Red},
		{"defaults: 60 of 60 is red", Levels{}, 60, 60, Red},
		{"defaults: 0 is green", Levels{}, 60, 0, Green},
		{"fractions round up for yellow: 13 of 25", Levels{}, 25, 13, Yellow},
		{"fractions: 12 of 25 is green", Levels{}, 25, 12, Green},
		{"fractions: 18 of 25 is yellow (red above 18.75)", Levels{}, 25, 18, Yellow},
		{"fractions: 19 of 25 is red", Levels{}, 25, 19, Red},
		{"counts: 20 is yellow", Levels{Yellow: 20, Red: 40}, 100, 20, Yellow},
		{"counts: 40 is yellow", Levels{Yellow: 20, Red: 40}, 100, 40, Yellow},
		{"counts: 41 is red", Levels{Yellow: 20, Red: 40}, 100, 41, Red},
		{"counts ignore max_connections", Levels{Yellow: 20, Red: 40}, 500, 41, Red},
		{"mixed: count yellow, fraction red", Levels{Yellow: 10, Red: 0.5}, 60, 31, Red},
		{"mixed with red below yellow: red wins", Levels{Yellow: 0.9, Red: 10}, 60, 11, Red},
		{"red 1 means all of max_connections", Levels{Red: 1}, 60, 60, Yellow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.levels.Classify(tt.used, tt.max))
		})
	}
}

func TestLevelsValidate(t *testing.T) {
	t.Parallel()
	assert.NoError(t, Levels{}.validate())
	assert.NoError(t, Levels{Yellow: 30, Red: 45, Margin: -1, Polls: 1}.validate())
	assert.NoError(t, Levels{Yellow: 50, Red: 0.5}.validate(), "mixed scales are checked per server")
	for name, l := range map[string]Levels{
		"negative yellow":      {Yellow: -0.1},
		"yellow above red":     {Yellow: 0.8, Red: 0.6},
		"yellow above red abs": {Yellow: 50, Red: 40},
		"negative polls":       {Polls: -1},
	} {
		err := l.validate()
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), "monitor: levels: ")
		}
	}
}

func TestHysteresis(t *testing.T) {
	t.Parallel()
	// Defaults on 60: yellow at 30, red above 45, margin 3, three polls.
	tests := []struct {
		name   string
		levels Levels
		usage  []int
		want   []Level
	}{
		{
			name:  "rises at once",
			usage: []int{10, 30, 46},
			want:  []Level{Green, Yellow, Red},
		},
		{
			name:  "starts red when the first poll is red",
			usage: []int{50},
			want:  []Level{Red},
		},
		{
			name:  "red falls to green after three polls well below",
			usage: []int{46, 10, 10, 10, 10},
			want:  []Level{Red, Red, Red, Green, Green},
		},
		{
			name:  "a blip above the margin restarts the count",
			usage: []int{46, 10, 10, 43, 10, 10, 10},
			want:  []Level{Red, Red, Red, Red, Red, Red, Green},
		},
		{
			name:  "within the margin the level holds",
			usage: []int{30, 28, 27, 27, 27, 27},
			want:  []Level{Yellow, Yellow, Yellow, Yellow, Yellow, Yellow},
		},
		{
			name:  "yellow drops only below threshold minus margin",
			usage: []int{30, 26, 26, 26},
			want:  []Level{Yellow, Yellow, Yellow, Green},
		},
		{
			name:  "red at 42 (the margin) counts as yellow's",
			usage: []int{46, 42, 42, 42},
			want:  []Level{Red, Red, Red, Yellow},
		},
		{
			name:  "falls to the highest level of the window",
			usage: []int{46, 35, 10, 10, 10},
			want:  []Level{Red, Red, Red, Yellow, Green},
		},
		{
			name:   "one poll and no margin: plain thresholds",
			levels: Levels{Margin: -1, Polls: 1},
			usage:  []int{30, 29, 46, 45, 10},
			want:   []Level{Yellow, Green, Red, Yellow, Green},
		},
		{
			name:   "absolute margin",
			levels: Levels{Margin: 10, Polls: 1},
			usage:  []int{46, 36, 35},
			want:   []Level{Red, Red, Yellow},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Len(t, tt.want, len(tt.usage))
			h := newHysteresis(tt.levels)
			var got []Level
			for _, u := range tt.usage {
				got = append(got, h.observe(u, 60))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLevelText(t *testing.T) {
	t.Parallel()
	for _, l := range []Level{Green, Yellow, Red} {
		b, err := l.MarshalText()
		require.NoError(t, err)
		var back Level
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, l, back)
	}
	_, err := Level(7).MarshalText()
	assert.Error(t, err)
	assert.Error(t, new(Level).UnmarshalText([]byte("purple")))
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"neither DB nor URL": {},
		"bad URL":            {URL: "postgres://u:secret@[::1"},
		"negative interval":  {URL: "postgres://localhost/db", Interval: -1},
		"bad levels":         {URL: "postgres://localhost/db", Levels: Levels{Yellow: 0.9, Red: 0.1}},
	} {
		_, err := New(cfg)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), "monitor: ")
			assert.NotContains(t, err.Error(), "secret", "errors must not leak passwords")
		}
	}
	m, err := New(Config{URL: "postgres://localhost/db"})
	require.NoError(t, err)
	s := m.Snapshot()
	assert.True(t, s.Stale)
	assert.Equal(t, ErrNoPoll.Error(), s.Err)
	assert.Equal(t, 5*1e9, float64(m.timeout), "timeout is min(interval, 5s)")
}
