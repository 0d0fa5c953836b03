package testbed_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
)

// TestTrixieBouncer reaches PostgreSQL through the trixie PgBouncer, and
// shows max_prepared_statements in force before and after a reload: with
// 200 two clients may prepare the same name through a pool of one server
// connection; with 0 the name the first left on that connection makes the
// second's prepare collide (42P05).
func TestTrixieBouncer(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{PoolSize: 1})
	tb := testbed.TrixieBouncerT(t, bed, 200)
	ctx := ctxT(t)

	collides := func() bool {
		t.Helper()
		a, err := pgx.Connect(ctx, tb.URL)
		require.NoError(t, err)
		defer a.Close(ctx)
		b, err := pgx.Connect(ctx, tb.URL)
		require.NoError(t, err)
		defer b.Close(ctx)
		_, err = a.Prepare(ctx, "same_name", "select 1")
		require.NoError(t, err)
		_, err = b.Prepare(ctx, "same_name", "select 2")
		return err != nil
	}
	require.False(t, collides(), "with max_prepared_statements=200 each client's names are its own")
	require.NoError(t, tb.SetMaxPreparedStatements(ctx, 0))
	require.NoError(t, tb.Admin(ctx, "RECONNECT"))
	require.True(t, collides(), "with max_prepared_statements=0 names reach the server and collide")
}
