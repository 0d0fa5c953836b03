package pool

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// poolTx is a transaction begun by Begin, BeginTx or a BeginTx batch. It
// owns its connection until Commit or Rollback, whichever ends it first,
// gives it back (exactly once, as pgxpool's Tx does).
type poolTx struct {
	guardedTx
	c *pgxpool.Conn // nil once given back
	r *route
}

func (p *Pool) newTx(t pgx.Tx, c *pgxpool.Conn, r *route) *poolTx {
	return &poolTx{guardedTx: guardedTx{Tx: t, g: guard{p: p, r: r}}, c: c, r: r}
}

// Commit commits the transaction and gives its connection back.
func (t *poolTx) Commit(ctx context.Context) error {
	defer t.done()
	return t.Tx.Commit(ctx)
}

// Rollback rolls the transaction back and gives its connection back; after
// Commit it returns pgx.ErrTxClosed, so defer Rollback is safe.
func (t *poolTx) Rollback(ctx context.Context) error {
	defer t.done()
	return t.Tx.Rollback(ctx)
}

func (t *poolTx) done() {
	if t.c != nil {
		c := t.c
		t.c = nil
		t.r.release(c)
	}
}

// guard refuses, in a transaction on the pooled route, what the pooled
// route refuses: session state set there would outlive the transaction on
// the pooler's server connection and reach its next client.
type guard struct {
	p *Pool
	r *route
}

func (g guard) check(sql string) error { return g.p.allow(g.r, sql) }

// guardedTx is a pgx.Tx whose every statement passes its guard, and whose
// savepoints (Begin) are guarded the same way. It is the transaction part
// of poolTx, and a savepoint on its own.
type guardedTx struct {
	pgx.Tx
	g guard
}

// Begin starts a savepoint, which refuses what its transaction refuses.
func (t *guardedTx) Begin(ctx context.Context) (pgx.Tx, error) {
	sp, err := t.Tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &guardedTx{Tx: sp, g: t.g}, nil
}

func (t *guardedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.g.check(sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := t.Tx.Exec(ctx, t.g.r.text(sql), args...)
	t.g.r.noteFailed(err)
	return tag, err
}

func (t *guardedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.g.check(sql); err != nil {
		return errRows{err}, err
	}
	rows, err := t.Tx.Query(ctx, t.g.r.text(sql), args...)
	if t.g.r.exec == nil {
		return rows, err
	}
	t.g.r.noteFailed(err)
	return &notingRows{Rows: rows, r: t.g.r}, err
}

func (t *guardedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.g.check(sql); err != nil {
		return errRow{err}
	}
	row := t.Tx.QueryRow(ctx, t.g.r.text(sql), args...)
	if t.g.r.exec == nil {
		return row
	}
	return notingRow{row, t.g.r}
}

func (t *guardedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, q := range b.QueuedQueries {
		if err := t.g.check(q.SQL); err != nil {
			return pgx.FailedBatchResults(b, err)
		}
	}
	br := t.Tx.SendBatch(ctx, t.g.r.batch(b, false))
	if t.g.r.exec == nil {
		return br
	}
	return &poolBatch{br: br, r: t.g.r} // notes its errors; never sent again
}

// Prepare prepares a statement. On the pooled route only the unnamed
// statement (name "") is allowed: a named one would stay on the pooler's
// server connection after the transaction, where the next client that
// prepares the same name fails with 42P05.
func (t *guardedTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if t.g.r.name != Direct && name != "" {
		t.g.p.refused.Add(1)
		return nil, &SessionStatementError{Statement: "a named prepared statement", Hint: "prepare it with an empty name (the unnamed statement), or use Acquire(ctx, pool.Direct)"}
	}
	if err := t.g.check(sql); err != nil {
		return nil, err
	}
	return t.Tx.Prepare(ctx, name, sql)
}

// Inside a transaction a statement that failed on a stale description or
// on lost statement names is not run again: the error ended the
// transaction, and what ran before it in the transaction is gone with it.
// The caller gets the error (and must run the transaction again); the
// route notes it (noteFailed), so that the next transaction is prepared
// afresh instead of failing the same way.

// notingRows are a pooled transaction's rows: their error is noted.
type notingRows struct {
	pgx.Rows
	r *route
}

func (rs *notingRows) Next() bool {
	if rs.Rows.Next() {
		return true
	}
	rs.r.noteFailed(rs.Rows.Err())
	return false
}

// notingRow is a pooled transaction's row: its error is noted.
type notingRow struct {
	pgx.Row
	r *route
}

func (r notingRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	r.r.noteFailed(err)
	return err
}
