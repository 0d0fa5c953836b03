package pool

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Heavy returns the heavy lane: a way to the database for long, expensive
// queries (reports, exports, backfills) that must not take the
// connections the hot path needs. It goes where the pooled route goes
// (PooledURL, or DirectURL without a pooler) through a pgxpool of its
// own, capped at MaxHeavyConns per instance with its own wait queue, so a
// burst of heavy queries waits behind each other and never for (or
// instead of) the pooled route. Every call runs in a transaction whose
// statement_timeout is HeavyTimeout; session statements are refused, as
// on the pooled route. Its connections carry application_name
// APP/heavy, which the monitor folds back into APP.
func (p *Pool) Heavy() *Lane { return p.heavyLane }

// ErrNoHeavyLane is returned by the heavy lane's calls when NoHeavy is
// set (by a budget plan that gives the app no heavy connections).
var ErrNoHeavyLane = errors.New("pool: the heavy lane is off (NoHeavy, or heavy: 0 for this app in the SUPAPOOL_BUDGET plan); give the app heavy: 1 or more in the budget, or use the pooled route")

// newHeavyLane is the heavy lane over route r.
func (p *Pool) newHeavyLane(r *route) *Lane {
	l := &Lane{p: p, r: r, timeout: p.cfg.HeavyTimeout}
	l.wrap = l.timeoutErr
	return l
}

// heavyBeginSQL is the statement that begins a transaction on the heavy
// lane: begin (with opts' isolation, access and deferrable modes, or
// opts.BeginQuery), then the lane's timeout as SET LOCAL, which ends with
// the transaction and so works through a transaction pooler. One simple
// query string, one round trip.
func heavyBeginSQL(opts pgx.TxOptions, timeout time.Duration) string {
	begin := opts.BeginQuery
	if begin == "" {
		var b strings.Builder
		b.WriteString("begin")
		if opts.IsoLevel != "" {
			b.WriteString(" isolation level " + string(opts.IsoLevel))
		}
		if opts.AccessMode != "" {
			b.WriteString(" " + string(opts.AccessMode))
		}
		if opts.DeferrableMode != "" {
			b.WriteString(" " + string(opts.DeferrableMode))
		}
		begin = b.String()
	}
	if timeout <= 0 {
		return begin
	}
	// Milliseconds, rounded up so a sub-millisecond limit is not 0 (off).
	ms := (timeout + time.Millisecond - 1) / time.Millisecond
	return begin + "; set local statement_timeout = " + strconv.FormatInt(int64(ms), 10)
}

// HeavyTimeoutError is the error of a statement on the heavy lane that
// ran past HeavyTimeout and was cancelled by the server. Err is the
// server's error (SQLSTATE 57014).
type HeavyTimeoutError struct {
	Timeout time.Duration
	Err     error
}

func (e *HeavyTimeoutError) Error() string {
	return fmt.Sprintf("pool: heavy lane: statement ran past HeavyTimeout (%s) of %v and the server cancelled it; raise the limit or make the query cheaper: %v", EnvHeavyTimeout, e.Timeout, e.Err)
}

func (e *HeavyTimeoutError) Unwrap() error { return e.Err }

// timeoutErr turns the server's statement-timeout cancel (57014 with
// PostgreSQL's "statement timeout" message; a cancel for the caller's
// context or pg_cancel_backend says "user request") into a
// HeavyTimeoutError; other errors pass unchanged.
func (l *Lane) timeoutErr(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "57014" || !strings.Contains(pgErr.Message, "statement timeout") {
		return err
	}
	if he := (*HeavyTimeoutError)(nil); errors.As(err, &he) {
		return err
	}
	return &HeavyTimeoutError{Timeout: l.timeout, Err: err}
}
