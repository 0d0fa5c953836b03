package pool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
)

// Pool routes each call to the pooled or the direct URL and keeps each
// route inside its cap. It is safe for concurrent use. Its query methods
// have pgxpool.Pool's signatures, so code written for pgxpool compiles
// unchanged.
type Pool struct {
	cfg    resolved
	log    *zap.Logger
	pooled *route
	direct *route

	refused atomic.Int64

	bg       sync.WaitGroup // connections being closed in the background
	mu       sync.Mutex
	db       *sql.DB
	listener *Listener
	closed   atomic.Bool
}

// route is one way to the database: a pgxpool behind a gate.
type route struct {
	name           Route
	mode           PoolerMode
	pool           *pgxpool.Pool
	gate           *gate
	acquireTimeout time.Duration
	log            *zap.Logger

	bg         *sync.WaitGroup
	gens       generations
	pinned     atomic.Int32 // connections the listener keeps for good
	routed     atomic.Int64
	retried    atomic.Int64
	serverFull atomic.Int64

	yield       yielder
	maxIdle     time.Duration   // MaxConnIdleTime
	beforeClose func(*pgx.Conn) // the pgxpool config's, for connections closed here
}

// NewFromEnv is New with ConfigFromEnv.
func NewFromEnv(ctx context.Context) (*Pool, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg)
}

// New creates a Pool. It opens no connection: the first call on a route
// opens that route's first connection, so a cold start costs one
// connection and a service that never uses the direct route opens none
// there.
func New(ctx context.Context, c Config) (*Pool, error) {
	cfg, err := c.resolve()
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg}
	p.log = cfg.Logger.With(zap.String("app", cfg.AppName))

	pooledDSN, pooledName, hook := cfg.pooled, fieldName("PooledURL", EnvPooledURL), cfg.ConfigurePooled
	if pooledDSN.url == "" {
		pooledDSN, pooledName = cfg.direct, fieldName("DirectURL", EnvDirectURL)
	}
	if p.pooled, err = p.newRoute(ctx, Pooled, pooledName, pooledDSN, cfg.MaxConns, hook); err != nil {
		return nil, err
	}
	if !cfg.NoDirect {
		if p.direct, err = p.newRoute(ctx, Direct, fieldName("DirectURL", EnvDirectURL), cfg.direct, cfg.MaxDirectConns, cfg.ConfigureDirect); err != nil {
			p.pooled.pool.Close()
			return nil, err
		}
	}
	p.log.Info("supapool: pool ready",
		zap.String("direct_url", Redact(cfg.direct.url)),
		zap.String("pooled_url", Redact(cfg.pooled.url)),
		zap.Stringer("pooled_mode", p.pooled.mode),
		zap.Int32("max_conns", cfg.MaxConns),
		zap.String("max_conns_from", cfg.maxConnsFrom),
		zap.Int32("max_direct_conns", cfg.MaxDirectConns),
		zap.String("max_direct_conns_from", cfg.maxDirectConnsFrom),
		zap.Stringer("tx_route", cfg.TxRoute),
		zap.String("exec_mode", p.pooled.pool.Config().ConnConfig.DefaultQueryExecMode.String()),
	)
	return p, nil
}

func (p *Pool) newRoute(ctx context.Context, name Route, field string, d dsn, max int32, hook func(*pgxpool.Config) error) (*route, error) {
	pc, err := pgxpool.ParseConfig(d.url)
	if err != nil {
		return nil, fmt.Errorf("pool: %s: %s", field, scrubParseError(err, d.url))
	}
	pc.MinConns = 0
	pc.MinIdleConns = 0
	pc.MaxConnIdleTime = p.cfg.MaxConnIdleTime
	pc.MaxConnLifetime = p.cfg.MaxConnLifetime
	pc.MaxConnLifetimeJitter = p.cfg.MaxConnLifetime / 10
	pc.HealthCheckPeriod = p.cfg.HealthCheckPeriod
	pc.ConnConfig.RuntimeParams["application_name"] = p.cfg.AppName
	if name == Pooled {
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
			return nil, fmt.Errorf("pool: %s: %w", hookName, err)
		}
	}
	pc.MaxConns = max // the caps rule whatever the hook did
	r := &route{
		name:           name,
		mode:           d.mode,
		gate:           newGate(max),
		acquireTimeout: p.cfg.AcquireTimeout,
		log:            p.log.With(zap.Stringer("route", name)),
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
	r.gens.install(pc)
	r.beforeClose = pc.BeforeClose
	if r.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("pool: %s route: %w", name, err)
	}
	return r, nil
}

