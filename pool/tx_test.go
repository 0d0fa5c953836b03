package pool_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// Every handle a pooled transaction hands out refuses what the pooled
// route refuses: savepoints (nested ones too) and named prepared
// statements, which would stay on the pooler's server connection.
func TestPooledTransactionHandlesRefuseSessionState(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.TxRoute = pool.Pooled })
	tx, err := p.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)

	sp, err := tx.Begin(ctx)
	require.NoError(t, err)
	_, err = sp.Exec(ctx, "set statement_timeout = '1234ms'")
	assert.ErrorIs(t, err, pool.ErrSessionStatement, "a savepoint refuses SET")
	require.NoError(t, sp.Rollback(ctx), "a refused statement leaves the savepoint usable")
	sp, err = tx.Begin(ctx)
	require.NoError(t, err)
	inner, err := sp.Begin(ctx)
	require.NoError(t, err)
	assert.ErrorIs(t, inner.QueryRow(ctx, "select pg_advisory_lock(78)").Scan(), pool.ErrSessionStatement, "a nested savepoint refuses session locks")
	_, err = inner.Query(ctx, "listen x")
	assert.ErrorIs(t, err, pool.ErrSessionStatement)
	require.NoError(t, inner.Commit(ctx))
	require.NoError(t, sp.Commit(ctx))

	_, err = tx.Prepare(ctx, "supapool_named", "select 1")
	assert.ErrorIs(t, err, pool.ErrSessionStatement, "a named prepared statement would outlive the transaction")
	_, err = sp.Prepare(ctx, "supapool_named", "select 1")
	assert.ErrorIs(t, err, pool.ErrSessionStatement)
	_, err = tx.Prepare(ctx, "", "select 1")
	assert.NoError(t, err, "the unnamed statement is fine")

	var timeout string
	require.NoError(t, tx.QueryRow(ctx, "show statement_timeout").Scan(&timeout))
	assert.NotEqual(t, "1234ms", timeout)
	var named int
	require.NoError(t, tx.QueryRow(ctx, "select count(*) from pg_prepared_statements where name = 'supapool_named'").Scan(&named))
	assert.Zero(t, named)
	require.NoError(t, tx.Commit(ctx))
	assert.Zero(t, p.Stat().Pooled.AcquiredConns)

	// The direct route's transactions and savepoints may do anything.
	d := newPool(t, bed, nil)
	dtx, err := d.Begin(ctx)
	require.NoError(t, err)
	defer dtx.Rollback(ctx)
	dsp, err := dtx.Begin(ctx)
	require.NoError(t, err)
	_, err = dsp.Exec(ctx, "set statement_timeout = '1234ms'")
	assert.NoError(t, err)
	_, err = dtx.Prepare(ctx, "supapool_named_direct", "select 1")
	assert.NoError(t, err)
}
