// Package testbed starts real database servers for supapool's tests and for
// the quickstart's embedded default: a PostgreSQL cluster capped at
// Supabase Free's 60 connections, a PgBouncer in transaction mode in front
// of it, and optionally a second PgBouncer in session mode.
//
// Every claim supapool makes is proven against these servers, never against
// a mock. A test binary shares one bed through [Main] and [Start]:
//
//	func TestMain(m *testing.M) { testbed.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		bed := testbed.Start(t)
//		conn, err := pgx.Connect(ctx, bed.PooledURL)
//		...
//	}
//
// A test that breaks its servers (restarts, stops the pooler) or needs other
// limits takes a private bed with [NewT], closed when the test ends.
// Programs use [New] and [Bed.Close] directly.
//
// The cluster lives in a fresh temporary directory with free loopback ports,
// so several test binaries run at once without clashing. PostgreSQL refuses
// to run as root, so when the caller is root the servers run as the
// unprivileged OS user [OSUser], created on first use.
//
// Setting TESTBED_DIRECT_URL (and optionally TESTBED_POOLED_URL,
// TESTBED_SESSION_URL, TESTBED_ADMIN_URL) points the bed at servers that
// already run; fault controls that need to own the processes then return
// [ErrNoProcessControl], and the testing helpers skip. TESTBED_ADMIN_URL
// must log in as a PostgreSQL superuser (tests read every backend in
// pg_stat_activity, terminate them and create roles); it defaults to
// TESTBED_DIRECT_URL, which then must be a superuser too. URLs may come
// with or without a query: tests add parameters with [WithParams].
package testbed