func hasParam(raw, key string) bool {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return u.Query().Has(key)
	}
	return strings.Contains(raw, key+"=")
}

// scrubParseError keeps pgx's message, which names the parameter that
// failed and shows the connection string with its password redacted, and
// removes the password again in case pgx's redaction missed a form of it.
func scrubParseError(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
				msg = strings.ReplaceAll(msg, form, "xxxxx")
			}
		}
	}
	return msg
}

// acquire gets a connection, waiting while the server is full. Gated
// callers (every method but Acquire) also hold a place in the route's gate
// until they release.
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
	var last *pgconn.PgError
	attempts := 0
	for {
		if gated {
			if err := r.gate.enter(ctx); err != nil {
				return nil, r.giveUp(err, last, attempts)
			}
		}
		c, err := r.pool.Acquire(ctx)
		if err == nil {
			if gated && r.gate.atCap() {
				r.gate.ok(r.established())
			}
			return c, nil
		}
		if gated {
			r.gate.leave()
		}
		if ctx.Err() != nil {
			return nil, r.giveUp(ctx.Err(), last, attempts)
		}
		kind, pgErr := classifyConnErr(err)
		if kind != serverFull {
			return nil, wrapAcquireErr(r, err)
		}
		attempts++
		last = pgErr
		r.retried.Add(1)
		held := r.established()
		r.gate.full(held)
		if attempts == 1 {
			r.log.Warn("supapool: server full; waiting for a connection this route holds",
				zap.String("sqlstate", pgErr.Code), zap.String("message", pgErr.Message), zap.Int32("held", held))
		}
		if held == 0 || !gated || r.gate.wouldAdmit() {
			// Nothing of ours to wait for: back off with jitter so many
			// instances don't retry in step.
			d := time.Duration(min(attempts, 6)) * 10 * time.Millisecond
			d += rand.N(d)
			select {
			case <-ctx.Done():
				return nil, r.giveUp(ctx.Err(), last, attempts)
			case <-time.After(d):
			}
		}
	}
}

// established counts the route's open connections, in use or idle (not
// those still being opened).
func (r *route) established() int32 {
	st := r.pool.Stat()
	return st.AcquiredConns() + st.IdleConns()
}

func (r *route) giveUp(err error, last *pgconn.PgError, attempts int) error {
	if last == nil {
		return fmt.Errorf("pool: %s route: acquire: %w", r.name, err)
	}
	r.serverFull.Add(1)
	return &ServerFullError{Route: r.name, Code: last.Code, Message: last.Message, Retries: attempts, Err: err}
}

// release gives back a connection a gated caller borrowed.
func (r *route) release(c *pgxpool.Conn) {
	c.Release()
	r.gate.leave()
	if r.yield.after > 0 && !r.yield.armed.Load() && r.idleGate() {
		r.quiet()
	}
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

// pooledFor checks a statement for the pooled route and borrows a
// connection for it.
func (p *Pool) pooledFor(ctx context.Context, sql string) (*pgxpool.Conn, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if err := routeQuery(sql); err != nil {
		p.refused.Add(1)
		return nil, err
	}
	return p.pooled.acquire(ctx, true)
}

// Exec runs sql on the pooled route.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := p.pooledFor(ctx, sql)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := c.Exec(ctx, sql, args...)
	p.pooled.release(c)
	if isStale(err) {
		p.pooled.gens.staleSeen()
		if c, err = p.pooled.acquire(ctx, true); err != nil {
			return pgconn.CommandTag{}, err
		}
		tag, err = c.Exec(ctx, sql, args...)
		p.pooled.release(c)
	}
	return tag, err
}

// Query runs sql on the pooled route. The connection goes back when the
// rows are closed or fully read.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := p.pooledFor(ctx, sql)
	if err != nil {
		return errRows{err}, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		p.pooled.release(c)
		return errRows{err}, err
	}
	return &poolRows{Rows: rows, c: c, r: p.pooled, ctx: ctx, sql: sql, args: args}, nil
}

// QueryRow runs sql on the pooled route; errors are returned by Scan.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := p.pooledFor(ctx, sql)
	if err != nil {
		return errRow{err}
	}
	return &poolRow{row: c.QueryRow(ctx, sql, args...), c: c, r: p.pooled, ctx: ctx, sql: sql, args: args}
}

