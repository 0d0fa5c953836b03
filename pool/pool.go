package pool

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/supapool/supapool/internal/appname"
)

// Pool routes each call to the pooled or the direct URL and keeps each
// route inside its cap. It is safe for concurrent use. Its query methods
// have pgxpool.Pool's signatures, so code written for pgxpool compiles
// unchanged.
type Pool struct {
	cfg      resolved
	instance string // this Pool's id in application_name (elastic.go)
	log      *zap.Logger
	pooled   *route
	direct   *route
	heavy    *route // the heavy lane's route (heavy.go)

	heavyLane *Lane

	replicas    *replicas // replica.go
	replicaLane *Lane

	refused atomic.Int64

	closing  chan struct{}  // closed by Close; routes watch it
	bg       sync.WaitGroup // connections being closed in the background
	mu       sync.Mutex
	listener *Listener
	closed   atomic.Bool
}

// Format prints the Pool as its configuration, without passwords: fmt would
// otherwise walk its unexported fields, URLs included.
func (p *Pool) Format(f fmt.State, verb rune) {
	if p == nil {
		_, _ = io.WriteString(f, "<nil>")
		return
	}
	_, _ = fmt.Fprintf(f, "pool.Pool{%v}", p.cfg.Config)
}

// NewFromEnv is New with ConfigFromEnv, changed by opts (for example
// WithLogger). It opens no connection; call Check to fail fast at start-up.
func NewFromEnv(ctx context.Context, opts ...Option) (*Pool, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(&cfg)
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
	p := &Pool{cfg: cfg, instance: appname.Instance(), closing: make(chan struct{})}
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
	if !cfg.NoHeavy {
		if p.heavy, err = p.newRoute(ctx, Heavy, pooledName, pooledDSN, cfg.MaxHeavyConns, hook); err != nil {
			p.pooled.pool.Close()
			if p.direct != nil {
				p.direct.pool.Close()
			}
			return nil, err
		}
	}
	p.heavyLane = p.newHeavyLane(p.heavy)
	if err := p.newReplicas(ctx); err != nil {
		p.pooled.pool.Close()
		if p.direct != nil {
			p.direct.pool.Close()
		}
		p.closeRoutes()
		return nil, err
	}
	p.replicaLane = &Lane{p: p, replica: true, wrap: replicaErr}
	p.log.Info("supapool: pool ready", append([]zap.Field{
		zap.String("direct_url", Redact(cfg.direct.url)),
		zap.String("pooled_url", Redact(cfg.pooled.url)),
		zap.Stringer("pooled_mode", p.pooled.mode),
		zap.Int32("max_conns", cfg.MaxConns),
		zap.String("max_conns_from", cfg.maxConnsFrom),
		zap.Int32("max_direct_conns", cfg.MaxDirectConns),
		zap.String("max_direct_conns_from", cfg.maxDirectConnsFrom),
		zap.Int32("max_heavy_conns", cfg.MaxHeavyConns),
		zap.Duration("heavy_timeout", cfg.HeavyTimeout),
		zap.Stringer("tx_route", cfg.TxRoute),
	}, p.pooled.execModeLog()...)...)
	return p, nil
}

// open fails once the Pool is closed: the one closed-check of every entry
// point.
func (p *Pool) open() error {
	if p.closed.Load() {
		return ErrClosed
	}
	return nil
}

// allow checks a statement bound for route r: the pooled route and the
// heavy lane, which shares its URL, refuse one that needs a session
// (route.go says why).
func (p *Pool) allow(r *route, sql string) error {
	if r.name == Direct {
		return nil
	}
	if err := routeQuery(sql); err != nil {
		p.refused.Add(1)
		return err
	}
	return nil
}

// Exec runs sql on the pooled route.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := p.open(); err != nil {
		return pgconn.CommandTag{}, err
	}
	if err := p.allow(p.pooled, sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	var tag pgconn.CommandTag
	err := p.pooled.run(ctx, func(c *pgxpool.Conn) (err error) {
		tag, err = c.Exec(ctx, p.pooled.text(sql), args...)
		return err
	})
	return tag, err
}

// Query runs sql on the pooled route. The connection goes back when the
// rows are closed or fully read.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.open(); err != nil {
		return errRows{err}, err
	}
	if err := p.allow(p.pooled, sql); err != nil {
		return errRows{err}, err
	}
	rs := &poolRows{r: p.pooled, ctx: ctx, sql: sql, args: args}
	if err := rs.start(); err != nil {
		return errRows{err}, err
	}
	return rs, nil
}

