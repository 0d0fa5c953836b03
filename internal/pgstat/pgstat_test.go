package pgstat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/pgstat"
	"github.com/supapool/supapool/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

func connect(t *testing.T, ctx context.Context, url, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = app
	c, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// What the fragments rest on, asked of the real server.
func TestSettingsOnTheServer(t *testing.T) {
	bed := testbed.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := connect(t, ctx, bed.DirectURL, "pgstat-settings")
	var version int
	require.NoError(t, c.QueryRow(ctx, "select current_setting('server_version_num')::int").Scan(&version))

	var reservedSetting *string
	require.NoError(t, c.QueryRow(ctx, "select current_setting('reserved_connections', true)").Scan(&reservedSetting))
	if version < 160000 {
		// missing_ok: NULL, not '' and not an error.
		assert.Nil(t, reservedSetting, "PostgreSQL %d has no reserved_connections", version)
	} else {
		require.NotNil(t, reservedSetting)
	}

	for _, tc := range []struct {
		name, expr string
		want       int
	}{
		{"MaxConnections", pgstat.MaxConnections, 60},
		{"Reserved", pgstat.Reserved, 3}, // superuser_reserved_connections' default; reserved_connections' default is 0
		{"Usable", pgstat.Usable, 57},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got int
			require.NoError(t, c.QueryRow(ctx, "select "+tc.expr, pgx.QueryExecModeSimpleProtocol).Scan(&got))
			assert.Equal(t, tc.want, got)
		})
	}
}

// A role without pg_read_all_stats counts the same client backends as a
// superuser: the rows hidden from it are counted, not dropped, and the
// background processes it cannot see either stay out.
func TestHiddenRowsAreCounted(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{NoPooler: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Autovacuum workers connect to a database now and then, and one that
	// a role cannot see is counted as a client: stop them, so the two
	// roles' counts can be compared exactly.
	admin := connect(t, ctx, bed.AdminURL, "pgstat-admin")
	_, err := admin.Exec(ctx, "alter system set autovacuum = off")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "select pg_reload_conf()")
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { connect(t, ctx, bed.AdminURL, "pgstat-superuser") })
	}
	wg.Wait()
	app := connect(t, ctx, bed.DirectURL, "pgstat-app")

	var hidden, bgHidden int
	require.NoError(t, app.QueryRow(ctx, `select count(*) filter (where `+pgstat.Hidden+` and `+pgstat.ClientBackend+`),
		count(*) filter (where `+pgstat.Hidden+` and not `+pgstat.ClientBackend+`) from pg_stat_activity`).Scan(&hidden, &bgHidden))
	require.Equal(t, 5, hidden, "the app role cannot see the superuser's sessions (the admin's included)")
	t.Logf("background processes hidden from the app role and left out: %d", bgHidden)

	// Each role counts in one snapshot; the snapshots agree when nobody
	// connects or leaves between them.
	count := func(c *pgx.Conn) (clients, usable int) {
		require.NoError(t, c.QueryRow(ctx, pgstat.LoadQuery, pgx.QueryExecModeSimpleProtocol).Scan(&clients, &usable))
		return clients, usable
	}
	// The server's own view: every client backend, by type.
	var truth int
	require.NoError(t, admin.QueryRow(ctx, "select count(*) from pg_stat_activity where backend_type = 'client backend'").Scan(&truth))
	appClients, appUsable := count(app)
	adminClients, adminUsable := count(admin)
	assert.Equal(t, truth, adminClients, "a superuser sees every backend's type")
	assert.Equal(t, truth, appClients, "hidden rows counted, hidden background processes not")
	assert.Equal(t, 57, appUsable)
	assert.Equal(t, appUsable, adminUsable)
	assert.Equal(t, 4+2, appClients, "the 4 superuser sessions, the admin's and the app's")
}
