package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/supapool/supapool/internal/appname"
	"github.com/supapool/supapool/internal/redact"
	"go.uber.org/zap"
)

// Route is one of the two ways to the database.
type Route int

const (
	// Pooled goes through the pooler (PooledURL), or to DirectURL through
	// a pool of its own when there is no pooler.
	Pooled Route = iota + 1
	// Direct goes to DirectURL, where sessions keep their state.
	Direct
	// Heavy is the lane for long queries (Pool.Heavy): PooledURL (or
	// DirectURL without a pooler) through a pool of its own, capped at
	// MaxHeavyConns, each transaction limited by HeavyTimeout.
	Heavy
	// Replica is a read replica (Pool.Replica), one of ReplicaURLs.
	Replica
)

func (r Route) String() string {
	switch r {
	case Pooled:
		return "pooled"
	case Direct:
		return "direct"
	case Heavy:
		return "heavy"
	case Replica:
		return "replica"
	}
	return fmt.Sprintf("Route(%d)", int(r))
}

// ParseRoute reads "pooled" or "direct".
func ParseRoute(s string) (Route, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pooled":
		return Pooled, nil
	case "direct":
		return Direct, nil
	}
	return 0, fmt.Errorf("pool: unknown route %s, expected pooled or direct", redact.Value(s))
}

// This file is the one place that decides where a call goes:
//
//	Query, QueryRow, Exec, SendBatch, CopyFrom  -> Pooled, unless the SQL
//	                                              needs a session: refused
//	Begin, BeginTx                               -> Config.TxRoute (Direct)
//	Heavy().Query, ... Begin                     -> Heavy: PooledURL's address
//	                                              through its own capped pool,
//	                                              refused like Pooled
//	Acquire(ctx, route)                          -> the route asked for
//	Listener                                     -> Direct
//	DirectDB                                     -> Direct
//
// Session statements are refused on the pooled route even when there is no
// pooler, so that code which works today keeps working when a pooler is put
// in front of the database; and because a pooled connection goes back to
// the pool after each call, session state set on it would leak to whichever
// caller borrows it next.

// routeQuery checks a statement bound for the pooled route: every
// statement of the string, by classify.go's lexer, which follows
// PostgreSQL's and allocates nothing on the accepted path, because every
// query passes here. Its answers are remembered by text
// (classify_cache.go), which copies a text the first time it keeps it; a
// remembered text costs a lookup and allocates nothing.
func routeQuery(sql string) error {
	kind := kinds.classify(sql)
	if kind == ordinary {
		return nil
	}
	return &SessionStatementError{Statement: kind.String(), Hint: kind.hint()}
}

// route is one way to the database: a pgxpool behind a gate.
type route struct {
	name           Route
	mode           PoolerMode
	pool           *pgxpool.Pool
	gate           *gate
	acquireTimeout time.Duration
	log            *zap.Logger

	// closing is closed when the Pool closes: callers waiting in the
	// gate or backing off get ErrClosed at once.
	closing    <-chan struct{}
	bg         *sync.WaitGroup
	gens       generations
	pinned     atomic.Int32 // connections the listener keeps for good
	routed     atomic.Int64
	retried    atomic.Int64
	serverFull atomic.Int64

	yield       yielder
	maxIdle     time.Duration   // MaxConnIdleTime
	beforeClose func(*pgx.Conn) // the pgxpool config's, for connections closed here

	// slots caps the route's sockets to the server, hijacked ones
	// included (hijack.go); nil only in the test that shows why.
	slots *serverConns

	// exec is the pooled route's exec mode behind a transaction pooler
	// (execmode.go); nil elsewhere.
	exec *execModes

	// elastic is the route's share of a full server (elastic.go); nil
	// when it does not share.
	elastic *elastic
}

// defaultConnectTimeout bounds each connection attempt (TCP, TLS and
// login) when the URL sets no connect_timeout.
const defaultConnectTimeout = 10 * time.Second

