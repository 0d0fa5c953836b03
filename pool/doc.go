// Package pool is supapool's routing connection pool. It lets many
// services share one PostgreSQL (Supabase) server without running it out
// of connections:
//
//   - ordinary queries go through a transaction-mode pooler (Supavisor on
//     port 6543, PgBouncer) on the pooled route, with a pgx exec mode that
//     cannot collide with other clients' prepared statements;
//   - transactions, LISTEN/NOTIFY and other session work go to the direct
//     URL, where a session keeps its state;
//   - each route stays inside a per-instance cap, and when the server says
//     it is full (SQLSTATE 53300, or a pooler's client limit) a route
//     waits for a connection it already holds instead of failing the
//     caller;
//   - routes share a full server: each opens its connections one at a
//     time, and one that has gone quiet closes its idle connections when
//     the server has no slot left (Config.YieldAfter).
//
// A service's main.go needs only:
//
//	p, err := pool.NewFromEnv(ctx) // DATABASE_URL, DATABASE_POOLED_URL, ...
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer p.Close()
//	var name string
//	err = p.QueryRow(ctx, "select name from users where id = $1", id).Scan(&name)
//
// Query, QueryRow, Exec, SendBatch and CopyFrom have pgxpool.Pool's
// signatures and use the pooled route; a statement there that needs a
// session (LISTEN, SET, PREPARE, session advisory locks, ...) fails with
// [ErrSessionStatement] and a hint instead of breaking silently. Begin (and a
// batch that begins a transaction) goes to Config.TxRoute (Direct by
// default); every handle a pooled transaction hands out (savepoints, batches,
// Prepare) refuses what the pooled route refuses. Acquire(ctx, route) hands
// out a connection of either route for session work, and DirectDB gives
// database/sql for migration tools, through the direct route's cap and gate.
// [Pool.Heavy] is a lane for long queries beside them: the pooled route's
// URL through a pool of its own (MaxHeavyConns, default 1), each
// transaction under HeavyTimeout (default 60s), refusing what the pooled
// route refuses.
// route.go is the one place that decides where a call goes; classify.go is
// the SQL scanner behind the refusals.
//
// Nothing waits for ever: each connection attempt is bounded (10 s unless
// the URL sets connect_timeout), callers wait for a full server only within
// their context, and Close answers every waiting caller with [ErrClosed].
//
// [Pool.Listener] delivers notifications over one direct connection that
// reconnects by itself and reports what it could not deliver; [Pool.Notify]
// sends them.
//
// Configuration comes from a [Config] or the environment ([ConfigFromEnv]):
// DATABASE_URL (required), DATABASE_POOLED_URL, DATABASE_APP_NAME,
// DATABASE_MAX_CONNS, DATABASE_MAX_DIRECT_CONNS, DATABASE_TX_ROUTE,
// DATABASE_POOLED_MODE, SUPAPOOL_LOG_LEVEL and SUPAPOOL_BUDGET (a budget
// plan, see package budget, from which the caps are taken). NewFromEnv takes
// options (WithLogger), and [Pool.Check] verifies every route at start-up. Prisma-style URL parameters
// (pgbouncer=true, connection_limit, pool_timeout, schema) are understood
// and removed before pgx sees them.
package pool
