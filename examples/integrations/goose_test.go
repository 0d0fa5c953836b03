package integrations_test

import (
	"embed"
	"io/fs"
	"testing"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/pool"
)

//go:embed migrations/goose/*.sql
var gooseMigrations embed.FS

// gooseLockID is the advisory lock the session locker takes. Every
// instance of one service must use the same ID; two services migrating
// the same database with different tables should use different ones.
const gooseLockID = 4_202_611_001

// goose runs on p.DirectDB(): migrations need a session (the session
// locker holds pg_advisory_lock on one connection), so they go to the
// direct route, inside its cap and gate. Provider.Close closes only the
// handle it was given.
func TestGoose(t *testing.T) {
	p, _ := newPool(t, "integ-goose", nil)
	ctx := testCtx(t)
	exec(t, p, "DROP TABLE IF EXISTS integ_goose_notes", "DROP TABLE IF EXISTS integ_goose_db_version")

	migrations, err := fs.Sub(gooseMigrations, "migrations/goose")
	require.NoError(t, err)
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(gooseLockID))
	require.NoError(t, err)
	provider, err := goose.NewProvider(goose.DialectPostgres, p.DirectDB(), migrations,
		goose.WithSessionLocker(locker),
		goose.WithTableName("integ_goose_db_version"),
	)
	require.NoError(t, err)

	results, err := provider.Up(ctx)
	require.NoError(t, err)
	require.Len(t, results, 2)
	for _, r := range results {
		assert.NoError(t, r.Error, r.Source.Path)
	}
	version, err := provider.GetDBVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), version)
	pending, err := provider.HasPending(ctx)
	require.NoError(t, err)
	assert.False(t, pending)
	results, err = provider.Up(ctx)
	require.NoError(t, err)
	assert.Empty(t, results, "a second Up has nothing to do")

	// The session lock went with the connection it was taken on.
	tx, err := p.Begin(ctx)
	require.NoError(t, err)
	var free bool
	require.NoError(t, tx.QueryRow(ctx, "select pg_try_advisory_xact_lock($1)", int64(gooseLockID)).Scan(&free))
	require.NoError(t, tx.Rollback(ctx))
	assert.True(t, free, "goose released its advisory lock")

	require.NoError(t, provider.Close())
	assert.Error(t, provider.Ping(ctx), "Close closed goose's handle")

	// ... and only that one: the Pool and new DirectDB handles still work.
	db := p.DirectDB()
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "select count(*) from integ_goose_db_version where is_applied").Scan(&n))
	assert.Equal(t, 3, n, "version 0 (goose's own) and the two migrations")
	_, err = p.Exec(ctx, "insert into integ_goose_notes (body) values ('after Close')")
	require.NoError(t, err)
	var done bool
	require.NoError(t, p.QueryRow(ctx, "select done from integ_goose_notes").Scan(&done))
	assert.False(t, done)
	assert.Equal(t, int32(0), p.Stat().Direct.AcquiredConns, "goose gave its direct connection back")
}

// A Pool whose budget gives it no direct route refuses DirectDB's
// connections with pool.ErrNoDirectRoute, so migrations never run through
// the transaction pooler by mistake.
func TestGooseNoDirect(t *testing.T) {
	p, _ := newPool(t, "integ-goose-nodirect", func(c *pool.Config) { c.NoDirect = true })
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(gooseLockID + 1))
	require.NoError(t, err)
	migrations, err := fs.Sub(gooseMigrations, "migrations/goose")
	require.NoError(t, err)
	provider, err := goose.NewProvider(goose.DialectPostgres, p.DirectDB(), migrations,
		goose.WithSessionLocker(locker), goose.WithTableName("integ_goose_nodirect_version"))
	require.NoError(t, err)
	defer provider.Close()
	_, err = provider.Up(testCtx(t))
	assert.ErrorIs(t, err, pool.ErrNoDirectRoute)
}
