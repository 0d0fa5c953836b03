package monitor

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Lanes and instances of one app count as that app; other names are kept.
func TestBuildFoldsLanesAndInstances(t *testing.T) {
	s := build(raw{maxConns: 60, groups: []Group{
		{Application: "web", State: StateIdle, Count: 1},
		{Application: "web#k3x9q2", State: StateActive, Count: 2},
		{Application: "web/heavy#k3x9q2", State: StateActive, Count: 1, Waiting: 1},
		{Application: "tag#1", State: StateIdle, Count: 1},
	}})
	assert.Equal(t, []AppUsage{
		{Application: "tag#1", Total: 1, ByState: map[string]int{StateIdle: 1}},
		{Application: "web", Total: 4, ByState: map[string]int{StateIdle: 1, StateActive: 3}, Waiting: 1},
	}, s.Apps)
	assert.Len(t, s.Groups, 4, "groups keep the names as the server has them")
}
