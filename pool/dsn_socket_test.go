package pool_test

import (
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// socketURLs returns the bed's Unix-socket URL in both of libpq's forms:
// ?host=DIR, and the directory percent-encoded as the host.
func socketURLs(t *testing.T, bed *testbed.Bed) map[string]string {
	t.Helper()
	if bed.SocketURL == "" {
		t.Skip("the bed points at external servers and has no Unix socket")
	}
	u, err := url.Parse(bed.SocketURL)
	require.True(t, err == nil, "the bed's SocketURL does not parse") // not err: it quotes the URL
	q := u.Query()
	dir, port := q.Get("host"), q.Get("port")
	require.NotEmpty(t, dir)
	q.Del("host")
	q.Del("port")
	pw, _ := u.User.Password()
	hostForm := "postgres://" + url.UserPassword(u.User.Username(), pw).String() + "@" +
		net.JoinHostPort(strings.ReplaceAll(url.PathEscape(dir), "/", "%2F"), port) + u.Path
	return map[string]string{"host parameter": bed.SocketURL, "encoded host": hostForm}
}

func TestSocketURLs(t *testing.T) {
	bed := testbed.Start(t)
	for name, raw := range socketURLs(t, bed) {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			// pgx itself accepts the form: what pool must accept too.
			conn, err := pgx.Connect(ctx, raw)
			require.NoError(t, err, "pgx refuses this socket URL form")
			require.NoError(t, conn.Close(ctx))

			p, err := pool.New(ctx, pool.Config{AppName: appName(t), DirectURL: raw})
			require.NoError(t, err)
			defer p.Close()
			assert.Equal(t, pool.NoPooler, p.Stat().Pooled.Mode)

			var addr *string
			require.NoError(t, p.QueryRow(ctx, "SELECT inet_client_addr()::text").Scan(&addr))
			assert.Nil(t, addr, "pooled route: inet_client_addr is NULL only over a Unix socket")

			tx, err := p.Begin(ctx)
			require.NoError(t, err)
			require.NoError(t, tx.QueryRow(ctx, "SELECT inet_client_addr()::text").Scan(&addr))
			assert.Nil(t, addr, "direct route: inet_client_addr is NULL only over a Unix socket")
			require.NoError(t, tx.Rollback(ctx))
		})
	}
}