func (p *Pool) newRoute(ctx context.Context, name Route, field string, d dsn, max int32, hook func(*pgxpool.Config) error) (*route, error) {
	pc, err := pgxpool.ParseConfig(d.url)
	if err != nil {
		return nil, fmt.Errorf("pool: %s: %s", field, scrubParseError(err, d.url))
	}
	if name != Direct {
		if err := lexerSafe(pc.ConnConfig.RuntimeParams); err != nil {
			return nil, fmt.Errorf("pool: %s: %w", field, err)
		}
	}
	pc.MinConns = 0
	pc.MinIdleConns = 0
	pc.MaxConnIdleTime = p.cfg.MaxConnIdleTime
	pc.MaxConnLifetime = p.cfg.MaxConnLifetime
	pc.MaxConnLifetimeJitter = p.cfg.MaxConnLifetime / 10
	pc.HealthCheckPeriod = p.cfg.HealthCheckPeriod
	// The heavy and replica lanes carry their lane in application_name;
	// routes that share a full server with other instances (elastic.go)
	// carry the Pool's instance id. A route through a pooler does not,
	// since the pooler's server connections take on their last client's
	// application_name.
	var lane string
	switch name {
	case Heavy:
		lane = appname.LaneHeavy
	case Replica:
		lane = appname.LaneReplica
	}
	sharing := d.mode == NoPooler && !p.cfg.NoElastic && lane == ""
	id := appname.Name{App: p.cfg.AppName, Lane: lane}
	if sharing {
		id.Instance = p.instance
	}
	appName := id.String()
	pc.ConnConfig.RuntimeParams["application_name"] = appName
	if pc.ConnConfig.ConnectTimeout == 0 {
		// Neither connect_timeout in the URL nor PGCONNECT_TIMEOUT.
		// pgxpool keeps connecting after the caller has gone, for up to
		// two minutes of its own, so a server or pooler that accepts TCP
		// and never answers would keep every slot of the route "opening"
		// that long after it recovered.
		pc.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if name != Direct {
		switch {
		case p.cfg.ExecMode != 0:
			pc.ConnConfig.DefaultQueryExecMode = p.cfg.ExecMode
		case d.mode == TransactionPooler && !hasParam(d.url, "default_query_exec_mode"):
			// pgx's default names and caches prepared statements per
			// client connection; a transaction pooler moves clients
			// between server connections, so those names collide
			// (42P05) or vanish (26000). CacheDescribe uses the unnamed
			// statement and still needs one round trip.
			pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		}
	}
	if hook != nil {
		if err := hook(pc); err != nil {
			hookName := "ConfigurePooled"
			if name == Direct {
				hookName = "ConfigureDirect"
			}
			if name == Heavy {
				hookName = "ConfigurePooled (heavy lane)"
			}
			if name == Replica {
				hookName = "ConfigurePooled (replica)"
			}
			return nil, fmt.Errorf("pool: %s: %w", hookName, err)
		}
	}
	pc.MaxConns = max // the caps rule whatever the hook did
	r := &route{
		name:           name,
		mode:           d.mode,
		gate:           newGate(max, p.closing),
		acquireTimeout: p.cfg.AcquireTimeout,
		log:            p.log.With(zap.Stringer("route", name)),
		closing:        p.closing,
		bg:             &p.bg,
		maxIdle:        p.cfg.MaxConnIdleTime,
	}
	// Only a route to the server itself yields: closing a client
	// connection to a pooler frees no server slot (the pooler keeps its
	// server connection), and the server's count says nothing of the
	// pooler's client slots.
	if d.mode == NoPooler && p.cfg.YieldAfter > 0 {
		r.yield.after = p.cfg.YieldAfter
	}
	if sharing {
		r.elastic = newElastic(appName, p.cfg.weights, p.cfg.instances)
	}
	r.gens.install(pc)
	if !slotsOff.Load() {
		capName := "MaxConns"
		if name == Direct {
			capName = "MaxDirectConns"
		}
		if name == Heavy {
			capName = "MaxHeavyConns"
		}
		r.slots = newServerConns(name, capName, max, p.closing)
		r.slots.reclaim = r.reclaimIdle
		r.slots.install(pc, r.gens.forget)
	}
	if name == Pooled && d.mode == TransactionPooler {
		// Outermost, so a probe that fails the connect runs before the
		// generations and slots note the connection.
		userChose := p.cfg.ExecMode != 0 || hasParam(d.url, "default_query_exec_mode")
		r.exec = newExecModes(pc, userChose, r.log)
		r.exec.install(pc)
	}
	r.beforeClose = pc.BeforeClose
	if r.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("pool: %s route: %w", name, err)
	}
	return r, nil
}

