package pool

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Lane is a way to the database with its own cap, wait queue and limits,
// used through Pool's query methods: the heavy lane (Pool.Heavy) and the
// read-replica lane (Pool.Replica). It satisfies sqlc's DBTX. On the heavy
// lane every call runs in a transaction of its own, begun with the lane's
// limits, and Begin gives a transaction with the same limits. It is safe
// for concurrent use.
type Lane struct {
	p       *Pool
	r       *route // the heavy lane's route; nil on the replica lane
	replica bool
	after   LSN               // replica lane: read only where this is replayed (After)
	timeout time.Duration     // statement_timeout per transaction; <= 0 none
	wrap    func(error) error // names the lane's limit in its errors
}

// check is the one entry check of a Lane call: the Pool is open and the
// statement is one the lane takes.
func (l *Lane) check(sql string) error {
	if err := l.open(); err != nil {
		return err
	}
	return l.p.allow(l.checkRoute(), sql)
}

// checkRoute is the route whose rules the lane's statements follow: the
// replica lane's are the pooled route's.
func (l *Lane) checkRoute() *route {
	if l.r == nil {
		return l.p.pooled
	}
	return l.r
}

// open fails once the Pool is closed, or when the lane is off.
func (l *Lane) open() error {
	if err := l.p.open(); err != nil {
		return err
	}
	if l.r == nil && !l.replica {
		return ErrNoHeavyLane
	}
	return nil
}

// begin starts a transaction on c with the lane's limits.
func (l *Lane) begin(ctx context.Context, c *pgxpool.Conn, opts pgx.TxOptions) (pgx.Tx, error) {
	return c.BeginTx(ctx, pgx.TxOptions{BeginQuery: heavyBeginSQL(opts, l.timeout)})
}

// inTx runs f in a transaction of its own on c: committed when f
// succeeds, rolled back when it fails.
func (l *Lane) inTx(ctx context.Context, c *pgxpool.Conn, f func(pgx.Tx) error) error {
	return inTx(ctx, c, func() (pgx.Tx, error) { return l.begin(ctx, c, pgx.TxOptions{}) }, f)
}

// inTx runs f in a transaction begun by begin: committed when f succeeds,
// rolled back when it fails.
func inTx(ctx context.Context, c *pgxpool.Conn, begin func() (pgx.Tx, error), f func(pgx.Tx) error) error {
	tx, err := begin()
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// Exec runs sql on the lane.
func (l *Lane) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := l.check(sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	if l.replica {
		return l.replicaExec(ctx, sql, args)
	}
	var tag pgconn.CommandTag
	err := l.r.run(ctx, func(c *pgxpool.Conn) error {
		return l.inTx(ctx, c, func(tx pgx.Tx) (err error) {
			tag, err = tx.Exec(ctx, sql, args...)
			return err
		})
	})
	return tag, l.wrap(err)
}

// Query runs sql on the lane. The connection goes back, and the
// transaction commits, when the rows are closed or fully read.
func (l *Lane) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := l.check(sql); err != nil {
		return errRows{err}, err
	}
	if l.replica {
		return l.replicaQuery(ctx, sql, args)
	}
	rows, err := l.queryInTx(ctx, l.r, func(c *pgxpool.Conn) (pgx.Tx, error) { return l.begin(ctx, c, pgx.TxOptions{}) }, sql, args)
	if err != nil {
		return errRows{err}, err
	}
	return rows, nil
}

// queryInTx borrows a connection of r, begins a transaction on it with
// begin and sends the query in it; the rows end the transaction and give
// the connection back.
func (l *Lane) queryInTx(ctx context.Context, r *route, begin func(*pgxpool.Conn) (pgx.Tx, error), sql string, args []any) (pgx.Rows, error) {
	rs := &laneRows{l: l, r: r, ctx: ctx}
	c, err := r.borrow(ctx, func(c *pgxpool.Conn) error {
		tx, err := begin(c)
		if err != nil {
			return err
		}
		if rs.Rows, err = tx.Query(ctx, sql, args...); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		rs.tx = tx
		return nil
	})
	if err != nil {
		return nil, l.wrap(err)
	}
	rs.c = c
	return rs, nil
}

