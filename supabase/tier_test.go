package supabase

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/supapool/supapool/budget"
)

func TestParseTier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Tier
	}{
		{"free", TierNano}, {"Nano", TierNano}, {"MICRO", TierMicro}, {" small ", TierSmall},
		{"medium", TierMedium}, {"large", TierLarge}, {"xl", TierXL}, {"xlarge", TierXL},
		{"2XL", Tier2XL}, {"2xlarge", Tier2XL}, {"ci_4xlarge", Tier4XL}, {"8xl", Tier8XL},
		{"12XL", Tier12XL}, {"16xlarge", Tier16XL},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTier(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := ParseTier("huge")
	assert.ErrorContains(t, err, `supabase: unknown compute size "huge"`)
}

// The figures the issue and the docs table give; a typo in tier.go fails here.
func TestTierFigures(t *testing.T) {
	t.Parallel()
	want := map[string][3]int{
		"Nano": {60, 200, 15}, "Micro": {60, 200, 15}, "Small": {90, 400, 15}, "Medium": {120, 600, 15},
		"Large": {160, 800, 20}, "XL": {240, 1000, 20}, "2XL": {380, 1500, 25}, "4XL": {480, 3000, 32},
		"8XL": {490, 6000, 64}, "12XL": {500, 9000, 96}, "16XL": {500, 12000, 128},
	}
	require.Len(t, Tiers(), len(want))
	for _, tr := range Tiers() {
		assert.Equal(t, want[tr.Name], [3]int{tr.MaxConnections, tr.PoolerMaxClients, tr.DefaultPoolSize}, tr.Name)
	}
	assert.Equal(t, TierNano, TierFree)
}

func TestTierFromEnv(t *testing.T) {
	t.Setenv(EnvTier, "")
	_, ok, err := TierFromEnv()
	require.NoError(t, err)
	assert.False(t, ok)

	t.Setenv(EnvTier, "2xl")
	tr, ok, err := TierFromEnv()
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, Tier2XL, tr)

	t.Setenv(EnvTier, "gigantic")
	_, _, err = TierFromEnv()
	assert.ErrorContains(t, err, "supabase: SUPABASE_TIER: unknown compute size")
}

func TestTierBudgetSpec(t *testing.T) {
	t.Parallel()
	spec := TierSmall.BudgetSpec(10, budget.App{Name: "api", Instances: 4}, budget.App{Name: "worker", Instances: 2, Direct: 1})
	assert.Equal(t, 90, spec.Limit)
	assert.Equal(t, 10, spec.Reserved)
	require.NotNil(t, spec.Pooler)
	assert.Equal(t, budget.Pooler{ServerConns: 15, MaxClients: 400}, *spec.Pooler)
	require.NoError(t, spec.Validate())
	alloc, err := budget.Plan(spec)
	require.NoError(t, err)
	assert.LessOrEqual(t, alloc.PoolerClients(), 400)
}
