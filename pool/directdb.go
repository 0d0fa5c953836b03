package pool

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"

	"github.com/jackc/pgx/v5/stdlib"
)

// DirectDB returns a new database/sql handle on the direct route, for
// migration tools such as goose or golang-migrate. Its connections are the
// direct route's: they count against MaxDirectConns, wait in the route's
// gate like every other call (so a full server means waiting, not 53300),
// and go back to the route as soon as database/sql is done with them (the
// handle keeps none idle). Each call returns a fresh handle, so a tool
// that closes the one it was given leaves the Pool and later DirectDB
// handles working.
//
// database/sql's Conn.Raw gives a value with pgx's stdlib.Conn methods
// (Conn() *pgx.Conn among them), not a *stdlib.Conn itself.
func (p *Pool) DirectDB() *sql.DB {
	if p.direct == nil {
		return sql.OpenDB(noDirectConnector{})
	}
	db := sql.OpenDB(&gatedConnector{r: p.direct, inner: stdlib.GetPoolConnector(p.direct.pool)})
	db.SetMaxIdleConns(0)
	return db
}

// gatedConnector opens database/sql connections through the route's gate.
type gatedConnector struct {
	r     *route
	inner driver.Connector
}

// Connect takes a place in the gate, waiting on a full server as acquire
// does, and hands the connection it got to pgx's stdlib connector, which
// takes it straight back from the route's idle connections.
func (gc *gatedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	for {
		c, err := gc.r.acquire(ctx, true)
		if err != nil {
			return nil, err
		}
		c.Release() // the gate place stays ours until the driver conn closes
		dc, err := gc.inner.Connect(ctx)
		if err != nil {
			gc.r.left()
			if kind, _ := classifyConnErr(err); kind == serverFull && ctx.Err() == nil {
				continue // another caller took the idle one and the server is full: wait again
			}
			return nil, wrapAcquireErr(gc.r, err)
		}
		return &gatedConn{stdConn: dc.(*stdlib.Conn), r: gc.r}, nil
	}
}

func (gc *gatedConnector) Driver() driver.Driver { return gc.inner.Driver() }

// gatedConn is pgx's database/sql connection that gives its gate place
// back, exactly once, when database/sql closes it.
type gatedConn struct {
	*stdConn // promotes every method of stdlib.Conn, Conn() among them
	r        *route
	once     sync.Once
}

// stdConn names stdlib.Conn so that embedding it does not make a field
// called Conn, which would hide its Conn method.
type stdConn = stdlib.Conn

func (c *gatedConn) Close() error {
	defer c.once.Do(c.r.left)
	return c.stdConn.Close()
}

// noDirectConnector backs DirectDB when the direct route is off, so that
// migrations fail with a clear error instead of going through a pooler.
type noDirectConnector struct{}

func (noDirectConnector) Connect(context.Context) (driver.Conn, error) { return nil, ErrNoDirectRoute }
func (noDirectConnector) Driver() driver.Driver                        { return noDirectDriver{} }

type noDirectDriver struct{}

func (noDirectDriver) Open(string) (driver.Conn, error) { return nil, ErrNoDirectRoute }
