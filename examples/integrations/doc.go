// Package integrations shows supapool working with the tools services
// put on top of a PostgreSQL pool. Each file is a test against the real
// test bed (PostgreSQL 15 with max_connections 60 behind a
// transaction-mode PgBouncer), written to be copied:
//
//   - sqlc_test.go: sqlc's generated Queries on the pool (sqlcdb.New(p))
//     and inside a transaction (New(p).WithTx(tx) with p.Begin).
//   - goose_test.go: a goose Provider with its Postgres session locker on
//     p.DirectDB(), migrations from an embed.FS.
//   - migrate_test.go: golang-migrate's pgx/v5 driver on p.DirectDB() with
//     an iofs source; it holds one direct connection until m.Close.
//   - pgxlisten_test.go: jackc/pgxlisten on a direct connection taken from
//     p.Acquire and hijacked, and raw WaitForNotification on an acquired
//     connection. p.Listener() is the better choice for most services.
//   - otel_test.go: OpenTelemetry spans from otelpgx set in the
//     ConfigurePooled and ConfigureDirect hooks; routing still applies.
//
// Package sqlcdb holds code in the shape sqlc generates for pgx/v5.
//
// Run them with:
//
//	go test -race ./examples/integrations/...
package integrations
