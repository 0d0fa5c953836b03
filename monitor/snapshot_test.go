package monitor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Durations travel as seconds and come back as they were.
func TestSnapshotJSONDurations(t *testing.T) {
	in := Snapshot{
		PollDuration: 1500 * time.Microsecond,
		Groups:       []Group{{Application: "web", Count: 2, LongestXact: 3 * time.Second, LongestIdleInTx: 250 * time.Millisecond}},
		Apps:         []AppUsage{{Application: "web", Total: 2, LongestXact: 3 * time.Second, LongestIdleInTx: 250 * time.Millisecond}},
	}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var raw struct {
		Groups []map[string]any `json:"groups"`
		Apps   []map[string]any `json:"apps"`
	}
	require.NoError(t, json.Unmarshal(b, &raw))
	for _, m := range []map[string]any{raw.Groups[0], raw.Apps[0]} {
		assert.Equal(t, 3.0, m["longest_xact_seconds"])
		assert.Equal(t, 0.25, m["longest_idle_in_tx_seconds"])
	}
	var out Snapshot
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in.Groups, out.Groups)
	assert.Equal(t, in.Apps, out.Apps)
	assert.Equal(t, in.PollDuration, out.PollDuration)
}
