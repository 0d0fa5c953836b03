// Package pooltest starts real database servers for a service's own tests,
// in the spirit of net/http/httptest: a PostgreSQL capped at 60
// connections (Supabase Free) with a transaction-mode PgBouncer in front,
// and optionally a session-mode PgBouncer.
//
// Three lines in a service's test:
//
//	srv := pooltest.Start(t)
//	p, err := pool.New(ctx, pool.Config{DirectURL: srv.DirectURL, PooledURL: srv.PooledURL})
//	...
//
// Start registers cleanup on t. Programs use [New] and [Servers.Close].
//
// # Backends
//
// SUPAPOOL_TEST_BACKEND selects where the servers come from:
//
//   - local (the default unless TESTBED_DIRECT_URL is set): Debian's postgresql and pgbouncer binaries,
//     started in a temporary directory on free loopback ports.
//   - external (the default when TESTBED_DIRECT_URL is set): servers that already run, named by TESTBED_DIRECT_URL,
//     TESTBED_POOLED_URL, TESTBED_SESSION_URL and TESTBED_ADMIN_URL (the
//     admin URL must be a PostgreSQL superuser). Fault controls then return
//     [ErrNoProcessControl].
//   - docker: not built yet; New returns [ErrBackend] saying so.
package pooltest
