package pool

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeavyConfigFromLookup(t *testing.T) {
	env := map[string]string{
		EnvDirectURL: "postgres://postgres:" + secret + "@db.ref.supabase.co:5432/postgres",
		EnvAppName:   "web",
	}
	t.Run("defaults", func(t *testing.T) {
		c, err := ConfigFromLookup(lookupFrom(env))
		require.NoError(t, err)
		r, err := c.resolve()
		require.NoError(t, err)
		assert.Equal(t, int32(1), r.MaxHeavyConns)
		assert.Equal(t, 60*time.Second, r.HeavyTimeout)
	})
	t.Run("set", func(t *testing.T) {
		m := map[string]string{EnvMaxHeavyConns: "3", EnvHeavyTimeout: "90s"}
		for k, v := range env {
			m[k] = v
		}
		c, err := ConfigFromLookup(lookupFrom(m))
		require.NoError(t, err)
		assert.Equal(t, int32(3), c.MaxHeavyConns)
		assert.Equal(t, 90*time.Second, c.HeavyTimeout)
	})
	for _, bad := range []struct{ name, val, want string }{
		{EnvMaxHeavyConns, "0", "DATABASE_MAX_HEAVY_CONNS=\"0\", expected a whole number of at least 1"},
		{EnvMaxHeavyConns, "two", "DATABASE_MAX_HEAVY_CONNS=\"two\", expected a whole number"},
		{EnvHeavyTimeout, "60", "DATABASE_HEAVY_TIMEOUT=\"60\", expected a positive duration"},
		{EnvHeavyTimeout, "-1s", "DATABASE_HEAVY_TIMEOUT=\"-1s\", expected a positive duration"},
		{EnvHeavyTimeout, "postgres://u:" + secret + "@h/db", "DATABASE_HEAVY_TIMEOUT holds"},
	} {
		t.Run(bad.name+"="+bad.val, func(t *testing.T) {
			m := map[string]string{bad.name: bad.val}
			for k, v := range env {
				m[k] = v
			}
			_, err := ConfigFromLookup(lookupFrom(m))
			require.Error(t, err)
			assert.Contains(t, err.Error(), bad.want)
			assert.NotContains(t, err.Error(), secret)
			assert.True(t, strings.HasPrefix(err.Error(), "pool: "), err.Error())
		})
	}
	t.Run("negative cap", func(t *testing.T) {
		_, err := Config{DirectURL: env[EnvDirectURL], MaxHeavyConns: -1}.resolve()
		require.ErrorContains(t, err, "MaxHeavyConns (-1)")
	})
}

func TestHeavyBeginSQL(t *testing.T) {
	for _, c := range []struct {
		opts    pgx.TxOptions
		timeout time.Duration
		want    string
	}{
		{pgx.TxOptions{}, 60 * time.Second, "begin; set local statement_timeout = 60000"},
		{pgx.TxOptions{}, 1500 * time.Microsecond, "begin; set local statement_timeout = 2"},
		{pgx.TxOptions{}, -1, "begin"},
		{pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly, DeferrableMode: pgx.Deferrable}, time.Second,
			"begin isolation level repeatable read read only deferrable; set local statement_timeout = 1000"},
		{pgx.TxOptions{BeginQuery: "begin read only"}, time.Second, "begin read only; set local statement_timeout = 1000"},
	} {
		assert.Equal(t, c.want, heavyBeginSQL(c.opts, c.timeout))
	}
}

// A budget plan sets the heavy lane's cap, and turns the lane off for an
// app it gives none.
func TestHeavyFromBudget(t *testing.T) {
	path := t.TempDir() + "/budget.yaml"
	require.NoError(t, os.WriteFile(path, []byte("limit: 60\napps:\n  - {name: reports, instances: 2, heavy: 3}\n  - {name: web, instances: 2}\n"), 0o600))
	for app, want := range map[string]int32{"reports": 3, "web": 0} {
		c, err := ConfigFromLookup(lookupFrom(map[string]string{
			EnvDirectURL: "postgres://postgres:" + secret + "@127.0.0.1:1/postgres",
			EnvAppName:   app,
			EnvBudget:    path,
		}))
		require.NoError(t, err)
		assert.Equal(t, want, c.MaxHeavyConns, app)
		assert.Equal(t, want == 0, c.NoHeavy, app)
		p, err := New(context.Background(), c)
		require.NoError(t, err)
		_, err = p.Heavy().Exec(context.Background(), "select 1")
		if want == 0 {
			require.ErrorIs(t, err, ErrNoHeavyLane)
			assert.Zero(t, p.Stat().Heavy)
		} else {
			require.Error(t, err) // nothing listens on port 1
			assert.NotErrorIs(t, err, ErrNoHeavyLane)
			assert.EqualValues(t, want, p.Stat().Heavy.MaxConns)
		}
		p.Close()
	}
}
