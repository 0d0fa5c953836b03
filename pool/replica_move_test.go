package pool_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// Reads move to the primary within about a second of the replica's lag
// crossing MaxReplicaLag: the lag check runs once a second in the
// background, so the move takes at most about one check interval plus a
// query. The test measures, and logs, the time from the crossing to the
// first read the primary served (pg_is_in_recovery false), and holds it
// to a generous liveness bound only.
//
// The crossing is known exactly: a marker transaction is replayed, replay
// is paused, and a second write makes the replica have WAL it has not
// replayed. From then on the lag the route measures is now() minus the
// marker's commit time (pg_last_xact_replay_timestamp), so it crosses
// MaxReplicaLag at that commit time + MaxReplicaLag. Bed, replica and test
// share one clock.
func TestReplicaMoveToPrimaryAfterLagCrossing(t *testing.T) {
	noLeaks(t)
	bed, rep, p := replicaBed(t)
	ctx := testCtx(t)
	maxLag := p.Config().MaxReplicaLag

	// Four readers; each records when it first got a read from the primary.
	var firstPrimary atomic.Int64 // unix nano
	var onRep, onPrimary, errs atomic.Int64
	var armed atomic.Bool // set once replay is paused: earlier primary reads do not count
	lctx, stop := context.WithCancel(ctx)
	var g errgroup.Group
	for range 4 {
		g.Go(func() error {
			for lctx.Err() == nil {
				in, err := onReplica(ctx, p)
				now := time.Now().UnixNano()
				switch {
				case err != nil:
					errs.Add(1)
					t.Logf("replica read: %v", err)
				case in:
					onRep.Add(1)
				default:
					onPrimary.Add(1)
					if armed.Load() {
						firstPrimary.CompareAndSwap(0, now)
					}
				}
			}
			return nil
		})
	}
	defer func() { stop(); _ = g.Wait() }()
	require.Eventually(t, func() bool { return onRep.Load() > 0 }, 30*time.Second, 10*time.Millisecond)
	checks0, reads0, since := p.Stat().Replicas[0].LagChecks, onRep.Load(), time.Now()

	primary, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer primary.Close(context.Background())
	admin, err := pgx.Connect(ctx, rep.AdminURL)
	require.NoError(t, err)
	defer admin.Close(context.Background())

	// The marker: committed, then replayed on the replica.
	_, err = primary.Exec(ctx, "create table move_marker (n int)")
	require.NoError(t, err)
	var lsn string
	require.NoError(t, primary.QueryRow(ctx, "insert into move_marker values (1) returning pg_current_wal_insert_lsn()::text").Scan(&lsn))
	require.Eventually(t, func() bool {
		var done bool
		return admin.QueryRow(ctx, "select pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&done) == nil && done
	}, 30*time.Second, 5*time.Millisecond, "the replica did not replay the marker")

	require.NoError(t, rep.PauseReplay(ctx))
	var replayed time.Time
	require.NoError(t, admin.QueryRow(ctx, "select pg_last_xact_replay_timestamp()").Scan(&replayed))
	crossing := replayed.Add(maxLag)
	armed.Store(true)
	if time.Now().After(crossing) {
		t.Skipf("the marker is already %s old at the pause (a slow machine); the crossing would have no known time", time.Since(replayed))
	}
	// Unreplayed WAL: from now on the route's lag is now() - replayed.
	_, err = primary.Exec(ctx, "insert into move_marker values (2)")
	require.NoError(t, err)

	require.Eventually(t, func() bool { return firstPrimary.Load() != 0 }, 30*time.Second, 5*time.Millisecond,
		"no read moved to the primary after the lag crossed MaxReplicaLag")
	moved := time.Unix(0, firstPrimary.Load())
	delay := moved.Sub(crossing)
	t.Logf("lag crossed MaxReplicaLag (%s) at marker commit + %s; first read on the primary %s after the crossing (the check runs every 1s)", maxLag, maxLag, delay.Round(time.Millisecond))
	assert.Less(t, delay, 10*time.Second, "liveness: reads took far too long to leave the lagging replica")
	st := p.Stat()
	// The lag check is off the calls' path: at most one a second, however
	// many reads ran meanwhile.
	checks, reads := st.Replicas[0].LagChecks-checks0, onRep.Load()-reads0
	t.Logf("%d lag queries for %d replica reads in %s", checks, reads, time.Since(since).Round(time.Millisecond))
	assert.LessOrEqual(t, checks, int64(time.Since(since)/time.Second)+2, "lag queries beyond one a second: the calls sent some")
	assert.False(t, st.Replicas[0].Usable)
	assert.Greater(t, st.Replicas[0].Lag, maxLag, "the replica was taken out of use while its lag was within MaxReplicaLag")
	assert.Positive(t, st.ReplicaFallbacks)

	require.NoError(t, rep.ResumeReplay(ctx))
	back := onRep.Load()
	require.Eventually(t, func() bool { return onRep.Load() > back+10 && p.Stat().Replicas[0].Usable }, 30*time.Second, 10*time.Millisecond,
		"reads did not return to the replica after it caught up")
	stop()
	_ = g.Wait()
	assert.Zero(t, errs.Load(), "caller-visible errors")
	t.Logf("reads: %d on the replica, %d on the primary", onRep.Load(), onPrimary.Load())
}
