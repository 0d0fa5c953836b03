package pool

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// LSN is a position in the primary's write-ahead log, as PostgreSQL
// prints a pg_lsn ("16/B374D848").
type LSN string

// CurrentLSN returns the primary's current WAL insert position, read on
// the pooled route. Read after a write has committed, it is past that
// write's commit record (also with synchronous_commit off, where the
// write position can still be behind it), so Replica().After(lsn) sees
// the write.
func (p *Pool) CurrentLSN(ctx context.Context) (LSN, error) {
	var s string
	if err := p.QueryRow(ctx, "select pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		return "", err
	}
	return LSN(s), nil
}

// After returns the replica lane for a caller that just wrote: each of
// its calls goes to a replica only once that replica has replayed lsn
// (from CurrentLSN after the write), waiting for it at most MaxReplicaLag
// and never past the caller's context; otherwise it reads from the
// primary. On the heavy lane After changes nothing.
func (l *Lane) After(lsn LSN) *Lane {
	if !l.replica {
		return l
	}
	c := *l
	c.after = lsn
	return &c
}

// errBehind says a replica had not replayed a caller's LSN in time; the
// call goes on to the next replica or the primary.
var errBehind = errors.New("pool: replica lane: the replica has not replayed the write yet")

// replayWait is how often a replica's replay position is read while a
// call waits for it.
const replayWait = 5 * time.Millisecond

// waitReplayed waits until r's server has replayed lsn, at most maxWait.
func waitReplayed(ctx context.Context, r *route, lsn LSN, maxWait time.Duration) error {
	deadline := time.Now().Add(maxWait)
	return r.run(ctx, func(c *pgxpool.Conn) error {
		for {
			var done bool
			if err := c.QueryRow(ctx, "select pg_last_wal_replay_lsn() >= $1::pg_lsn", string(lsn)).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if time.Now().Add(replayWait).After(deadline) {
				return errBehind
			}
			t := time.NewTimer(replayWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return errBehind
			case <-t.C:
			}
		}
	})
}
