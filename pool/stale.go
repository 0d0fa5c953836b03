package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgx caches what each statement returns, per connection. After a schema
// change (a column added to a table behind "select *"), the first run of
// such a statement on each connection fails: with the pooled route's
// CacheDescribe mode as "bind message has 2 result formats but query has 3
// columns" (08P01), with pgx's default mode as "cached plan must not change
// result type" (0A000). Both fail before the statement runs, so running it
// again is safe. supapool retries the statement once and retires every
// connection that still holds the old descriptions, instead of letting
// each of them fail one caller.

// isStale reports whether err says a cached statement description no
// longer matches the schema. Only the protocol step that failed before the
// statement ran counts (PostgreSQL names it in the error's routine field:
// PortalSetResultFormat, or exec_bind_message in other versions, for the
// result formats; RevalidateCachedQuery for the cached plan), never user
// code that raises the same SQLSTATE and text, so
// a statement that ran is never run again.
func isStale(err error) bool {
	if err == nil { // before the As target, which escapes: no allocation on success
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "08P01":
		return (pgErr.Routine == "PortalSetResultFormat" || pgErr.Routine == "exec_bind_message") &&
			strings.Contains(pgErr.Message, "result formats but query has")
	case "0A000":
		return pgErr.Routine == "RevalidateCachedQuery" && strings.Contains(pgErr.Message, "cached plan must not change result type")
	}
	return false
}

// generations tracks which connections predate the last schema change
// seen on a route.
type generations struct {
	current atomic.Int64
	conns   sync.Map // *pgx.Conn -> int64, the generation it connected in
	retries atomic.Int64
}

// staleSeen retires every connection open now.
func (g *generations) staleSeen() {
	g.current.Add(1)
	g.retries.Add(1)
}

// forget drops a connection that is gone. BeforeClose does it for those
// pgxpool closes; this is for those closed by whoever hijacked them.
func (g *generations) forget(c *pgx.Conn) { g.conns.Delete(c) }

// install chains the generation bookkeeping into a pgxpool config, keeping
// any hooks the user set.
func (g *generations) install(pc *pgxpool.Config) {
	afterConnect, beforeClose, prepare := pc.AfterConnect, pc.BeforeClose, pc.PrepareConn
	//lint:ignore SA1019 a user's deprecated hook is honoured, not dropped
	if prepare == nil && pc.BeforeAcquire != nil {
		before := pc.BeforeAcquire //lint:ignore SA1019 see above
		prepare = func(ctx context.Context, c *pgx.Conn) (bool, error) { return before(ctx, c), nil }
	}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		g.conns.Store(c, g.current.Load())
		if afterConnect != nil {
			return afterConnect(ctx, c)
		}
		return nil
	}
	pc.BeforeClose = func(c *pgx.Conn) {
		g.conns.Delete(c)
		if beforeClose != nil {
			beforeClose(c)
		}
	}
	pc.PrepareConn = func(ctx context.Context, c *pgx.Conn) (bool, error) {
		if cur := g.current.Load(); cur != 0 {
			if v, ok := g.conns.Load(c); ok && v.(int64) < cur {
				return false, nil // pgxpool closes it and tries another
			}
		}
		if prepare != nil {
			return prepare(ctx, c)
		}
		return true, nil
	}
}
