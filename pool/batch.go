package pool

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// poolBatch are the results of Pool.SendBatch. A plain batch gives its
// connection back on Close. A batch that began a transaction hands the
// connection to its Tx instead, which keeps it until Commit or Rollback,
// as pgxpool's batch results do: Close in the middle of the transaction
// must not give back a connection that is still in it.
//
// A batch whose first result fails before anything of the batch ran (a
// stale statement description, stale.go; lost statement names, execmode.go)
// is sent once more, on a fresh connection. A later result's failure is
// returned: the results before it were handed out, so running the batch
// again would give the caller results of a run that was undone (or, with
// a COMMIT in the batch, run it twice). The route learns from it all the
// same (noteFailed), so the next call works.
type poolBatch struct {
	br pgx.BatchResults
	c  *pgxpool.Conn // nil once given back, and nil when tx owns it
	r  *route
	tx *poolTx

	// Kept to send the batch again; b is nil for a batch inside a
	// transaction, which is never sent again.
	ctx     context.Context
	b       *pgx.Batch
	reads   int // results asked for since the batch was (last) sent
	retried bool
	noted   error // the last error resend saw, so Close does not note it twice
}

func (p *Pool) newBatch(c *pgxpool.Conn, r *route, br pgx.BatchResults) *poolBatch {
	if t := br.Tx(); t != nil {
		return &poolBatch{br: br, r: r, tx: p.newTx(t, c, r)}
	}
	return &poolBatch{br: br, c: c, r: r}
}

// Exec reads the next result as a command tag.
func (b *poolBatch) Exec() (pgconn.CommandTag, error) {
	first := b.next()
	tag, err := b.br.Exec()
	if err != nil && b.resend(err, first) {
		return b.Exec()
	}
	return tag, err
}

// Query reads the next result as rows.
func (b *poolBatch) Query() (pgx.Rows, error) {
	first := b.next()
	rows, err := b.br.Query()
	if err != nil && b.resend(err, first) {
		return b.Query()
	}
	if err != nil {
		return rows, err
	}
	return &batchRows{Rows: rows, b: b, first: first}, nil
}

// QueryRow reads the next result as one row.
func (b *poolBatch) QueryRow() pgx.Row {
	first := b.next()
	return &batchRow{row: b.br.QueryRow(), b: b, first: first}
}

// next counts a result asked for and reports whether it is the first.
func (b *poolBatch) next() bool {
	b.reads++
	return b.reads == 1
}

// resend handles err, the error of one of the batch's results: when it is
// the first result's and says nothing ran, it sends the batch again (once)
// and reports true; the caller then reads that result again. Otherwise
// the route notes err, and false is returned.
func (b *poolBatch) resend(err error, first bool) bool {
	stale := isStale(err)
	if !stale && !namesLost(err) {
		return false
	}
	b.noted = err
	if !first || b.retried || b.b == nil || (!stale && !b.r.exec.fallBack(err)) {
		b.r.noteFailed(err)
		return false
	}
	if stale {
		b.r.gens.staleSeen()
	}
	b.retried = true
	_ = b.br.Close()
	b.giveBack()
	b.reads = 0
	c, err := b.r.acquire(b.ctx, true)
	if err != nil {
		b.br = pgx.FailedBatchResults(b.b, err)
		return true
	}
	b.br = c.SendBatch(b.ctx, b.r.batch(b.b, true))
	if b.tx != nil {
		// The caller may hold the Tx already: it is the same *poolTx,
		// now on the new connection.
		b.tx.Tx, b.tx.c = b.br.Tx(), c
	} else {
		b.c = c
	}
	return true
}

// Close reads the remaining results and gives a plain batch's connection
// back. A transaction batch's connection stays with its Tx, unless the
// batch left no transaction open (BEGIN failed, or the batch committed):
// pgx has then closed the Tx, and the connection goes back now instead of
// waiting for a Rollback that may never come.
func (b *poolBatch) Close() error {
	defer b.giveBack()
	if b.reads == 0 && b.b != nil && len(b.b.QueuedQueries) > 0 && b.b.QueuedQueries[0].Fn == nil {
		// Read the first result here, where it can be sent again;
		// pgx's Close would read it the same way.
		if _, err := b.Exec(); err != nil {
			_ = b.br.Close()
			return err
		}
	}
	err := b.br.Close()
	if err != nil && err != b.noted { //nolint:errorlint // the same error value, already noted
		b.r.noteFailed(err)
	}
	return err
}

// giveBack gives a plain batch's connection back, and a transaction
// batch's once the batch left no transaction open.
func (b *poolBatch) giveBack() {
	if b.c != nil {
		c := b.c
		b.c = nil
		b.r.release(c)
	}
	if b.tx != nil && b.tx.c != nil && b.tx.c.Conn().PgConn().TxStatus() == 'I' {
		b.tx.done()
	}
}

// Tx is the transaction the batch began, or nil.
func (b *poolBatch) Tx() pgx.Tx {
	if b.tx == nil {
		return nil
	}
	return b.tx
}

// batchRows are a batch result's rows: when the batch's first result
// fails before any row arrived, the batch is sent again, as in Exec.
type batchRows struct {
	pgx.Rows
	b       *poolBatch
	first   bool
	gotRows bool
}

func (rs *batchRows) Next() bool {
	if rs.Rows.Next() {
		rs.gotRows = true
		return true
	}
	err := rs.Rows.Err()
	if err == nil || rs.gotRows {
		return false
	}
	if rs.b.resend(err, rs.first && rs.b.reads == 1) {
		rs.first = false
		rs.b.next()
		rs.Rows, _ = rs.b.br.Query() // its error is the rows' Err
		return rs.Next()
	}
	return false
}

// batchRow is a batch result's row, sent again as batchRows are.
type batchRow struct {
	row   pgx.Row
	b     *poolBatch
	first bool
}

func (r *batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if err != nil && r.b.resend(err, r.first && r.b.reads == 1) {
		r.b.next()
		if err = r.b.br.QueryRow().Scan(dest...); err != nil {
			r.b.resend(err, false) // notes it
		}
	}
	return err
}
