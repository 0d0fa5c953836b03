package pool

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// poolRows are the rows of Pool.Query. They hold their connection (and
// the caller's place in the route's gate) until they are closed or fully
// read, and give it back exactly once, as pgxpool's rows do.
type poolRows struct {
	pgx.Rows
	c *pgxpool.Conn // nil once given back
	r *route
	// Kept to run the query again once if the first run failed on a
	// stale description, which happens before any row arrives.
	ctx     context.Context
	sql     string
	args    []any
	gotRows bool
	retried bool
}

// start borrows a connection and sends the query on it.
func (rs *poolRows) start() error {
	c, err := rs.r.borrow(rs.ctx, func(c *pgxpool.Conn) (err error) {
		rs.Rows, err = c.Query(rs.ctx, rs.r.text(rs.sql), rs.args...)
		return err
	})
	if err != nil {
		return err
	}
	rs.c = c
	return nil
}

// Next reads the next row. A query whose first result says its cached
// description went stale (or that a pooler refused it) before any row
// arrived runs once more on a fresh connection.
func (rs *poolRows) Next() bool {
	if rs.Rows.Next() {
		rs.gotRows = true
		return true
	}
	rs.Close()
	err := rs.Rows.Err()
	if err == nil {
		return false // isStale's errors.As target escapes: no allocation for nothing
	}
	_, _, refused := refusedBeforeRun(err)
	if !rs.gotRows && !rs.retried && (isStale(err) || refused || rs.r.exec.fallBack(err)) {
		rs.retried = true
		if isStale(err) {
			rs.r.gens.staleSeen()
		}
		if err := rs.start(); err != nil {
			rs.Rows = errRows{err}
			return false
		}
		return rs.Next()
	}
	return false
}

func (rs *poolRows) Close() {
	defer rs.giveBack()
	rs.Rows.Close()
}

func (rs *poolRows) giveBack() {
	if rs.c != nil {
		c := rs.c
		rs.c = nil
		rs.r.release(c)
	}
}

// poolRow is the row of Pool.QueryRow: Scan borrows a connection, runs
// the query and gives the connection back, in defer.
type poolRow struct {
	r    *route
	ctx  context.Context
	sql  string
	args []any
}

func (pr *poolRow) Scan(dest ...any) error {
	return pr.r.run(pr.ctx, func(c *pgxpool.Conn) error {
		return c.QueryRow(pr.ctx, pr.r.text(pr.sql), pr.args...).Scan(dest...)
	})
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