// QueryRow runs sql on the lane; errors are returned by Scan. The
// connection is borrowed when Scan runs and given back before it returns.
func (l *Lane) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := l.check(sql); err != nil {
		return errRow{err}
	}
	return laneRow{l: l, ctx: ctx, sql: sql, args: args}
}

// SendBatch sends a batch on the lane, in one transaction that commits
// when the results are closed without error. Every queued statement is
// checked as Exec checks one. A batch that begins a transaction itself
// (pgx.Batch.BeginTx) is refused: use Begin.
func (l *Lane) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := l.open(); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	if pgx.FailedBatchResults(b, nil).Tx() != nil {
		return pgx.FailedBatchResults(b, errors.New("pool: heavy lane: a batch that begins a transaction (pgx.Batch.BeginTx) is not taken, because every lane batch already runs in a transaction with the lane's limits; queue the statements in a plain batch, or use Heavy().Begin"))
	}
	for _, q := range b.QueuedQueries {
		if err := l.p.allow(l.checkRoute(), q.SQL); err != nil {
			return pgx.FailedBatchResults(b, err)
		}
	}
	if l.replica {
		return l.replicaBatch(ctx, b)
	}
	return l.batchInTx(ctx, l.r, func(c *pgxpool.Conn) (pgx.Tx, error) { return l.begin(ctx, c, pgx.TxOptions{}) }, b)
}

// batchInTx borrows a connection of r, begins a transaction with begin and
// sends b in it; Close of the results ends it. It returns nil when no
// connection could be had, with the error.
func (l *Lane) batchInTx(ctx context.Context, r *route, begin func(*pgxpool.Conn) (pgx.Tx, error), b *pgx.Batch) pgx.BatchResults {
	br, err := l.startBatch(ctx, r, begin, b)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

func (l *Lane) startBatch(ctx context.Context, r *route, begin func(*pgxpool.Conn) (pgx.Tx, error), b *pgx.Batch) (*laneBatch, error) {
	lb := &laneBatch{l: l, r: r, ctx: ctx}
	c, err := r.borrow(ctx, func(c *pgxpool.Conn) (err error) {
		lb.tx, err = begin(c)
		return err
	})
	if err != nil {
		return nil, l.wrap(err)
	}
	lb.c = c
	lb.br = lb.tx.SendBatch(ctx, b)
	return lb, nil
}

// CopyFrom runs COPY FROM on the lane. It is not run again when the
// server refuses it, because src has been read.
func (l *Lane) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := l.open(); err != nil {
		return 0, err
	}
	if l.replica {
		return 0, ErrReplicaWrite
	}
	var n int64
	err := l.r.runOnce(ctx, func(c *pgxpool.Conn) error {
		return l.inTx(ctx, c, func(tx pgx.Tx) (err error) {
			n, err = tx.CopyFrom(ctx, table, columns, src)
			return err
		})
	})
	return n, l.wrap(err)
}

// Begin starts a transaction on the lane with the lane's limits.
func (l *Lane) Begin(ctx context.Context) (pgx.Tx, error) {
	return l.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction with options on the lane; the lane's
// limits are set in it after opts' begin. It keeps its connection until
// Commit or Rollback, and refuses session statements as the pooled route
// does.
func (l *Lane) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if err := l.open(); err != nil {
		return nil, err
	}
	if l.replica {
		return l.replicaBegin(ctx, opts)
	}
	var t pgx.Tx
	c, err := l.r.borrow(ctx, func(c *pgxpool.Conn) (err error) {
		t, err = l.begin(ctx, c, opts)
		return err
	})
	if err != nil {
		return nil, l.wrap(err)
	}
	return &laneTx{poolTx: l.p.newTx(t, c, l.r), l: l}, nil
}
