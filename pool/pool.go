package pool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"sync/atomic"

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
