package testbed_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
)

// The replica is a hot standby that streams the primary's writes; paused
// replay holds them back until resumed; a stopped replica refuses
// connections and catches up when started.
func TestReplica(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{NoPooler: true})
	rep := testbed.StartReplicaT(t, bed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	primary, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer primary.Close(context.Background())
	count := func() int {
		c, err := pgx.Connect(ctx, rep.DirectURL)
		require.NoError(t, err)
		defer c.Close(context.Background())
		var inRecovery bool
		require.NoError(t, c.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&inRecovery))
		require.True(t, inRecovery, "the replica is not in recovery")
		var n int
		if err := c.QueryRow(ctx, "select count(*) from replicated").Scan(&n); err != nil {
			return -1 // the table has not reached the replica yet
		}
		return n
	}
	eventually := func(want int) {
		t.Helper()
		require.Eventually(t, func() bool { return count() == want }, 30*time.Second, 20*time.Millisecond)
	}

	_, err = primary.Exec(ctx, "create table replicated (n int); insert into replicated values (1)")
	require.NoError(t, err)
	eventually(1)

	require.NoError(t, rep.PauseReplay(ctx))
	_, err = primary.Exec(ctx, "insert into replicated values (2)")
	require.NoError(t, err)
	require.Equal(t, 1, count(), "a write reached the replica while replay was paused")
	require.NoError(t, rep.ResumeReplay(ctx))
	eventually(2)

	rep.Stop()
	_, err = pgx.Connect(ctx, rep.DirectURL)
	require.Error(t, err, "a stopped replica accepted a connection")
	_, err = primary.Exec(ctx, "insert into replicated values (3)")
	require.NoError(t, err)
	require.NoError(t, rep.Start(ctx))
	eventually(3)

	c, err := pgx.Connect(ctx, rep.DirectURL)
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, "insert into replicated values (4)")
	require.ErrorContains(t, err, "25006", "a write on the replica")
}
