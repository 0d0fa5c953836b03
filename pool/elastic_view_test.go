package pool_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/pgstat"
	"github.com/supapool/supapool/internal/testbed"
)

// A backend still logging in holds a slot of max_connections but has no
// row in pg_stat_activity until it has authenticated: elastic sharing's
// view (and yielding's count) cannot see instances that are still
// logging in, which is why a storm's first looks see only part of the
// crowd (README, Elastic sharing). A login is held at its SASL step by
// sending the startup message and never answering.
func TestViewMissesLoginsInProgress(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{NoPooler: true})
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, bed.AdminURL)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	clients := func() int {
		var n int
		require.NoError(t, admin.QueryRow(ctx, "select count(*) from pg_stat_activity where "+pgstat.ClientBackend).Scan(&n))
		return n
	}
	before := clients()

	u, err := url.Parse(bed.DirectURL)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	params := "user\x00" + u.User.Username() + "\x00database\x00" + u.Path[1:] + "\x00application_name\x00held-login\x00\x00"
	msg := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	msg = binary.BigEndian.AppendUint32(msg, 196608) // protocol 3.0
	_, err = conn.Write(append(msg, params...))
	require.NoError(t, err)
	head := make([]byte, 9)
	_, err = io.ReadFull(conn, head)
	require.NoError(t, err)
	require.Equal(t, byte('R'), head[0], "the server asks the held login to authenticate")
	require.Equal(t, uint32(10), binary.BigEndian.Uint32(head[5:9]), "AuthenticationSASL: the login waits for its password")

	require.Equal(t, before, clients(), "a login held at authentication has no pg_stat_activity row")

	// The control: the same login completed has one.
	done, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer done.Close(context.Background())
	require.Equal(t, before+1, clients())
}
