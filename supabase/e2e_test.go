package supabase

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// TestDerivedConfigConnects proves derivation end to end: SUPABASE_*
// variables become a pool.Config whose URLs, with only the addresses,
// role, database and sslmode changed for the local bed, reach a real
// PostgreSQL directly and through PgBouncer as the dedicated pooler.
func TestDerivedConfigConnects(t *testing.T) {
	bed := testbed.Start(t)
	if bed.PooledURL == "" {
		t.Skip("the test bed has no pooler")
	}
	direct, err := url.Parse(bed.DirectURL)
	require.NoError(t, err)
	pooled, err := url.Parse(bed.PooledURL)
	require.NoError(t, err)
	password, _ := direct.User.Password()

	env := map[string]string{
		EnvURL:            "https://" + testRef + ".supabase.co",
		EnvDBPassword:     password,
		EnvPoolerHost:     "db." + testRef + ".supabase.co", // the dedicated pooler
		pool.EnvAppName:   "supabase-e2e",
		pool.EnvMaxConns:  "2",
		pool.EnvTxRoute:   "direct",
		pool.EnvBudget:    "",
		pool.EnvPooledURL: "",
	}
	cfg, err := ConfigFromEnv(WithLookup(lookupMap(env)), WithProject(func(p *Project) {
		p.User, p.Database, p.SSLMode = direct.User.Username(), direct.Path[1:], "disable"
		p.DirectAddr, p.DedicatedAddr = direct.Host, pooled.Host
	}))
	require.NoError(t, err)
	assert.Equal(t, pool.TransactionPooler, cfg.PooledMode)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := pool.New(ctx, cfg)
	require.NoError(t, err)
	defer p.Close()

	var user, db string
	require.NoError(t, p.QueryRow(ctx, "select current_user, current_database()").Scan(&user, &db))
	assert.Equal(t, direct.User.Username(), user)
	assert.Equal(t, direct.Path[1:], db)

	for _, r := range []struct {
		route pool.Route
		port  string
	}{{pool.Direct, direct.Port()}, {pool.Pooled, pooled.Port()}} {
		conn, err := p.Acquire(ctx, r.route)
		require.NoError(t, err)
		var one int
		require.NoError(t, conn.QueryRow(ctx, "select 1").Scan(&one))
		_, port, err := net.SplitHostPort(conn.Conn().PgConn().Conn().RemoteAddr().String())
		require.NoError(t, err)
		assert.Equal(t, r.port, port, "route %v reaches its derived address", r.route)
		conn.Release()
	}
}