// acquire gets a connection, waiting while the server is full or coming
// back. Gated callers (every method but Acquire) also hold a place in the
// route's gate until they release. Once the Pool closes, every waiter gets
// ErrClosed.
func (r *route) acquire(ctx context.Context, gated bool) (*pgxpool.Conn, error) {
	r.routed.Add(1)
	if r.acquireTimeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > r.acquireTimeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, r.acquireTimeout)
			defer cancel()
		}
	}
	if r.pinned.Load() >= r.gate.max {
		// Waiting would only end with the context: nothing will be given back.
		return nil, fmt.Errorf("pool: %s route: all %d of its connections (MaxDirectConns) are held by the listener; set %s to 2 or more", r.name, r.gate.max, EnvMaxDirectConns)
	}
	var w refusals
	for {
		if gated {
			if err := r.gate.enter(ctx); err != nil {
				return nil, r.giveUp(err, &w)
			}
		}
		c, err := r.pool.Acquire(ctx)
		if err == nil && r.isClosing() {
			// A connection given back while the Pool closes (before
			// pgxpool closed) reached a waiter; it waited, so it gets
			// ErrClosed like every other waiter.
			c.Release()
			if gated {
				r.gate.leave()
			}
			return nil, ErrClosed
		}
		if err == nil {
			if gated && r.gate.atCap() && !r.step(c) {
				// A look to allow climbing broke c: another one.
				c.Release()
				r.gate.leave()
				if ctx.Err() != nil {
					return nil, r.giveUp(ctx.Err(), &w)
				}
				continue
			}
			return c, nil
		}
		if gated {
			r.gate.leave()
		}
		if r.isClosing() {
			// pgxpool cancels connects in flight when it closes; the
			// caller's answer is that the pool closed, not their error.
			return nil, ErrClosed
		}
		if ctx.Err() != nil {
			return nil, r.giveUp(ctx.Err(), &w)
		}
		if st := (*SlotsTakenError)(nil); errors.As(err, &st) {
			// A connect waited its ConnectTimeout for a slot that
			// hijacked connections hold (hijack.go); the caller's
			// wait is not over.
			continue
		}
		kind, pgErr := classifyConnErr(err)
		if kind != serverFull && kind != transient {
			return nil, wrapAcquireErr(r, err)
		}
		if err := r.refused(ctx, &w, kind, pgErr, gated); err != nil {
			return nil, err
		}
	}
}

// step tells the gate, after an acquire at its cap got c, how many
// connections the route holds and whether it may open one more (a look
// on c first, when elastic sharing wants one: climbLook). It reports
// false when that look left c unusable.
func (r *route) step(c *pgxpool.Conn) (usable bool) {
	held := r.established()
	climb, usable := true, true
	if r.elastic != nil && r.gate.wouldClimb(held) {
		climb, usable = r.climbLook(c, held)
	}
	r.gate.ok(held, climb)
	return usable
}

// refusals is what one caller has been told while waiting.
type refusals struct {
	last *pgconn.PgError
	kind connErrKind
	n    int
}

