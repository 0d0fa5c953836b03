package pool

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The replica lane's calls: each runs through onReplica, on a replica as
// the pooled route would run it, or on the primary's pooled route in a
// read-only transaction.

func (l *Lane) replicaExec(ctx context.Context, sql string, args []any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := l.p.onReplica(ctx, l.after, func(r *route, primary bool) error {
		return r.run(ctx, func(c *pgxpool.Conn) (err error) {
			if primary {
				return inReadOnlyTx(ctx, c, func(tx pgx.Tx) (err error) {
					tag, err = tx.Exec(ctx, sql, args...)
					return err
				})
			}
			tag, err = c.Exec(ctx, sql, args...)
			return err
		})
	})
	return tag, err
}

func (l *Lane) replicaScan(ctx context.Context, sql string, args []any, dest []any) error {
	return l.p.onReplica(ctx, l.after, func(r *route, primary bool) error {
		return r.run(ctx, func(c *pgxpool.Conn) error {
			if primary {
				return inReadOnlyTx(ctx, c, func(tx pgx.Tx) error {
					return tx.QueryRow(ctx, sql, args...).Scan(dest...)
				})
			}
			return c.QueryRow(ctx, sql, args...).Scan(dest...)
		})
	})
}

// replicaQuery fails over only while the query is being sent: an error
// that comes with the rows (rows.Err) is the caller's.
func (l *Lane) replicaQuery(ctx context.Context, sql string, args []any) (pgx.Rows, error) {
	var out pgx.Rows
	err := l.p.onReplica(ctx, l.after, func(r *route, primary bool) error {
		if !primary {
			rs := &poolRows{r: r, ctx: ctx, sql: sql, args: args}
			if err := rs.start(); err != nil {
				return err
			}
			out = &laneRows{Rows: rs, l: l, ctx: ctx}
			return nil
		}
		rows, err := l.queryInTx(ctx, r, func(c *pgxpool.Conn) (pgx.Tx, error) { return c.BeginTx(ctx, readOnly) }, sql, args)
		out = rows
		return err
	})
	if err != nil {
		return errRows{err}, err
	}
	return out, nil
}

func (l *Lane) replicaBegin(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	var out pgx.Tx
	err := l.p.onReplica(ctx, l.after, func(r *route, primary bool) error {
		o := opts
		if primary {
			o.AccessMode = pgx.ReadOnly
			if o.BeginQuery != "" {
				o.BeginQuery += "; set transaction read only"
			}
		}
		var t pgx.Tx
		c, err := r.borrow(ctx, func(c *pgxpool.Conn) (err error) {
			t, err = c.BeginTx(ctx, o)
			return err
		})
		if err != nil {
			return err
		}
		out = &laneTx{poolTx: l.p.newTx(t, c, r), l: l}
		return nil
	})
	return out, err
}

// inReadOnlyTx runs f in a read-only transaction of its own on c.
func inReadOnlyTx(ctx context.Context, c *pgxpool.Conn, f func(pgx.Tx) error) error {
	return inTx(ctx, c, func() (pgx.Tx, error) { return c.BeginTx(ctx, readOnly) }, f)
}

// replicaBatch sends b on a replica, or read-only on the primary; it
// fails over only when no connection could be had or BEGIN failed.
func (l *Lane) replicaBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	var out *laneBatch
	err := l.p.onReplica(ctx, l.after, func(r *route, _ bool) (err error) {
		out, err = l.startBatch(ctx, r, func(c *pgxpool.Conn) (pgx.Tx, error) { return c.BeginTx(ctx, readOnly) }, b)
		return err
	})
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return out
}
