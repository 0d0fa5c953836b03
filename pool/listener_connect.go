package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// listenerConnectTimeout bounds borrowing the connection; listening to
// every channel then takes at most listenerOpTimeout and the proof
// listenerProbeTimeout, each with a budget of its own so that a slow step
// cannot eat the next one's and get it blamed.
const listenerConnectTimeout = 10 * time.Second

// connect borrows a direct connection, listens to the probe channel and
// every channel, and proves the session. On success run holds it.
func (st *runState) connect() error {
	c, err := st.acquire()
	if err != nil {
		return err
	}
	if err := st.prepare(c); err != nil {
		st.r.discard(c)
		return err
	}
	st.r.pinned.Add(1)
	st.c = c
	return nil
}

func (st *runState) acquire() (*pgxpool.Conn, error) {
	ctx, cancel := context.WithTimeout(st.l.ctx, listenerConnectTimeout)
	defer cancel()
	return st.r.acquire(ctx, true)
}

// prepare listens on c to the probe channel and every channel, in one
// round trip, then proves the session.
func (st *runState) prepare(c *pgxpool.Conn) error {
	var b strings.Builder
	b.WriteString("listen " + pgx.Identifier{st.l.probe}.Sanitize())
	for name := range st.chans {
		b.WriteString("; listen " + pgx.Identifier{name}.Sanitize())
	}
	ctx, cancel := context.WithTimeout(st.l.ctx, listenerOpTimeout)
	defer cancel()
	// No arguments: pgx sends it as one simple query.
	if _, err := c.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("pool: listener: listen: %w", err)
	}
	return st.prove(st.l.ctx, c, listenerProbeTimeout)
}

// configError reports whether a failed connection attempt is a
// configuration error, one that retrying will not fix, and returns it
// with a hint naming the setting to fix. The route's errors already carry
// wrapAcquireErr's hint.
func configError(err error) (error, bool) {
	var se *sessionError
	if errors.As(err, &se) {
		return err, se.pooler()
	}
	kind, _ := classifyConnErr(err)
	return err, kind == configErr
}

// failStreak counts consecutive failed connection attempts, so that a
// long outage is logged now and then rather than once a second.
type failStreak struct {
	n             int
	since         time.Time
	warned, erred time.Time // when last logged at Warn, at Error
}

// How failed attempts are logged: a configuration error at Error at once;
// transient errors at Debug for the first attempts (a restart or failover
// often ends within them), then at Warn; each level at most once a
// listenerLogEvery while the streak lasts, Debug otherwise.
const (
	listenerQuietFailures = 2
	listenerLogEvery      = time.Minute
)

// failed logs a failed attempt, records it for Listen callers that give
// up waiting, answers the pending Listens when it is a configuration error
// and reports whether it was one. The error never holds the URL (pgconn
// names host, user and database, not the password).
func (st *runState) failed(err error) bool {
	f := &st.fails
	now := time.Now()
	if f.n == 0 {
		f.since = now
	}
	f.n++
	werr, isConfig := configError(err)
	fields := []zap.Field{zap.Error(werr), zap.Int("attempts", f.n), zap.Duration("failing_for", now.Sub(f.since).Round(time.Millisecond)), zap.Int("channels", len(st.chans))}
	due := func(last time.Time) bool { return last.IsZero() || now.Sub(last) >= listenerLogEvery }
	switch {
	case isConfig && due(f.erred):
		f.erred = now
		st.l.log.Error("supapool: listener cannot connect: configuration error", fields...)
	case !isConfig && f.n > listenerQuietFailures && due(f.warned):
		f.warned = now
		st.l.log.Warn("supapool: listener cannot connect; retrying", fields...)
	default:
		st.l.log.Debug("supapool: listener connect failed; retrying", fields...)
	}
	st.l.lastErr.Store(&werr)
	if isConfig {
		st.answer(werr)
	}
	return isConfig
}
