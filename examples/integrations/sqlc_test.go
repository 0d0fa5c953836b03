package integrations_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/examples/integrations/sqlcdb"
	"github.com/supapool/supapool/pool"
)

// *pool.Pool has the three methods sqlc's DBTX asks for, with pgxpool's
// signatures, so sqlc's New takes it as it is. So does pgx.Tx.
var (
	_ sqlcdb.DBTX = (*pool.Pool)(nil)
	_ sqlcdb.DBTX = pgx.Tx(nil)
)

// sqlc's generated queries run on the pooled route through New(p), and
// inside a transaction from p.Begin (the direct route by default) through
// WithTx.
func TestSqlc(t *testing.T) {
	p, _ := newPool(t, "integ-sqlc", nil)
	ctx := testCtx(t)
	exec(t, p,
		"DROP TABLE IF EXISTS integ_sqlc_authors",
		"CREATE TABLE integ_sqlc_authors (id bigserial PRIMARY KEY, name text NOT NULL, bio text)")

	// The pooled route: each generated call borrows a connection for
	// one statement.
	q := sqlcdb.New(p)
	ada, err := q.CreateAuthor(ctx, sqlcdb.CreateAuthorParams{Name: "Ada", Bio: pgtype.Text{String: "engines", Valid: true}})
	require.NoError(t, err)
	got, err := q.GetAuthor(ctx, ada.ID)
	require.NoError(t, err)
	assert.Equal(t, ada, got)
	_, err = q.GetAuthor(ctx, ada.ID+1000)
	assert.ErrorIs(t, err, pgx.ErrNoRows, "a :one query that finds nothing is pgx.ErrNoRows, as with pgxpool")
	before := p.Stat()

	// A transaction: p.Begin goes to Config.TxRoute (Direct unless set),
	// and WithTx runs the same generated code on it.
	tx, err := p.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	qtx := q.WithTx(tx)
	_, err = qtx.CreateAuthor(ctx, sqlcdb.CreateAuthorParams{Name: "Grace"})
	require.NoError(t, err)
	n, err := qtx.CountAuthors(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "the transaction sees its own insert")
	n, err = q.CountAuthors(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the pool does not see it before Commit")
	assert.Equal(t, before.Direct.Routed+1, p.Stat().Direct.Routed, "Begin went to the direct route")
	require.NoError(t, tx.Commit(ctx))

	list, err := q.ListAuthors(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, "Ada", list[0].Name)
	assert.Equal(t, "Grace", list[1].Name)
	assert.False(t, list[1].Bio.Valid)

	// A rolled-back transaction leaves nothing behind.
	tx, err = p.Begin(ctx)
	require.NoError(t, err)
	rows, err := q.WithTx(tx).DeleteAuthor(ctx, ada.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(1), rows)
	require.NoError(t, tx.Rollback(ctx))
	n, err = q.CountAuthors(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), n)
	assert.ErrorIs(t, tx.Commit(ctx), pgx.ErrTxClosed, "a finished transaction cannot commit")
}
