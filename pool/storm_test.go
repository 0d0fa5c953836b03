package pool_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
)

// With caps too high for the server (28 pools × 4 > 57 usable slots),
// plain pgxpool surfaces "too many clients" to callers; supapool waits for
// a connection instead and no caller sees an error.
func TestStormWithCapsTooHigh(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	s := bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: 50, Caps: bench.Fixed(4)}

	s.Plain = true
	plain, err := bench.RunStorm(ctx, bed.DirectURL, s)
	require.NoError(t, err)
	t.Logf("plain pgxpool, caps 4: %d of %d queries failed %v", plain.Errors, plain.Queries, plain.Codes)
	assert.Positive(t, plain.Codes["53300"], "the storm must overload the server for this test to mean anything")

	s.Plain = false
	got, err := bench.RunStorm(ctx, bed.DirectURL, s)
	require.NoError(t, err)
	t.Logf("supapool, caps 4: %d of %d queries failed %v", got.Errors, got.Queries, got.Codes)
	assert.Zero(t, got.Errors)
	assert.EqualValues(t, 7*4*10*50, got.Queries)
}
