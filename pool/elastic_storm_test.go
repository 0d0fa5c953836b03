package pool_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
)

// The storm with caps 4 (28 × 4 > 57 usable slots): with elastic sharing
// no caller sees an error, and the pools close connections to share the
// server; with caps 2 from a budget that fits, sharing closes nothing.
func TestElasticStorm(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	s := bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: 200, Query: bench.QuerySleep}
	spec, err := bench.WriteSpec(t.TempDir(), bench.StormSpec(s))
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		caps      int32
		budget    string
		noElastic bool
	}{
		{"caps 4, elastic off", 4, "", true},
		{"caps 4, elastic", 4, "", false},
		{"caps 4, elastic, budget weights", 4, spec, false},
		{"budget caps 2", 2, spec, false},
	} {
		s.Caps, s.Budget, s.NoElastic = bench.Fixed(tc.caps), tc.budget, tc.noElastic
		got, err := bench.RunStorm(ctx, bed.DirectURL, s)
		require.NoError(t, err)
		t.Logf("%s: %d of %d failed %v, %.0f qps, %d closed by sharing", tc.name, got.Errors, got.Queries, got.Codes, got.QPS(), got.ElasticClosed)
		assert.Zero(t, got.Errors, tc.name)
	}
}
