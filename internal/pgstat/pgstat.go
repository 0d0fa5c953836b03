// Package pgstat is the one definition of how supapool counts a server's
// connections: which pg_stat_activity rows hold a slot of max_connections,
// and how many slots an ordinary role may use. The pool (deciding whether a
// quiet route gives its connections back) and the monitor (reporting
// levels) build their queries from these fragments, so the two never
// disagree about how full a server is.
//
// The fragments are SQL text, meant to be concatenated into constant
// queries; each is parenthesised, so it composes with any operator.
package pgstat

// ClientBackend is a condition on a pg_stat_activity row: true for a
// backend that holds one of max_connections's slots, the slots an ordinary
// role's connection attempt is refused for when none is left.
//
// That is a row whose backend_type is 'client backend', or a hidden row
// with a database. A role without pg_read_all_stats (or pg_monitor) sees
// other roles' sessions with backend_type, state and most other columns
// NULL, but datid, usename and application_name filled in. Those sessions
// hold slots like any other, so dropping them would report a server that
// refuses connections as half empty; and a hidden background process that
// has no database (the checkpointer, the WAL writer, ...) is not a client
// and stays out. A background worker attached to a database (an
// autovacuum worker, pg_cron's) cannot be told from a hidden client, so it
// is counted too: the count errs high, the safe side for both the pool
// (which yields) and the monitor (which warns).
const ClientBackend = `(backend_type = 'client backend' or (backend_type is null and datid is not null))`

// Hidden is a condition on a pg_stat_activity row: true when the asking
// role may not see the row's details (see [ClientBackend]).
const Hidden = `(backend_type is null)`

// MaxConnections is the server's max_connections, an int.
const MaxConnections = `(current_setting('max_connections')::int)`

// Reserved is the slots an ordinary role can never use, an int:
// superuser_reserved_connections plus, on PostgreSQL 16 and later,
// reserved_connections (the slots kept for pg_use_reserved_connections).
//
// Before 16 there is no reserved_connections: current_setting with
// missing_ok returns NULL for it, which coalesce turns into 0. The nullif
// also maps an empty setting to 0, so the cast can never fail on a
// server's odd answer.
const Reserved = `(current_setting('superuser_reserved_connections')::int
 + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0))`

// Usable is the slots an ordinary role may use, an int: MaxConnections
// minus Reserved. When as many client backends as this exist, the next
// ordinary connection attempt is refused with "too many clients already"
// (or "remaining connection slots are reserved").
const Usable = `(` + MaxConnections + ` - ` + Reserved + `)`

// LoadQuery returns one row: the server's client backends (an int8,
// counted by [ClientBackend]) and its usable slots (an int4, [Usable]). It
// needs no prepared statement and reads no table, so it runs through a
// transaction-mode pooler with the simple protocol.
const LoadQuery = `select count(*) filter (where ` + ClientBackend + `), ` + Usable + `
from pg_stat_activity`

// Quiet is a condition on a pg_stat_activity row: true for a backend
// idle (not in a transaction) for more than a second, one its client has
// not used lately. A hidden row ([Hidden]) has no state and is never
// quiet.
const Quiet = `(state = 'idle' and state_change < now() - interval '1 second')`

// ClientsByApp returns one row per application_name holding client
// backends ([ClientBackend]): the name (an empty string for NULL), its
// backends (an int8), how many of those are hidden from the asking role
// ([Hidden], an int8), the server's usable slots ([Usable], an int4, the
// same on every row), and how many of its backends are quiet ([Quiet], an
// int8). A role without pg_read_all_stats still sees other roles'
// application_name, so hidden backends are grouped too. Like [LoadQuery]
// it needs no prepared statement.
const ClientsByApp = `select coalesce(application_name, ''), count(*), count(*) filter (where ` + Hidden + `), ` + Usable + `,
 count(*) filter (where ` + Quiet + `)
from pg_stat_activity where ` + ClientBackend + `
group by 1`
