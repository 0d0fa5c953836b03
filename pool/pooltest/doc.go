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
// SUPAPOOL_TEST_BACKEND selects where the servers come from; unset, the
// first that can run wins, in this order:
//
//   - external (when TESTBED_DIRECT_URL is set): servers that already run,
//     named by TESTBED_DIRECT_URL, TESTBED_POOLED_URL, TESTBED_SESSION_URL
//     and TESTBED_ADMIN_URL (the admin URL must be a PostgreSQL
//     superuser). Fault controls then return [ErrNoProcessControl].
//   - docker (when a Docker engine answers and the images are present or
//     can be pulled): containers started through testcontainers-go from
//     SUPAPOOL_TEST_POSTGRES_IMAGE (default postgres:15-bookworm, the
//     official image) and SUPAPOOL_TEST_PGBOUNCER_IMAGE (default
//     edoburu/pgbouncer:latest), on the host's network, so it needs a
//     Linux engine (Docker Desktop only with host networking on).
//     Testcontainers' reaper (Ryuk) is turned off unless
//     TESTCONTAINERS_RYUK_DISABLED is set; Close removes the containers,
//     and the next run removes those of a test binary that was killed.
//   - local: Debian's postgresql and pgbouncer binaries, started in a
//     temporary directory on free loopback ports.
//
// Fault controls work the same on docker and local: restart PostgreSQL
// (fast or immediate), stop and start the pooler, hang and resume either
// (docker pause, or SIGSTOP), terminate and count backends. Ports stay
// the same across restarts, so a pool under test recovers without being
// rebuilt.
package pooltest