// SendBatch sends a batch on the pooled route. Every queued statement is
// checked as Exec checks one.
func (p *Pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if p.closed.Load() {
		return errBatch{ErrClosed}
	}
	for _, q := range b.QueuedQueries {
		if err := routeQuery(q.SQL); err != nil {
			p.refused.Add(1)
			return errBatch{err}
		}
	}
	c, err := p.pooled.acquire(ctx, true)
	if err != nil {
		return errBatch{err}
	}
	return &poolBatch{BatchResults: c.SendBatch(ctx, b), c: c, r: p.pooled}
}

// CopyFrom runs COPY FROM on the pooled route.
func (p *Pool) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	c, err := p.pooled.acquire(ctx, true)
	if err != nil {
		return 0, err
	}
	defer p.pooled.release(c)
	return c.CopyFrom(ctx, table, columns, src)
}

// Begin starts a transaction on Config.TxRoute (Direct by default).
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) {
	return p.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction with options on Config.TxRoute. The
// connection goes back on Commit or Rollback.
func (p *Pool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	r, err := p.routeFor(p.cfg.TxRoute)
	if err != nil {
		return nil, err
	}
	c, err := r.acquire(ctx, true)
	if err != nil {
		return nil, err
	}
	tx, err := c.BeginTx(ctx, opts)
	if err != nil {
		r.release(c)
		return nil, err
	}
	return &poolTx{Tx: tx, c: c, r: r, pool: p}, nil
}

// Acquire borrows a connection from a route for session work: SET, LISTEN
// for a while, advisory locks, temporary tables. The caller must Release
// it; session state set on a Direct connection stays with that connection
// when it goes back to the pool, so reset what you set. The route's cap
// applies.
func (p *Pool) Acquire(ctx context.Context, r Route) (*pgxpool.Conn, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	rt, err := p.routeFor(r)
	if err != nil {
		return nil, err
	}
	return rt.acquire(ctx, false)
}

// Ping checks the pooled route, as pgxpool.Pool's Ping checks its pool.
func (p *Pool) Ping(ctx context.Context) error { return p.PingRoute(ctx, Pooled) }

// PingRoute borrows a connection from a route and pings the server through
// it; a health check calls it for both routes.
func (p *Pool) PingRoute(ctx context.Context, r Route) error {
	if p.closed.Load() {
		return ErrClosed
	}
	rt, err := p.routeFor(r)
	if err != nil {
		return err
	}
	c, err := rt.acquire(ctx, true)
	if err != nil {
		return err
	}
	err = c.Ping(ctx)
	rt.release(c)
	if err != nil {
		return fmt.Errorf("pool: %s route: ping: %w", r, err)
	}
	return nil
}

// DirectDB returns a database/sql handle on the direct route, for
// migration tools such as goose or golang-migrate. It shares the direct
// route's connections and cap. Close the Pool, not the DB.
func (p *Pool) DirectDB() *sql.DB {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.db == nil {
		if p.direct == nil {
			p.db = sql.OpenDB(noDirectConnector{})
		} else {
			p.db = stdlib.OpenDBFromPool(p.direct.pool)
		}
	}
	return p.db
}

// Config returns the configuration in effect, defaults applied.
func (p *Pool) Config() Config { return p.cfg.Config }

// Close stops the listener, waits for borrowed connections to come back
// and closes both routes.
func (p *Pool) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.mu.Lock()
	l, db := p.listener, p.db
	p.mu.Unlock()
	if l != nil {
		l.close()
	}
	if db != nil {
		_ = db.Close()
	}
	p.pooled.stopYield()
	p.pooled.pool.Close()
	if p.direct != nil {
		p.direct.stopYield()
		p.direct.pool.Close()
	}
	p.bg.Wait()
}

// noDirectConnector backs DirectDB when the direct route is off, so that
// migrations fail with a clear error instead of going through a pooler.
type noDirectConnector struct{}

func (noDirectConnector) Connect(context.Context) (driver.Conn, error) { return nil, ErrNoDirectRoute }
func (noDirectConnector) Driver() driver.Driver                        { return noDirectDriver{} }

type noDirectDriver struct{}

func (noDirectDriver) Open(string) (driver.Conn, error) { return nil, ErrNoDirectRoute }

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
func (r *route) closeConn(c *pgxpool.Conn) {
	conn := c.Hijack()
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
