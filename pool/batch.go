package pool

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// poolBatch are the results of Pool.SendBatch. A plain batch gives its
// connection back on Close. A batch that began a transaction hands the
// connection to its Tx instead, which keeps it until Commit or Rollback,
// as pgxpool's batch results do: Close in the middle of the transaction
// must not give back a connection that is still in it.
type poolBatch struct {
	br pgx.BatchResults
	c  *pgxpool.Conn // nil once given back, and nil when tx owns it
	r  *route
	tx *poolTx
}

func (p *Pool) newBatch(c *pgxpool.Conn, r *route, br pgx.BatchResults) *poolBatch {
	if t := br.Tx(); t != nil {
		return &poolBatch{br: br, r: r, tx: p.newTx(t, c, r)}
	}
	return &poolBatch{br: br, c: c, r: r}
}

func (b *poolBatch) Exec() (pgconn.CommandTag, error) { return b.br.Exec() }
func (b *poolBatch) Query() (pgx.Rows, error)         { return b.br.Query() }
func (b *poolBatch) QueryRow() pgx.Row                { return b.br.QueryRow() }

// Close reads the remaining results and gives a plain batch's connection
// back. A transaction batch's connection stays with its Tx, unless the
// batch left no transaction open (BEGIN failed, or the batch committed):
// pgx has then closed the Tx, and the connection goes back now instead of
// waiting for a Rollback that may never come.
func (b *poolBatch) Close() error {
	defer func() {
		if b.c != nil {
			c := b.c
			b.c = nil
			b.r.release(c)
		}
		if b.tx != nil && b.tx.c != nil && b.tx.c.Conn().PgConn().TxStatus() == 'I' {
			b.tx.done()
		}
	}()
	return b.br.Close()
}

// Tx is the transaction the batch began, or nil.
func (b *poolBatch) Tx() pgx.Tx {
	if b.tx == nil {
		return nil
	}
	return b.tx
}
