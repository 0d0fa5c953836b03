// Package pool is supapool's routing connection pool: ordinary queries go
// through a transaction-mode pooler (Supavisor on port 6543, PgBouncer),
// session work (LISTEN, multi-statement transactions, SET, advisory locks,
// migrations) goes to the direct URL, and each route stays inside a
// per-instance connection cap.
//
// The routing pool is being built (issue 4); this package holds no API yet.
package pool
