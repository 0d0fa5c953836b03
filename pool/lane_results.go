package pool

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// laneRows are the rows of Lane.Query. They hold their connection and
// their transaction until they are closed or fully read; then the
// transaction commits (rolls back if the rows failed) and the connection
// goes back, exactly once. Inside a laneTx, tx and c are nil: the
// transaction owns both.
type laneRows struct {
	pgx.Rows
	l      *Lane
	r      *route // where c goes back
	ctx    context.Context
	tx     pgx.Tx        // nil once ended
	c      *pgxpool.Conn // nil once given back
	endErr error         // the commit's error
}

func (rs *laneRows) Next() bool {
	if rs.Rows.Next() {
		return true
	}
	rs.Close()
	return false
}

func (rs *laneRows) Close() {
	defer rs.giveBack()
	rs.Rows.Close()
	if rs.tx != nil {
		tx := rs.tx
		rs.tx = nil
		if rs.Rows.Err() != nil {
			_ = tx.Rollback(rs.ctx)
		} else {
			rs.endErr = tx.Commit(rs.ctx)
		}
	}
}

func (rs *laneRows) giveBack() {
	if rs.c != nil {
		c := rs.c
		rs.c = nil
		rs.r.release(c)
	}
}

func (rs *laneRows) Err() error {
	if err := rs.Rows.Err(); err != nil {
		return rs.l.wrap(err)
	}
	return rs.l.wrap(rs.endErr)
}

// laneRow is the row of Lane.QueryRow: Scan borrows a connection, runs
// the query in a transaction of its own and gives the connection back,
// in defer.
type laneRow struct {
	l    *Lane
	ctx  context.Context
	sql  string
	args []any
}

func (lr laneRow) Scan(dest ...any) error {
	if lr.l.replica {
		return lr.l.replicaScan(lr.ctx, lr.sql, lr.args, dest)
	}
	err := lr.l.r.run(lr.ctx, func(c *pgxpool.Conn) error {
		return lr.l.inTx(lr.ctx, c, func(tx pgx.Tx) error {
			return tx.QueryRow(lr.ctx, lr.sql, lr.args...).Scan(dest...)
		})
	})
	return lr.l.wrap(err)
}

// laneBatch are the results of Lane.SendBatch: Close reads the rest,
// commits the batch's transaction (rolls it back if the batch failed)
// and gives the connection back, exactly once.
type laneBatch struct {
	br  pgx.BatchResults
	l   *Lane
	r   *route // where c goes back
	ctx context.Context
	tx  pgx.Tx        // nil once ended
	c   *pgxpool.Conn // nil once given back
}

func (b *laneBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.br.Exec()
	return tag, b.l.wrap(err)
}

func (b *laneBatch) Query() (pgx.Rows, error) {
	rows, err := b.br.Query()
	if err != nil {
		return rows, b.l.wrap(err)
	}
	return &laneRows{Rows: rows, l: b.l, ctx: b.ctx}, nil
}

func (b *laneBatch) QueryRow() pgx.Row { return wrappedRow{b.br.QueryRow(), b.l} }

// Tx is nil: a lane batch's transaction is the lane's own.
func (b *laneBatch) Tx() pgx.Tx { return nil }

func (b *laneBatch) Close() error {
	defer func() {
		if b.c != nil {
			c := b.c
			b.c = nil
			b.r.release(c)
		}
	}()
	err := b.br.Close()
	if b.tx != nil {
		tx := b.tx
		b.tx = nil
		if err != nil {
			_ = tx.Rollback(b.ctx)
		} else {
			err = tx.Commit(b.ctx)
		}
	}
	return b.l.wrap(err)
}

// wrappedRow names the lane's limit in a row's error.
type wrappedRow struct {
	row pgx.Row
	l   *Lane
}

func (w wrappedRow) Scan(dest ...any) error { return w.l.wrap(w.row.Scan(dest...)) }

// laneTx is a transaction begun on a lane: a poolTx (guarded, gives its
// connection back once) whose errors name the lane's limit.
type laneTx struct {
	*poolTx
	l *Lane
}

func (t *laneTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.poolTx.Exec(ctx, sql, args...)
	return tag, t.l.wrap(err)
}

func (t *laneTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.poolTx.Query(ctx, sql, args...)
	if err != nil {
		return rows, t.l.wrap(err)
	}
	return &laneRows{Rows: rows, l: t.l, ctx: ctx}, nil
}

func (t *laneTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return wrappedRow{t.poolTx.QueryRow(ctx, sql, args...), t.l}
}

func (t *laneTx) Commit(ctx context.Context) error { return t.l.wrap(t.poolTx.Commit(ctx)) }
