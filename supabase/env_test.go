package supabase

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/supapool/supapool/pool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const envPW = "db-Pa55:w@rd/secret"

func supabaseEnv() map[string]string {
	return map[string]string{
		EnvURL:        "https://" + testRef + ".supabase.co",
		EnvDBPassword: envPW,
		EnvPoolerHost: "aws-1-us-east-2.pooler.supabase.com",
	}
}

func configFromMap(t *testing.T, env map[string]string, opts ...Option) (pool.Config, *observer.ObservedLogs, error) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	opts = append([]Option{WithLookup(lookupMap(env)), WithLogger(zap.New(core))}, opts...)
	cfg, err := ConfigFromEnv(opts...)
	for _, e := range logs.All() {
		all := e.Message + " " + strings.Join(fieldStrings(e), " ")
		assert.NotContains(t, all, envPW, "a log line holds the password")
		assert.NotContains(t, all, escape(envPW), "a log line holds the encoded password")
	}
	if err != nil {
		assert.NotContains(t, err.Error(), envPW)
		assert.NotContains(t, err.Error(), escape(envPW))
	}
	return cfg, logs, err
}

func TestConfigFromEnvOnlyDatabase(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		pool.EnvDirectURL: "postgresql://app:pw@db.example.com:5432/app",
		pool.EnvPooledURL: "postgresql://app:pw@pgbouncer.example.com:6432/app",
		pool.EnvAppName:   "orders",
		pool.EnvMaxConns:  "7",
		EnvURL:            "https://" + testRef + ".supabase.co", // for the API client only
	}
	cfg, logs, err := configFromMap(t, env)
	require.NoError(t, err)
	assert.Equal(t, env[pool.EnvDirectURL], cfg.DirectURL)
	assert.Equal(t, env[pool.EnvPooledURL], cfg.PooledURL)
	assert.Equal(t, "orders", cfg.AppName)
	assert.Equal(t, int32(7), cfg.MaxConns)
	assert.Equal(t, pool.DetectMode, cfg.PooledMode)
	assert.Nil(t, cfg.ConfigureDirect, "not a Supabase database host")
	assert.NotNil(t, cfg.Logger)
	assert.Zero(t, logs.Len())

	delete(env, pool.EnvPooledURL)
	cfg, _, err = configFromMap(t, env)
	require.NoError(t, err)
	assert.Empty(t, cfg.PooledURL, "SUPABASE_URL alone derives nothing")
}

func TestConfigFromEnvOnlySupabase(t *testing.T) {
	t.Parallel()
	env := supabaseEnv()
	env[pool.EnvMaxDirectConns] = "3"
	cfg, logs, err := configFromMap(t, env)
	require.NoError(t, err)
	p := Project{Ref: testRef, Password: envPW, PoolerHost: "aws-1-us-east-2.pooler.supabase.com"}
	assert.Equal(t, p.DirectURL(), cfg.DirectURL)
	assert.Equal(t, p.TransactionPoolerURL(), cfg.PooledURL)
	assert.Equal(t, pool.TransactionPooler, cfg.PooledMode)
	assert.Equal(t, int32(3), cfg.MaxDirectConns, "other DATABASE_* variables still apply")
	assert.NotNil(t, cfg.ConfigureDirect, "the direct host gets the IPv6 explanation")
	assert.Nil(t, cfg.ConfigurePooled, "the shared pooler has IPv4")
	assert.Equal(t, 2, logs.FilterMessageSnippet("derived from SUPABASE_*").Len())
}

func TestConfigFromEnvModes(t *testing.T) {
	t.Parallel()
	env := supabaseEnv()
	env[EnvDirectMode] = "session"
	cfg, _, err := configFromMap(t, env)
	require.NoError(t, err)
	p := Project{Ref: testRef, Password: envPW, PoolerHost: "aws-1-us-east-2.pooler.supabase.com"}
	assert.Equal(t, p.SessionPoolerURL(), cfg.DirectURL)
	assert.Nil(t, cfg.ConfigureDirect)

	env = supabaseEnv()
	env[EnvPoolerHost] = "db." + testRef + ".supabase.co"
	cfg, _, err = configFromMap(t, env)
	require.NoError(t, err)
	assert.Equal(t, p.DedicatedPoolerURL(), cfg.PooledURL)
	assert.Equal(t, pool.TransactionPooler, cfg.PooledMode)
	assert.NotNil(t, cfg.ConfigurePooled, "the dedicated pooler shares the IPv6-only host")
}

func TestConfigFromEnvBothDatabaseWins(t *testing.T) {
	t.Parallel()
	env := supabaseEnv()
	env[pool.EnvDirectURL] = "postgresql://postgres." + testRef + ":other@aws-1-us-east-2.pooler.supabase.com:5432/postgres"
	cfg, logs, err := configFromMap(t, env)
	require.NoError(t, err)
	assert.Equal(t, env[pool.EnvDirectURL], cfg.DirectURL, "DATABASE_URL wins")
	assert.Equal(t, Project{Ref: testRef, Password: envPW, PoolerHost: "aws-1-us-east-2.pooler.supabase.com"}.TransactionPoolerURL(), cfg.PooledURL, "the unset one is derived")
	won := logs.FilterMessageSnippet("DATABASE_URL is set and used instead")
	require.Equal(t, 1, won.Len(), "that DATABASE_URL won is logged")
	assert.NotContains(t, toString(won.All()[0].ContextMap()["url"]), "other", "the logged URL is redacted")

	env[pool.EnvPooledURL] = "postgresql://postgres." + testRef + ":other@aws-1-us-east-2.pooler.supabase.com:6543/postgres"
	env[EnvDBPassword] = ""
	env[EnvRegion] = "not a region" // not even read
	cfg, logs, err = configFromMap(t, env)
	require.NoError(t, err)
	assert.Equal(t, env[pool.EnvPooledURL], cfg.PooledURL)
	assert.Equal(t, 1, logs.FilterMessageSnippet("SUPABASE_* database variables are not used").Len())
}

func TestConfigFromEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(map[string]string)
		want []string
	}{
		{"nothing set", func(m map[string]string) { clear(m) }, []string{"DATABASE_URL is not set", EnvURL, EnvDBPassword}},
		{"missing password", func(m map[string]string) { delete(m, EnvDBPassword) }, []string{"SUPABASE_DB_PASSWORD is not set"}},
		{"missing url", func(m map[string]string) { delete(m, EnvURL) }, []string{"SUPABASE_URL is not set"}},
		{"bad url", func(m map[string]string) { m[EnvURL] = "https://example.com" }, []string{"SUPABASE_URL", `"example.com" is not REF.supabase.co`}},
		{"missing pooler host", func(m map[string]string) { delete(m, EnvPoolerHost) }, []string{"SUPABASE_POOLER_HOST is not set", EnvRegion}},
		{"pooler host is a url", func(m map[string]string) {
			m[EnvPoolerHost] = "postgresql://postgres.x:" + envPW + "@aws-0-x.pooler.supabase.com:6543/postgres"
		}, []string{"SUPABASE_POOLER_HOST must be a host name"}},
		{"bad region", func(m map[string]string) { delete(m, EnvPoolerHost); m[EnvRegion] = "moon-1" }, []string{`SUPABASE_REGION "moon-1" is not a region`}},
		{"bad direct mode", func(m map[string]string) { m[EnvDirectMode] = "ipv4" }, []string{`SUPABASE_DIRECT_MODE "ipv4"`}},
		{"another project's database host", func(m map[string]string) { m[EnvPoolerHost] = "db.zzzz.supabase.co" }, []string{"another project"}},
		{"several at once", func(m map[string]string) { delete(m, EnvURL); delete(m, EnvDBPassword) }, []string{EnvURL, EnvDBPassword}},
		{"DATABASE_URL for another project", func(m map[string]string) {
			m[pool.EnvDirectURL] = "postgresql://postgres:" + escape(envPW) + "@db.otherproject.supabase.co:5432/postgres"
		}, []string{"DATABASE_URL is for project otherproject"}},
		{"bad DATABASE_* value", func(m map[string]string) { m[pool.EnvMaxConns] = "lots" }, []string{"supabase: pool: DATABASE_MAX_CONNS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := supabaseEnv()
			tt.edit(env)
			_, _, err := configFromMap(t, env)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "supabase: "), err.Error())
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigFromEnvRegionFallbackWarns(t *testing.T) {
	t.Parallel()
	env := supabaseEnv()
	delete(env, EnvPoolerHost)
	env[EnvRegion] = "ap-southeast-1"
	cfg, logs, err := configFromMap(t, env)
	require.NoError(t, err)
	assert.Contains(t, cfg.PooledURL, "@aws-0-ap-southeast-1.pooler.supabase.com:6543/")
	warn := logs.FilterLevelExact(zapcore.WarnLevel)
	require.Equal(t, 1, warn.Len())
	assert.Contains(t, warn.All()[0].Message, "Connect dialog")
}

func TestConfigFromEnvWithProject(t *testing.T) {
	t.Parallel()
	cfg, _, err := configFromMap(t, supabaseEnv(), WithProject(func(p *Project) {
		p.DirectAddr, p.TransactionAddr, p.SSLMode = "127.0.0.1:5000", "127.0.0.1:6000", "disable"
	}))
	require.NoError(t, err)
	assert.Equal(t, "postgresql://postgres:"+escape(envPW)+"@127.0.0.1:5000/postgres?sslmode=disable", cfg.DirectURL)
	assert.Equal(t, "postgresql://postgres."+testRef+":"+escape(envPW)+"@127.0.0.1:6000/postgres?sslmode=disable", cfg.PooledURL)
	assert.Equal(t, pool.TransactionPooler, cfg.PooledMode, "pool cannot detect the mode on 127.0.0.1")

	_, _, err = configFromMap(t, supabaseEnv(), WithProject(func(p *Project) { p.SSLMode = "maybe" }))
	assert.ErrorContains(t, err, "SSLMode")
}

func TestConfigFromEnvReadsProcessEnvironment(t *testing.T) {
	for k, v := range supabaseEnv() {
		t.Setenv(k, v)
	}
	t.Setenv(pool.EnvDirectURL, "")
	t.Setenv(pool.EnvPooledURL, "")
	cfg, err := ConfigFromEnv()
	require.NoError(t, err)
	assert.Contains(t, cfg.DirectURL, "@db."+testRef+".supabase.co:5432/")
	assert.Nil(t, cfg.Logger, "no logger given, none set")
}