// refused is the one place a refusal is waited for, whether it came at
// connect or, through PgBouncer, as the answer to a call's first
// statement: it counts the refusal, lowers the cap when the server is
// full, logs the first, and backs off when nothing the route holds will be
// given back. It returns the caller's error once the wait must end.
func (r *route) refused(ctx context.Context, w *refusals, kind connErrKind, pgErr *pgconn.PgError, gated bool) error {
	w.n++
	w.last, w.kind = pgErr, kind
	r.retried.Add(1)
	held := r.established()
	if kind == serverFull {
		r.gate.full(held)
		r.elastic.forget(held)
	}
	if w.n == 1 {
		msg := "supapool: server full; waiting for a connection this route holds"
		if kind == transient {
			msg = "supapool: server not accepting connections yet; retrying"
		}
		r.log.Warn(msg, zap.String("sqlstate", pgErr.Code), zap.String("message", pgErr.Message), zap.Int32("held", held))
	}
	if kind == transient || held == 0 || !gated || r.gate.wouldAdmit() {
		// Nothing of ours to wait for: back off with jitter so many
		// instances don't retry in step.
		d := time.Duration(min(w.n, 6)) * 10 * time.Millisecond
		if kind == transient {
			d *= 5
		}
		d += rand.N(d)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return r.giveUp(ctx.Err(), w)
		case <-r.closing:
			return ErrClosed
		case <-t.C:
		}
	}
	if ctx.Err() != nil {
		return r.giveUp(ctx.Err(), w)
	}
	return nil
}

// refusedBeforeRun reports a pooler's refusal that arrived as the answer
// to a call's first statement: PgBouncer logs a client in without a server
// connection and relays the server's "too many clients" (or its own "server
// login has been failing") when the statement needs one, as FATAL, before
// the statement reached any server. The call can run again safely.
func refusedBeforeRun(err error) (connErrKind, *pgconn.PgError, bool) {
	if err == nil {
		return otherErr, nil, false
	}
	kind, pgErr := classifyConnErr(err)
	if pgErr == nil || pgErr.Severity != "FATAL" || (kind != serverFull && kind != transient) {
		return kind, pgErr, false
	}
	return kind, pgErr, true
}

// isClosing reports whether the Pool is closing.
func (r *route) isClosing() bool {
	select {
	case <-r.closing:
		return true
	default:
		return false
	}
}

// established counts the route's open connections, in use or idle (not
// those still being opened).
func (r *route) established() int32 {
	st := r.pool.Stat()
	return st.AcquiredConns() + st.IdleConns()
}

// giveUp is the error of a caller whose wait ended: ErrClosed when the
// Pool closed, a ServerFullError when the server or pooler was refusing
// clients, and otherwise the context's error, with the pooler's last word
// when it was coming back.
func (r *route) giveUp(err error, w *refusals) error {
	switch {
	case errors.Is(err, ErrClosed):
		return ErrClosed
	case w.last == nil:
		return fmt.Errorf("pool: %s route: acquire: %w", r.name, err)
	case w.kind == transient:
		return fmt.Errorf("pool: %s route: server not accepting connections after %d attempts (SQLSTATE %s: %s): %w", r.name, w.n, w.last.Code, w.last.Message, err)
	}
	r.serverFull.Add(1)
	return &ServerFullError{Route: r.name, Code: w.last.Code, Message: w.last.Message, Retries: w.n, Err: err}
}

// release gives back a connection a gated caller borrowed, and its place
// in the gate. While a connect waits for a slot that a hijacked
// connection holds (hijack.go), the connection is closed instead, so that
// its slot goes to that connect.
func (r *route) release(c *pgxpool.Conn) {
	switch {
	case r.slots != nil && r.slots.wanted.Load() && r.slots.handOff(c.Conn()):
		r.closeConn(c)
	case r.elastic != nil:
		switch r.onRelease(c) {
		case releaseAsking:
			return // askAndRelease gives c and the place back
		case releaseKeep:
			c.Release()
		}
	default:
		c.Release()
	}
	r.left()
}

