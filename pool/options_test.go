package pool_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// withWrongPassword returns rawURL with another password.
func withWrongPassword(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "wrong-password")
	return u.String()
}

// NewFromEnv takes a logger, so the start-up line and warnings reach the
// service's log; Check verifies every route and names the one that failed.
func TestNewFromEnvWithLoggerAndCheck(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	t.Setenv(pool.EnvDirectURL, bed.DirectURL)
	t.Setenv(pool.EnvPooledURL, bed.PooledURL)
	t.Setenv(pool.EnvAppName, appName(t))
	t.Setenv(pool.EnvMaxDirectConns, "1")
	core, logs := observer.New(zapcore.InfoLevel)
	p, err := pool.NewFromEnv(ctx, pool.WithLogger(zap.New(core)))
	require.NoError(t, err)
	defer p.Close()
	assert.Equal(t, 1, logs.FilterMessage("supapool: pool ready").Len())
	require.NoError(t, p.Check(ctx))

	// A wrong password in DATABASE_URL passes Ping (the pooled route) but
	// not Check.
	t.Setenv(pool.EnvDirectURL, withWrongPassword(t, bed.DirectURL))
	bad, err := pool.NewFromEnv(ctx, pool.WithLogger(zap.New(core)))
	require.NoError(t, err)
	defer bad.Close()
	require.NoError(t, bad.Ping(ctx))
	err = bad.Check(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pool: direct route (DATABASE_URL): ")
	assert.Contains(t, err.Error(), "check the password in DATABASE_URL")
	assert.NotContains(t, err.Error(), "pooled route")
	assert.NotContains(t, err.Error(), "wrong-password")
	assert.Equal(t, 1, logs.FilterMessage("supapool: start-up check failed").Len())
}

func TestLogLevelFromEnv(t *testing.T) {
	env := map[string]string{pool.EnvDirectURL: "postgres://u:pw@h/db", pool.EnvAppName: "web"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		level         string
		info, warning bool
	}{{"debug", true, true}, {"info", true, true}, {"WARN", false, true}, {"error", false, false}, {"off", false, false}} {
		t.Run(tc.level, func(t *testing.T) {
			env[pool.EnvLogLevel] = tc.level
			c, err := pool.ConfigFromLookup(lookup)
			require.NoError(t, err)
			require.NotNil(t, c.Logger)
			assert.Equal(t, tc.info, c.Logger.Core().Enabled(zapcore.InfoLevel))
			assert.Equal(t, tc.warning, c.Logger.Core().Enabled(zapcore.WarnLevel))
		})
	}
	env[pool.EnvLogLevel] = "loud"
	_, err := pool.ConfigFromLookup(lookup)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), `pool: SUPAPOOL_LOG_LEVEL="loud", expected debug, info, warn, error or off`), err.Error())
}
