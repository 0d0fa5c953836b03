package pool

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The wrappers below give a borrowed connection back (and the caller's
// place in the route's gate) exactly once, when the result is done with,
// as pgxpool's own wrappers do.

type poolRows struct {
	pgx.Rows
	c *pgxpool.Conn
	r *route
	// Kept to run the query again once if the first run failed on a
	// stale description, which happens before any row arrives.
	ctx     context.Context
	sql     string
	args    []any
	gotRows bool
	retried bool
}

func (rs *poolRows) Next() bool {
	if rs.Rows.Next() {
		rs.gotRows = true
		return true
	}
	rs.Close()
	if !rs.gotRows && !rs.retried && isStale(rs.Rows.Err()) {
		rs.retried = true
		rs.r.gens.staleSeen()
		c, err := rs.r.acquire(rs.ctx, true)
		if err != nil {
			rs.Rows = errRows{err}
			return false
		}
		rows, err := c.Query(rs.ctx, rs.sql, rs.args...)
		if err != nil {
			rs.r.release(c)
			rs.Rows = errRows{err}
			return false
		}
		rs.Rows, rs.c = rows, c
		return rs.Next()
	}
	return false
}

func (rs *poolRows) Close() {
	rs.Rows.Close()
	if rs.c != nil {
		rs.r.release(rs.c)
		rs.c = nil
	}
}

type poolRow struct {
	row  pgx.Row
	c    *pgxpool.Conn
	r    *route
	ctx  context.Context
	sql  string
	args []any
}

func (pr *poolRow) Scan(dest ...any) error {
	err := pr.row.Scan(dest...)
	if pr.c != nil {
		pr.r.release(pr.c)
		pr.c = nil
	}
	if isStale(err) {
		pr.r.gens.staleSeen()
		c, aerr := pr.r.acquire(pr.ctx, true)
		if aerr != nil {
			return aerr
		}
		err = c.QueryRow(pr.ctx, pr.sql, pr.args...).Scan(dest...)
		pr.r.release(c)
	}
	return err
}

type poolBatch struct {
	pgx.BatchResults
	c *pgxpool.Conn
	r *route
}

func (b *poolBatch) Close() error {
	err := b.BatchResults.Close()
	if b.c != nil {
		b.r.release(b.c)
		b.c = nil
	}
	return err
}

type poolTx struct {
	pgx.Tx
	c    *pgxpool.Conn
	r    *route
	pool *Pool
}

// check refuses session statements in a transaction on the pooled route,
// where their state would outlive the transaction on a shared server
// connection.
func (t *poolTx) check(sql string) error {
	if t.r.name != Pooled {
		return nil
	}
	if err := routeQuery(sql); err != nil {
		t.pool.refused.Add(1)
		return err
	}
	return nil
}

func (t *poolTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.check(sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.Tx.Exec(ctx, sql, args...)
}

func (t *poolTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.check(sql); err != nil {
		return errRows{err}, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

func (t *poolTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.check(sql); err != nil {
		return errRow{err}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

func (t *poolTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, q := range b.QueuedQueries {
		if err := t.check(q.SQL); err != nil {
			return errBatch{err}
		}
	}
	return t.Tx.SendBatch(ctx, b)
}

func (t *poolTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.done()
	return err
}

func (t *poolTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	if !errors.Is(err, pgx.ErrTxClosed) {
		t.done()
	}
	return err
}

func (t *poolTx) done() {
	if t.c != nil {
		t.r.release(t.c)
		t.c = nil
	}
}

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

type errRows struct{ err error }

func (errRows) Close()                                       {}
func (e errRows) Err() error                                 { return e.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                          { return e.err }
func (e errRows) Values() ([]any, error)                     { return nil, e.err }
func (e errRows) RawValues() [][]byte                        { return nil }
func (e errRows) Conn() *pgx.Conn                            { return nil }
func (e errRows) TypeMap() *pgtype.Map                       { return nil }

type errBatch struct{ err error }

func (e errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, e.err }
func (e errBatch) Query() (pgx.Rows, error)         { return errRows(e), e.err }
func (e errBatch) QueryRow() pgx.Row                { return errRow(e) }
func (e errBatch) Close() error                     { return e.err }
func (e errBatch) Tx() pgx.Tx                       { return nil }