// left gives back a gated caller's place once its connection is back.
func (r *route) left() {
	r.gate.leave()
	if r.yield.after > 0 && !r.yield.armed.Load() && r.idleGate() {
		r.quiet()
	}
}

// run borrows a connection for one call and gives it back in defer, so a
// panic in f gives it back too. A call that failed on a stale statement
// description (see stale.go) runs once more, on a connection that
// predates no schema change; one that a pooler refused before it ran
// waits as a refused connect does.
func (r *route) run(ctx context.Context, f func(*pgxpool.Conn) error) error {
	var w refusals
	stale, fellBack := false, false
	for {
		err := r.runOnce(ctx, f)
		if err == nil {
			// Before the checks below: isStale's and namesLost's
			// errors.As targets escape, an allocation per call.
			return nil
		}
		if isStale(err) && !stale {
			stale = true
			r.gens.staleSeen()
			continue
		}
		if !fellBack && r.exec.fallBack(err) {
			fellBack = true // execmode.go: named statements stopped being safe
			continue
		}
		if kind, pgErr, ok := refusedBeforeRun(err); ok {
			if werr := r.refused(ctx, &w, kind, pgErr, true); werr != nil {
				return werr
			}
			continue
		}
		return err
	}
}

func (r *route) runOnce(ctx context.Context, f func(*pgxpool.Conn) error) error {
	c, err := r.acquire(ctx, true)
	if err != nil {
		return err
	}
	defer r.release(c)
	return f(c)
}

// borrow gets a connection for a call that keeps it (Query's rows, a
// transaction) and runs the call's first step on it. The connection goes
// back if that step fails or panics; a pooler's refusal before the step
// ran is waited for as a refused connect is.
func (r *route) borrow(ctx context.Context, first func(*pgxpool.Conn) error) (*pgxpool.Conn, error) {
	var w refusals
	for {
		c, err := r.acquire(ctx, true)
		if err != nil {
			return nil, err
		}
		if err = r.start(c, first); err == nil {
			return c, nil
		}
		kind, pgErr, ok := refusedBeforeRun(err)
		if !ok {
			return nil, err
		}
		if werr := r.refused(ctx, &w, kind, pgErr, true); werr != nil {
			return nil, werr
		}
	}
}

// start runs first on c and gives c back unless it succeeds.
func (r *route) start(c *pgxpool.Conn, first func(*pgxpool.Conn) error) (err error) {
	ok := false
	defer func() {
		if !ok {
			r.release(c)
		}
	}()
	if err = first(c); err == nil {
		ok = true
	}
	return err
}

func (p *Pool) routeFor(r Route) (*route, error) {
	switch r {
	case Pooled:
		return p.pooled, nil
	case Direct:
		if p.direct == nil {
			return nil, ErrNoDirectRoute
		}
		return p.direct, nil
	}
	return nil, fmt.Errorf("pool: unknown route %d, expected pool.Pooled or pool.Direct", int(r))
}

// discard closes a connection instead of giving it back, for connections
// whose session state (LISTEN) must not reach another caller.
// The close runs in the background, so the caller does not wait for the
// goodbye to reach a distant server; Pool.Close waits for it.
func (r *route) discard(c *pgxpool.Conn) {
	r.closeConn(c)
	r.gate.leave()
}

// closeConn takes c out of the pool and closes it in the background.
// pgxpool calls BeforeClose only for connections it closes itself, so this
// calls it for a hijacked one: the user's hook runs, and the generations
// forget the connection.
func (r *route) closeConn(c *pgxpool.Conn) { r.closeHijacked(c.Hijack()) }

// closeHijacked is closeConn for a connection already taken out of the
// pool.
func (r *route) closeHijacked(conn *pgx.Conn) {
	if r.beforeClose != nil {
		r.beforeClose(conn)
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(ctx)
		cancel()
	}()
}
