package pool_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/pool"
)

// A budget that plans replicas caps the replica route from apps[].replica
// and refuses an app that reads replicas with no share of them.
func TestBudgetCapsReplicaRoute(t *testing.T) {
	spec := "limit: 60\nreplicas: [{name: r1, limit: 60}]\napps:\n  - {name: web, instances: 2, replica: 3}\n  - {name: jobs, instances: 1}\n"
	path := filepath.Join(t.TempDir(), "budget.yaml")
	require.NoError(t, os.WriteFile(path, []byte(spec), 0o600))
	load := func(app string) (pool.Config, error) {
		env := map[string]string{
			pool.EnvDirectURL: "postgres://u:pw@127.0.0.1:5432/db", pool.EnvReplicaURL: "postgres://u:pw@127.0.0.1:5433/db",
			pool.EnvAppName: app, pool.EnvBudget: path,
		}
		return pool.ConfigFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}
	cfg, err := load("web")
	require.NoError(t, err)
	require.EqualValues(t, 3, cfg.MaxReplicaConns)

	_, err = load("jobs")
	require.ErrorContains(t, err, "gives app \"jobs\" no replica connections; set its apps[].replica")
	require.NotContains(t, err.Error(), "pw")
}