// QueryRow runs sql on the pooled route; errors are returned by Scan. The
// connection is borrowed when Scan runs and given back before it returns.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := p.open(); err != nil {
		return errRow{err}
	}
	if err := p.allow(p.pooled, sql); err != nil {
		return errRow{err}
	}
	return &poolRow{r: p.pooled, ctx: ctx, sql: sql, args: args}
}

// SendBatch sends a batch where its statements would go one by one: a
// batch that begins a transaction (pgx.Batch.BeginTx) goes to
// Config.TxRoute, as Begin does, and its Tx keeps the connection until
// Commit or Rollback; any other batch goes to the pooled route. On a
// pooled route every queued statement is checked as Exec checks one.
// Errors before the batch is sent come back as pgx's failed batch results,
// whose Tx (for a BeginTx batch) is closed, never nil.
func (p *Pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	r, err := p.batchRoute(b)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	for _, q := range b.QueuedQueries {
		if err := p.allow(r, q.SQL); err != nil {
			return pgx.FailedBatchResults(b, err)
		}
	}
	c, err := r.acquire(ctx, true)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	pb := p.newBatch(c, r, c.SendBatch(ctx, r.batch(b, false)))
	pb.ctx, pb.b = ctx, b
	return pb
}

// batchRoute is where a batch goes: Begin's route for one that begins a
// transaction, the pooled route for the rest.
func (p *Pool) batchRoute(b *pgx.Batch) (*route, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	// Only pgx knows whether BeginTx was called; its failed results
	// carry a Tx exactly then.
	if pgx.FailedBatchResults(b, nil).Tx() != nil {
		return p.routeFor(p.cfg.TxRoute)
	}
	return p.pooled, nil
}

// CopyFrom runs COPY FROM on the pooled route.
func (p *Pool) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := p.open(); err != nil {
		return 0, err
	}
	var n int64
	err := p.pooled.runOnce(ctx, func(c *pgxpool.Conn) (err error) {
		n, err = c.CopyFrom(ctx, table, columns, src)
		return err
	})
	return n, err
}

// Begin starts a transaction on Config.TxRoute (Direct by default).
func (p *Pool) Begin(ctx context.Context) (pgx.Tx, error) {
	return p.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction with options on Config.TxRoute. The
// transaction keeps its connection until Commit or Rollback.
func (p *Pool) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	r, err := p.routeFor(p.cfg.TxRoute)
	if err != nil {
		return nil, err
	}
	var t pgx.Tx
	c, err := r.borrow(ctx, func(c *pgxpool.Conn) (err error) {
		t, err = c.BeginTx(ctx, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p.newTx(t, c, r), nil
}

// Acquire borrows a connection from a route for session work: SET, LISTEN
// for a while, advisory locks, temporary tables. The caller must Release
// it; session state set on a Direct connection stays with that connection
// when it goes back to the pool, so reset what you set. The route's cap
// applies.
func (p *Pool) Acquire(ctx context.Context, r Route) (*pgxpool.Conn, error) {
	if err := p.open(); err != nil {
		return nil, err
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
	if err := p.open(); err != nil {
		return err
	}
	rt, err := p.routeFor(r)
	if err != nil {
		return err
	}
	c, err := rt.acquire(ctx, true)
	if err != nil {
		return err
	}
	defer rt.release(c)
	if err := c.Ping(ctx); err != nil {
		return fmt.Errorf("pool: %s route: ping: %w", r, err)
	}
	return nil
}

// Config returns the configuration in effect, defaults applied.
func (p *Pool) Config() Config { return p.cfg.Config }

// Close stops the listener, waits for borrowed connections to come back
// and closes both routes.
func (p *Pool) Close() {
	if p.closed.Swap(true) {
		return
	}
	close(p.closing)
	p.mu.Lock()
	l := p.listener
	p.mu.Unlock()
	if l != nil {
		l.close()
	}
	p.pooled.stopYield()
	p.pooled.pool.Close()
	if p.direct != nil {
		p.direct.stopYield()
		p.direct.pool.Close()
	}
	p.closeRoutes()
	p.bg.Wait()
}

// closeRoutes closes the heavy lane and the replicas.
func (p *Pool) closeRoutes() {
	if p.heavy != nil {
		p.heavy.stopYield()
		p.heavy.pool.Close()
	}
	p.replicas.close()
}
