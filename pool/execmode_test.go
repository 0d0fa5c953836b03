package pool_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// TestExecModeProbe asks each pooler and the server itself what it does
// with statement names: only PgBouncer 1.24 with max_prepared_statements
// above 0 renames them.
func TestExecModeProbe(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	off := testbed.TrixieBouncerT(t, bed, 0)
	for _, tc := range []struct {
		name string
		url  string
		seen bool
	}{
		{"direct PostgreSQL", bed.DirectURL, true},
		{"PgBouncer 1.18", bed.PooledURL, true},
		{"PgBouncer 1.24 max_prepared_statements=0", off.URL, true},
		{"PgBouncer 1.24 max_prepared_statements=200", capable.URL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, err := pgconn.Connect(ctx, tc.url)
			require.NoError(t, err)
			defer c.Close(context.Background())
			seen, err := pool.ProbeNames(ctx, c)
			require.NoError(t, err)
			require.Equal(t, tc.seen, seen)
		})
	}
}

// TestExecModeChosen runs the catalog join from many goroutines through
// each pooler: the Pool picks cache_statement only on the capable one,
// never describe_exec, says so in Stat and the log, and no call fails,
// where pgx's own default fails on the other two.
func TestExecModeChosen(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	off := testbed.TrixieBouncerT(t, bed, 0)
	for _, tc := range []struct {
		name string
		url  string
		want pgx.QueryExecMode
	}{
		{"PgBouncer 1.18", bed.PooledURL, pgx.QueryExecModeCacheDescribe},
		{"PgBouncer 1.24 max_prepared_statements=0", off.URL, pgx.QueryExecModeCacheDescribe},
		{"PgBouncer 1.24 max_prepared_statements=200", capable.URL, pgx.QueryExecModeCacheStatement},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			p := newPool(t, bed, func(c *pool.Config) {
				c.PooledURL = tc.url
				c.MaxConns = 8
				c.Logger = zap.New(core)
			})
			ctx := testCtx(t)
			require.NoError(t, execLoad(ctx, p, 16, 50))
			st := p.Stat().Pooled.ExecMode
			require.Equal(t, tc.want, st.Mode, st.Reason)
			require.NotEqual(t, pgx.QueryExecModeDescribeExec, st.Mode)
			require.True(t, st.Auto)
			require.Contains(t, st.Reason, "probe")
			chosen := logs.FilterMessage("supapool: pooled exec mode chosen").All()
			require.Len(t, chosen, 1, "the decision is logged once")
			require.Equal(t, strings.ReplaceAll(tc.want.String(), " ", "_"), chosen[0].ContextMap()["exec_mode"])
			ready := logs.FilterMessage("supapool: pool ready").All()
			require.Len(t, ready, 1)
			// New opens no connection: the ready line says what the
			// route uses until the probe, and that the probe decides.
			require.Equal(t, "cache_describe", ready[0].ContextMap()["exec_mode"])
			require.Contains(t, ready[0].ContextMap()["exec_mode_by"], "probe pending")
			require.Equal(t, "cache_describe", chosen[0].ContextMap()["was"])
			require.Contains(t, chosen[0].ContextMap()["reason"], "probe: ")
		})
	}
}

// TestExecModeUserWins keeps a user's cache_statement on a pooler where
// it is unsafe, and warns.
func TestExecModeUserWins(t *testing.T) {
	bed := testbed.Start(t)
	core, logs := observer.New(zap.InfoLevel)
	p := newPool(t, bed, func(c *pool.Config) {
		c.ExecMode = pgx.QueryExecModeCacheStatement
		c.Logger = zap.New(core)
	})
	var n int
	require.NoError(t, p.QueryRow(testCtx(t), "select 1").Scan(&n))
	st := p.Stat().Pooled.ExecMode
	require.Equal(t, pgx.QueryExecModeCacheStatement, st.Mode)
	require.False(t, st.Auto)
	require.Len(t, logs.FilterMessageSnippet("was set by the user, but the pooler passes statement names through").All(), 1)
}

// TestExecModeFallback starts on the capable pooler, then turns its
// named statement support off and reloads it under load: every call
// succeeds, the route falls back to cache_describe and counts it.
func TestExecModeFallback(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = capable.URL
		c.MaxConns = 8
	})
	ctx := testCtx(t)
	load := func(n, calls int) error { return execLoad(ctx, p, n, calls) }
	st, calls := reloadUnderLoad(t, ctx, p, capable, load)
	t.Logf("%d calls during the reload, %d fallbacks", calls, st.Fallbacks)
}
