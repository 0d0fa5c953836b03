package pool_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// TestExecModeBatchFallback is TestExecModeFallback with batches: start
// on the capable pooler, turn named statements off and RELOAD it under a
// batch load. A batch's first result fails (26000) before anything of the
// batch ran, so the batch is sent again: no caller sees an error.
func TestExecModeBatchFallback(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = capable.URL
		c.MaxConns = 8
	})
	ctx := testCtx(t)
	load := func(n, calls int) error { return batchLoad(ctx, p, n, calls) }
	st, _ := reloadUnderLoad(t, ctx, p, capable, load)
	require.Zero(t, st.Unretried, "every failure came at a batch's first result")
	t.Logf("fallbacks %d", st.Fallbacks)
}

// TestExecModeBatchSchemaChange adds a column behind "select *" while
// batches run it through the capable pooler, warm on every server
// connection: the batch whose first result fails with 0A000 is sent
// again with the generation's marker, and no caller sees an error.
func TestExecModeBatchSchemaChange(t *testing.T) {
	ctx, p, capable, admin := schemaFixture(t, "execmode_batch")
	// $1 only gives the query an argument, so that it is a named
	// statement like the rest.
	const query = "select * from execmode_batch where $1::text is not null"
	cols := 1
	run := func() error {
		return fanOut(16, 20, func(g, i int) error { return oneBatch(ctx, p, query, cols, g%4, i) })
	}
	require.Equal(t, 4, warmEvery(t, ctx, capable, run), "the statement is prepared on every server connection")
	require.Equal(t, pgx.QueryExecModeCacheStatement, p.Stat().Pooled.ExecMode.Mode)

	_, err := admin.Exec(ctx, "alter table execmode_batch add column b int default 2")
	require.NoError(t, err)
	cols = 2
	for range 3 {
		require.NoError(t, run())
	}
	require.Positive(t, p.Stat().Pooled.StaleRetries)
	b := &pgx.Batch{}
	b.Queue(query, "x")
	var a, c int
	br := p.SendBatch(ctx, b)
	require.NoError(t, br.QueryRow().Scan(&a, &c))
	require.NoError(t, br.Close())
	require.Equal(t, [2]int{1, 2}, [2]int{a, c})
}

// TestExecModeTxNotRetried runs transactions on the pooled route
// (TxRoute Pooled) through the capable pooler, then turns named
// statements off. A statement inside a transaction is never run again
// (what ran before it in the transaction is gone with the error): the
// caller gets 26000 or 42P05, Stat counts it as unretried, and the route
// falls back, so the transactions after it succeed.
func TestExecModeTxNotRetried(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = capable.URL
		c.MaxConns = 4
		c.TxRoute = pool.Pooled
	})
	ctx := testCtx(t)
	tx := func(i int) error {
		return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, "select $1::int + 1", i).Scan(&n); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "select $1::int * 2", i)
			return err
		})
	}
	for i := range 20 {
		require.NoError(t, tx(i))
	}
	require.Equal(t, pgx.QueryExecModeCacheStatement, p.Stat().Pooled.ExecMode.Mode)
	require.NoError(t, capable.SetMaxPreparedStatements(ctx, 0))
	failed := 0
	for i := range 20 {
		if err := tx(i); err != nil {
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Contains(t, []string{"26000", "42P05"}, pgErr.Code, err.Error())
			failed++
		}
	}
	st := p.Stat().Pooled.ExecMode
	require.Equal(t, pgx.QueryExecModeCacheDescribe, st.Mode, st.Reason)
	require.Positive(t, failed, "a transaction on a connection still naming its statements fails")
	require.LessOrEqual(t, failed, 4, "at most one per connection the route held (MaxConns)")
	require.Equal(t, int64(failed), st.Unretried)
	for i := range 20 {
		require.NoError(t, tx(i), "after the fallback")
	}
}
