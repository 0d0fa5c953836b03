package supabase

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/supapool/supapool/pool"
)

// Replica URLs are not derived (there is no documented host format, see
// the package doc): DATABASE_REPLICA_URL, copied from the Connect panel,
// reaches the pool.Config as it is, beside URLs derived from SUPABASE_*.
func TestConfigFromEnvPassesReplicaURLs(t *testing.T) {
	t.Parallel()
	env := supabaseEnv()
	r1 := "postgresql://postgres:" + escape(envPW) + "@replica-one.example.com:5432/postgres?sslmode=require"
	r2 := "postgresql://postgres:" + escape(envPW) + "@replica-two.example.com:6543/postgres?sslmode=require"
	env[pool.EnvReplicaURL] = r1 + "," + r2
	cfg, _, err := configFromMap(t, env)
	require.NoError(t, err)
	assert.Equal(t, []string{r1, r2}, cfg.ReplicaURLs)
	assert.Contains(t, cfg.DirectURL, "db."+testRef+".supabase.co", "the primary's URLs are still derived")
	assert.NotContains(t, cfg.String(), envPW)
}
