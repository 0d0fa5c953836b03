package pool_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// A batch that begins a transaction hands it out through Tx(); the
// transaction must keep its connection after the batch is closed, until
// Commit, and go where Begin goes.
func TestBatchTransactionKeepsItsConnection(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name   string
		route  pool.Route
		direct bool
	}{{"TxRoute direct", pool.Direct, true}, {"TxRoute pooled", pool.Pooled, false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(t, bed, func(c *pool.Config) { c.TxRoute = tc.route })
			table := fmt.Sprintf("batch_tx_%d", time.Now().UnixNano())
			_, err := p.Exec(ctx, "create table "+table+" (id int)")
			require.NoError(t, err)

			b := &pgx.Batch{}
			b.BeginTx(pgx.TxOptions{})
			b.Queue("insert into "+table+" values ($1)", 1)
			b.Queue("insert into "+table+" values ($1)", 2)
			br := p.SendBatch(ctx, b)
			tx := br.Tx()
			require.NotNil(t, tx)
			defer tx.Rollback(ctx)
			require.NoError(t, br.Close())

			// Still in the transaction, on the route Begin would use.
			assert.Equal(t, tc.direct, servedDirectly(t, ctx, tx.Conn()))
			_, err = tx.Exec(ctx, "insert into "+table+" values (3)")
			require.NoError(t, err)
			require.NoError(t, tx.Commit(ctx))

			var n int
			require.NoError(t, p.QueryRow(ctx, "select count(*) from "+table).Scan(&n))
			assert.Equal(t, 3, n, "every write of the batch's transaction is committed")
			st := p.Stat()
			assert.Zero(t, st.Pooled.AcquiredConns+st.Direct.AcquiredConns, "Commit gave the connection back")
		})
	}
}

// Errors before a batch is sent come back as pgx's failed batch results:
// a BeginTx batch's Tx is then a closed transaction, never nil.
func TestBatchEarlyErrorsHaveAClosedTx(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.TxRoute = pool.Pooled })

	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue("set search_path = x")
	br := p.SendBatch(ctx, b)
	require.NotNil(t, br.Tx(), "Tx of a failed BeginTx batch is never nil")
	assert.ErrorIs(t, br.Close(), pool.ErrSessionStatement)
	assert.ErrorIs(t, br.Tx().Commit(ctx), pgx.ErrTxClosed)

	p.Close()
	br = p.SendBatch(ctx, b)
	require.NotNil(t, br.Tx())
	assert.ErrorIs(t, br.Close(), pool.ErrClosed)
	assert.ErrorIs(t, br.Tx().Rollback(ctx), pgx.ErrTxClosed)

	plain := &pgx.Batch{}
	plain.Queue("select 1")
	br = p.SendBatch(ctx, plain)
	assert.Nil(t, br.Tx())
	_, err := br.Exec()
	assert.ErrorIs(t, err, pool.ErrClosed)
}

// A batch whose BEGIN fails leaves no transaction open: its connection
// goes back on Close, even if nobody calls Rollback.
func TestBatchWithFailedBeginGivesTheConnectionBack(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, nil)
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: "no such level"})
	b.Queue("select 1")
	br := p.SendBatch(ctx, b)
	require.Error(t, br.Close())
	assert.True(t, errors.Is(br.Tx().Rollback(ctx), pgx.ErrTxClosed))
	assert.Zero(t, p.Stat().Direct.AcquiredConns)
	require.NoError(t, p.PingRoute(ctx, pool.Direct))
}

// A plain batch goes to the pooled route and gives its connection back on
// Close.
func TestPlainBatchUsesThePooledRoute(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, nil)
	b := &pgx.Batch{}
	b.Queue("select 1")
	b.Queue("select 2")
	br := p.SendBatch(ctx, b)
	assert.Nil(t, br.Tx())
	var one int
	require.NoError(t, br.QueryRow().Scan(&one))
	require.NoError(t, br.Close())
	st := p.Stat()
	assert.EqualValues(t, 1, st.Pooled.Routed)
	assert.Zero(t, st.Direct.Routed)
	assert.Zero(t, st.Pooled.AcquiredConns)
}
