package pool_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/pool"
)

const envPW = "env-S3cret-PW"

// Values that carry a password, as they land in the wrong variable.
var secretValues = map[string]string{
	"url":            "postgres://postgres:" + envPW + "@db.ref.supabase.co:5432/postgres",
	"url with query": "postgresql://db.ref.supabase.co/postgres?password=" + envPW,
	"unencoded url":  "postgres://postgres:" + envPW + "/x@db.ref.supabase.co/postgres",
	"keyword":        "host=h user=u password=" + envPW,
	"keyword quoted": "host=h password='" + envPW + " x'",
	"userinfo":       "postgres:" + envPW + "@db.ref.supabase.co",
	"quoted url":     `"postgres://postgres:` + envPW + `@h/db"`,
}

func TestEnvErrorsHideSecrets(t *testing.T) {
	vars := []struct{ name, want string }{
		{pool.EnvMaxConns, "expected a whole number"},
		{pool.EnvMaxDirectConns, "expected a whole number"},
		{pool.EnvPooledMode, "expected transaction, session or direct"},
		{pool.EnvTxRoute, "expected pooled or direct"},
		{pool.EnvBudget, "expected the path of a budget spec file"},
		{pool.EnvAppName, "expected a short name"},
	}
	for _, v := range vars {
		for kind, val := range secretValues {
			t.Run(v.name+"/"+kind, func(t *testing.T) {
				env := map[string]string{pool.EnvDirectURL: "postgres://u:pw@h/db", pool.EnvAppName: "web", v.name: val}
				_, err := pool.ConfigFromLookup(func(k string) (string, bool) { s, ok := env[k]; return s, ok })
				require.Error(t, err)
				assert.Contains(t, err.Error(), "pool: "+v.name)
				assert.Contains(t, err.Error(), v.want)
				assert.Contains(t, err.Error(), "looks like a connection string")
				assert.NotContains(t, err.Error(), envPW)
			})
		}
	}
}

// A value that cannot hold a secret is still echoed, so the reader sees
// the typo.
func TestEnvErrorsEchoPlainValues(t *testing.T) {
	tests := []struct{ name, val, want string }{
		{pool.EnvMaxConns, "many", `pool: DATABASE_MAX_CONNS="many", expected a whole number of at least 1`},
		{pool.EnvMaxDirectConns, "-1", `pool: DATABASE_MAX_DIRECT_CONNS="-1", expected a whole number of at least 1`},
		{pool.EnvPooledMode, "statement", `pool: DATABASE_POOLED_MODE="statement", expected transaction, session or direct`},
		{pool.EnvTxRoute, "sideways", `pool: DATABASE_TX_ROUTE="sideways", expected pooled or direct`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{pool.EnvDirectURL: "postgres://u:pw@h/db", tt.name: tt.val}
			_, err := pool.ConfigFromLookup(func(k string) (string, bool) { s, ok := env[k]; return s, ok })
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
	_, err := pool.ParsePoolerMode("postgres://u:" + envPW + "@h")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), envPW)
	assert.Contains(t, err.Error(), "pool: the pooler mode is a value that looks like a connection string")
}

// A budget spec that quotes a URL in a value (budget's parse errors echo
// values) must not print its password through SUPAPOOL_BUDGET.
func TestBudgetErrorsHideSecrets(t *testing.T) {
	specs := map[string]string{
		"string limit":   "limit: \"postgres://u:" + envPW + "@h/db\"\napps: [{name: web, instances: 1}]\n",
		"url as a key":   "limit: 60\n\"postgres://u:" + envPW + "@h/db\": 1\n",
		"app name":       "limit: 60\napps: [{name: \"host=h password=" + envPW + "\", instances: 1}, {name: \"host=h password=" + envPW + "\", instances: 1}]\n",
		"keyword in min": "limit: 60\napps: [{name: web, instances: 1, min: \"password=" + envPW + "\"}]\n",
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "budget.yaml")
			require.NoError(t, os.WriteFile(path, []byte(spec), 0o600))
			env := map[string]string{pool.EnvDirectURL: "postgres://u:pw@h/db", pool.EnvAppName: "web", pool.EnvBudget: path}
			_, err := pool.ConfigFromLookup(func(k string) (string, bool) { s, ok := env[k]; return s, ok })
			require.Error(t, err)
			assert.Contains(t, err.Error(), "SUPAPOOL_BUDGET")
			assert.NotContains(t, err.Error(), envPW)
		})
	}
}
