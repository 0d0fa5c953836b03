package integrations_test

import (
	"context"
	"embed"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

//go:embed migrations/migrate/*.sql
var migrateMigrations embed.FS

// golang-migrate runs on p.DirectDB() through its pgx/v5 driver. The
// driver takes one connection from the handle in WithInstance and keeps
// it, with its advisory lock taken during each run, until m.Close: that
// is one of the app's direct connections (MaxDirectConns) for as long as
// the *migrate.Migrate lives. Close it as soon as the migrations ran.
func TestMigrate(t *testing.T) {
	const app = "integ-migrate"
	// One direct connection, so that what migrate holds is plain to see,
	// and idle ones closed after half a second, so that the app's
	// backends are only the ones in use.
	p, bed := newPool(t, app, func(c *pool.Config) {
		c.MaxDirectConns = 1
		c.MaxConnIdleTime = 500 * time.Millisecond
		c.HealthCheckPeriod = 100 * time.Millisecond
	})
	ctx := testCtx(t)
	backends := func() int {
		t.Helper()
		n, err := bed.Count(ctx, testbed.Filter{AppName: app})
		require.NoError(t, err)
		return n
	}
	// Dropped on the direct route: a statement through PgBouncer would
	// leave a server connection named after the app, which the counts
	// below would see.
	tx, err := p.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "DROP TABLE IF EXISTS integ_migrate_items, integ_migrate_schema_migrations")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	src, err := iofs.New(migrateMigrations, "migrations/migrate")
	require.NoError(t, err)
	driver, err := migratepgx.WithInstance(p.DirectDB(), &migratepgx.Config{
		MigrationsTable: "integ_migrate_schema_migrations",
	})
	require.NoError(t, err)
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			m.Close()
		}
	}()

	require.NoError(t, m.Up())
	version, dirty, err := m.Version()
	require.NoError(t, err)
	assert.Equal(t, uint(2), version)
	assert.False(t, dirty)
	assert.ErrorIs(t, m.Up(), migrate.ErrNoChange)

	// Between runs, migrate still holds its connection: long after the
	// idle timeout the app has one backend, borrowed from the direct
	// route, and nothing else of the direct route can be had.
	time.Sleep(time.Second)
	assert.Equal(t, 1, backends(), "migrate's held connection")
	assert.Equal(t, int32(1), p.Stat().Direct.AcquiredConns)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = p.Begin(short)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "MaxDirectConns 1 is migrate's until Close")

	srcErr, dbErr := m.Close()
	closed = true
	require.NoError(t, srcErr)
	require.NoError(t, dbErr)
	assert.Equal(t, int32(0), p.Stat().Direct.AcquiredConns, "m.Close gave the connection back")
	assert.Eventually(t, func() bool { return backends() == 0 }, 10*time.Second, 100*time.Millisecond,
		"once given back, the connection is idle and closes like any other")

	// The Pool and later DirectDB handles work after migrate closed its.
	tx, err = p.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "insert into integ_migrate_items (name, price_cents) values ('tea', 350)")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	db := p.DirectDB()
	defer db.Close()
	var v int64
	var d bool
	require.NoError(t, db.QueryRowContext(ctx, "select version, dirty from integ_migrate_schema_migrations").Scan(&v, &d))
	assert.Equal(t, int64(2), v)
	assert.False(t, d)
	var price int64
	require.NoError(t, p.QueryRow(ctx, "select price_cents from integ_migrate_items where name = 'tea'").Scan(&price))
	assert.Equal(t, int64(350), price)
}
