package pool

import "github.com/jackc/pgx/v5/pgxpool"

// PgxPool returns the pgxpool.Pool behind route r, for libraries that take
// one: River (riverpgxv5.New), otelpgx.RecordStats, pgxlisten and the
// like. It is the route's own pool, not a copy: closing it closes the
// route, so leave that to Pool.Close.
//
// What goes through it keeps what the route's pgxpool has: the route's
// cap (MaxConns or MaxDirectConns, shared with the Pool's own calls),
// application_name, the pooled route's exec mode, the ConfigurePooled or
// ConfigureDirect hooks, and the retirement of connections that hold
// statement descriptions from before a schema change the Pool's own calls
// have run into. The cap holds for connections taken out with Hijack too,
// as River's listener and pgxlisten do: such a connection keeps its place
// under the cap until its new owner closes it, so with h of them the
// route serves everyone else with cap-h connections. A connect pgxpool
// starts while every place is taken waits for one; an idle connection, or
// the next one a Pool call gives back, is closed to make room. If its
// connect timeout (connect_timeout, 10s by default) ends first, pgxpool's
// Acquire fails with a SlotsTakenError inside pgconn's connect error; the
// Pool's own callers wait on, within AcquireTimeout. Close a hijacked
// connection when done with it: until then its place stays taken.
//
// What it gives up is the Pool's own logic: no routing (everything runs on
// route r) and no refusal of session statements on the pooled route; no
// wait in the route's gate, so a full server fails pgxpool's Acquire with
// SQLSTATE 53300 (too many connections) instead of waiting for a
// connection this route holds; no retry of a statement that failed on a
// stale description (nor the retirement it would start); and none of the
// Pool's own counts in Stat (routed, retried, refused).
//
// It fails with ErrClosed once the Pool is closed, and with
// ErrNoDirectRoute for Direct when the Pool has no direct route.
func (p *Pool) PgxPool(r Route) (*pgxpool.Pool, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	rt, err := p.routeFor(r)
	if err != nil {
		return nil, err
	}
	return rt.pool, nil
}
