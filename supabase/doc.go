// Package supabase turns a Supabase project's settings into supapool's
// configuration, so nobody hand-assembles connection strings and gets the
// user name, port or mode wrong.
//
// # URLs
//
// A [Project] (ref, database password, and the shared pooler's host from
// the dashboard's Connect dialog) builds the four connection strings
// Supabase offers, with the password percent-encoded and sslmode=require:
//
//	p := supabase.Project{Ref: "abcdefghijklmnopqrst", Password: pw,
//		PoolerHost: "aws-1-us-east-2.pooler.supabase.com"}
//	p.DirectURL()            // postgres@db.REF.supabase.co:5432, IPv6 only without the IPv4 add-on
//	p.SessionPoolerURL()     // postgres.REF@POOLERHOST:5432, a session over IPv4
//	p.TransactionPoolerURL() // postgres.REF@POOLERHOST:6543, a server connection per transaction
//	p.DedicatedPoolerURL()   // postgres@db.REF.supabase.co:6543, PgBouncer on paid plans
//
// [ParseURL] reads any of them, Prisma's ?pgbouncer=true form included,
// back into a Project and its [Mode].
//
// # Environment
//
// [ConfigFromEnv] returns a pool.Config from DATABASE_URL and
// DATABASE_POOLED_URL, or derives whichever is unset from SUPABASE_URL,
// SUPABASE_DB_PASSWORD and SUPABASE_POOLER_HOST (SUPABASE_REGION guesses
// the host; SUPABASE_DIRECT_MODE=session replaces the IPv6-only direct
// host with the session pooler). Errors name the variable to fix and
// never hold a password; what it decided is logged to [WithLogger]'s
// logger.
//
//	cfg, err := supabase.ConfigFromEnv(supabase.WithLogger(logger))
//	...
//	p, err := pool.New(ctx, cfg)
//
// Read replicas are not derived. Each Supabase Read Replica has its own
// endpoints, shown in the dashboard's Connect panel under its Source
// dropdown (https://supabase.com/docs/guides/platform/read-replicas,
// "Dedicated endpoints"), but the docs give no host pattern to build them
// from a ref or region. The Management API's
// GET /v1/projects/{ref}/config/database/pooler lists each database with
// database_type READ_REPLICA, an identifier and a db_host, but that is an
// API call with an access token, not a documented format. So copy each
// replica's URL into DATABASE_REPLICA_URL (comma-separated), which
// ConfigFromEnv passes to pool.ConfigFromLookup as it is.
//
// On a network without IPv6, connections to the direct host fail with an
// error matching [ErrIPv6Only] that points to the session pooler; see
// [ExplainDialError] and [ConfigureDial].
//
// # Tiers
//
// [Tier] holds each compute size's max_connections and pooler client
// limit, with sources; [Tier.BudgetSpec] starts a budget.Spec from it, and
// [TierFromEnv] reads SUPABASE_TIER.
//
// # API client
//
// [NewClient] builds a supabase-go client from SUPABASE_URL and
// SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_ANON_KEY) that identifies itself
// as supapool in X-Client-Info and starts no token-refresh goroutine.
// Pool sizing is not the API client's business: Supabase's clients have no
// pool-size option and there is no connection-mode header; connections to
// Postgres are sized in the database client, here supapool's pool.
package supabase
