package pool

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// The probe proves that the listener's connection is a live session that
// receives notifications: the listener listens on its private channel
// (Listener.probe) on every connection, sends itself a random token there
// with pg_notify on that same connection, and waits for it to come back.
// That proves the round trip and the notification path, and the
// notification names the server backend that sent it.
//
// That alone does not expose a transaction pooler. Measured through the
// test bed's PgBouncer 1.18 in transaction mode, the self-sent
// notification comes back within a millisecond, as it does direct:
// PostgreSQL delivers a backend's own notifications before ReadyForQuery,
// while the pooler still links the server connection to this client. A
// notification sent by another session arrives while the listening server
// connection sits idle in the pooler, and never reaches the client
// (nothing within 3s; direct, it takes under a millisecond). So when the
// backend that sent the self-notification is not the one the connection's
// cancel key names (a pooler hands out keys of its own: PgBouncer's is
// random), the listener also sends a token from another session, through
// the pooled route as Pool.Notify does, and requires it to come back too.
// A session pooler passes; a transaction pooler does not. With no pooler
// in between, the probe costs no connection but the listener's own.
//
// The wait is a few seconds: an honest round trip takes milliseconds, even
// across regions, and a pooler never delivers, so a longer wait would only
// delay the error. The heartbeat's wait follows ListenerHeartbeat, between
// one and five seconds, so a dead connection is replaced within about
// ListenerHeartbeat plus that wait.
const (
	listenerProbeTimeout    = 5 * time.Second
	listenerMinProbeTimeout = time.Second
)

// sessionError says a probe did not come back although the connection
// stayed up.
type sessionError struct {
	wait time.Duration
	own  bool // the self-sent probe: the connection delivers nothing (frozen, half-open)
}

func (e *sessionError) Error() string {
	if e.own {
		return fmt.Sprintf("pool: listener: a notification it sent on its own connection did not come back within %s: the connection is not delivering", e.wait)
	}
	return fmt.Sprintf("pool: listener: notifications sent on this connection came back but those sent by another session did not within %s: %s may point at a transaction pooler; LISTEN needs the direct URL (Supabase: db.REF.supabase.co:5432, or the session pooler on port 5432), and %s must reach the same database", e.wait, EnvDirectURL, EnvPooledURL)
}

// pooler reports whether it means a pooler in DATABASE_URL: a
// configuration error rather than a connection gone bad.
func (e *sessionError) pooler() bool { return !e.own }

// prove probes c within wait. Notifications for channels that arrive
// meanwhile are delivered. The error is a *sessionError when the
// connection stayed up but a probe did not come back.
func (st *runState) prove(ctx context.Context, c *pgxpool.Conn, wait time.Duration) error {
	l := st.l
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	token := randomHex(8)
	// Simple protocol: no prepared statement, which a pooler in
	// DATABASE_URL would lose between round trips.
	if _, err := c.Exec(ctx, "select pg_notify($1, $2)", pgx.QueryExecModeSimpleProtocol, l.probe, token); err != nil {
		return fmt.Errorf("pool: listener: probe: %w", err)
	}
	pid, err := st.await(ctx, c, token, &sessionError{wait: wait, own: true})
	if err != nil || pid == c.Conn().PgConn().PID() {
		return err // proven direct, or failed
	}
	// A pooler sits between: notifications from other sessions must
	// reach this one too.
	token = randomHex(8)
	if err := l.sendProbe(ctx, wait/2, token); err != nil {
		if l.ctx.Err() != nil {
			return err
		}
		// Inconclusive, not a failure: the connection has just proven
		// itself alive, and the pooled route's trouble is not its own.
		l.log.Warn("supapool: listener probe: a pooler sits in DATABASE_URL and the pooled route could not send the probe that tells a session pooler from a transaction pooler; keeping the connection unproven", zap.Error(err))
		return nil
	}
	_, err = st.await(ctx, c, token, &sessionError{wait: wait})
	return err
}

// await reads notifications on c until token comes back on the probe
// channel, and returns the PID of the backend that sent it. timedOut is
// the error when ctx ends with the connection still up.
func (st *runState) await(ctx context.Context, c *pgxpool.Conn, token string, timedOut error) (uint32, error) {
	l := st.l
	for {
		n, err := c.Conn().WaitForNotification(ctx)
		if err != nil {
			if l.ctx.Err() != nil || c.Conn().IsClosed() || ctx.Err() == nil {
				return 0, fmt.Errorf("pool: listener: probe: %w", err)
			}
			return 0, timedOut
		}
		if n.Channel != l.probe {
			l.dispatch(st.chans, n)
			continue
		}
		if n.Payload == token {
			return n.PID, nil
		}
		// a late answer to an earlier probe
	}
}

// sendProbe sends token on the probe channel through the pooled route,
// within d.
func (l *Listener) sendProbe(ctx context.Context, d time.Duration, token string) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	r := l.p.pooled
	c, err := r.acquire(ctx, true)
	if err != nil {
		return err
	}
	defer r.release(c)
	_, err = c.Exec(ctx, "select pg_notify($1, $2)", l.probe, token)
	return err
}

// heartbeat proves an idle connection again once ListenerHeartbeat has
// passed without a notification, and drops it if the proof fails; run
// then reconnects and calls OnListenerReconnect.
func (st *runState) heartbeat() {
	hb := st.l.p.cfg.ListenerHeartbeat
	if hb <= 0 || time.Since(st.quietSince) < hb {
		return // a notification came meanwhile: the next wait is shorter
	}
	wait := min(max(hb, listenerMinProbeTimeout), listenerProbeTimeout)
	if err := st.prove(st.l.ctx, st.c, wait); err != nil {
		if st.l.ctx.Err() == nil {
			st.drop(fmt.Errorf("heartbeat: %w", err)) // logged there
		}
		return
	}
	st.quietSince = time.Now()
}
