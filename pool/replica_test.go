package pool_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// replicaBed is a private bed (PostgreSQL and PgBouncer) with a streaming
// replica, and a Pool reading from it.
func replicaBed(t *testing.T) (*testbed.Bed, *testbed.Replica, *pool.Pool) {
	bed := testbed.NewT(t, testbed.Options{})
	rep := testbed.StartReplicaT(t, bed)
	p := newPool(t, bed, func(c *pool.Config) {
		c.ReplicaURLs = []string{rep.DirectURL}
		c.MaxReplicaLag = time.Second
	})
	return bed, rep, p
}

// onReplica reads pg_is_in_recovery through Replica: true when a replica
// served the read.
func onReplica(ctx context.Context, p *pool.Pool) (bool, error) {
	var in bool
	err := p.Replica().QueryRow(ctx, "select pg_is_in_recovery()").Scan(&in)
	return in, err
}

// Reads through Replica run on the replica and none reaches the primary;
// a write fails with ErrReplicaWrite wrapping the server's 25006.
func TestReplicaReadsGoToTheReplica(t *testing.T) {
	noLeaks(t)
	bed, rep, p := replicaBed(t)
	ctx := testCtx(t)
	app := p.Config().AppName
	for range 20 {
		in, err := onReplica(ctx, p)
		require.NoError(t, err)
		require.True(t, in, "a replica read was served by the primary")
	}
	rows, err := p.Replica().Query(ctx, "select pg_is_in_recovery() from generate_series(1, 3)")
	require.NoError(t, err)
	ins, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	require.NoError(t, err)
	assert.Equal(t, []bool{true, true, true}, ins)
	_, err = p.Replica().Exec(ctx, "select 1")
	require.NoError(t, err)

	n, err := bed.Count(ctx, testbed.Filter{AppName: app + "/replica"})
	require.NoError(t, err)
	assert.Zero(t, n, "the primary saw replica-lane backends")
	c, err := pgx.Connect(ctx, rep.AdminURL)
	require.NoError(t, err)
	defer c.Close(context.Background())
	var onRep int
	require.NoError(t, c.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name = $1", app+"/replica").Scan(&onRep))
	assert.Positive(t, onRep, "the replica saw no replica-lane backend")

	_, err = p.Replica().Exec(ctx, "create table replica_write (n int)")
	require.ErrorIs(t, err, pool.ErrReplicaWrite)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "25006", pgErr.Code)
	assert.Contains(t, err.Error(), "primary")
	st := p.Stat()
	require.Len(t, st.Replicas, 1)
	assert.True(t, st.Replicas[0].Usable)
	assert.Zero(t, st.ReplicaFallbacks)
}

// readLoop reads through Replica from 4 goroutines until stop, counting
// reads served by the replica and by the primary, and errors.
type readLoop struct {
	onRep, onPrimary, errs atomic.Int64
	last                   atomic.Bool // whether the latest read was on the replica
	stop                   context.CancelFunc
	g                      errgroup.Group
}

func startReads(ctx context.Context, t *testing.T, p *pool.Pool) *readLoop {
	l := &readLoop{}
	lctx, stop := context.WithCancel(ctx)
	l.stop = stop
	for range 4 {
		l.g.Go(func() error {
			for lctx.Err() == nil {
				in, err := onReplica(ctx, p)
				switch {
				case err != nil:
					l.errs.Add(1)
					t.Logf("replica read: %v", err)
				case in:
					l.onRep.Add(1)
				default:
					l.onPrimary.Add(1)
				}
				if err == nil {
					l.last.Store(in)
				}
			}
			return nil
		})
	}
	return l
}

func (l *readLoop) end() { l.stop(); _ = l.g.Wait() }

// Paused replay makes the replica lag: reads move to the primary, with no
// error, and come back once replay resumes.
func TestReplicaLagMovesReadsToThePrimary(t *testing.T) {
	noLeaks(t)
	bed, rep, p := replicaBed(t)
	ctx := testCtx(t)
	l := startReads(ctx, t, p)
	defer l.end()
	require.Eventually(t, func() bool { return l.onRep.Load() > 0 }, 30*time.Second, 10*time.Millisecond)

	require.NoError(t, rep.PauseReplay(ctx))
	primary, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer primary.Close(context.Background())
	_, err = primary.Exec(ctx, "create table lag_marker (n int)")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !l.last.Load() && p.Stat().ReplicaFallbacks > 0 }, 30*time.Second, 10*time.Millisecond,
		"reads stayed on a replica lagging past MaxReplicaLag")
	assert.False(t, p.Stat().Replicas[0].Usable)

	require.NoError(t, rep.ResumeReplay(ctx))
	require.Eventually(t, func() bool { return l.last.Load() && p.Stat().Replicas[0].Usable }, 30*time.Second, 10*time.Millisecond,
		"reads did not return to the replica after it caught up")
	l.end()
	assert.Zero(t, l.errs.Load(), "caller-visible errors")
	t.Logf("reads: %d on the replica, %d on the primary", l.onRep.Load(), l.onPrimary.Load())
}

// A replica stopped under load costs the callers no error: reads move to
// the primary, and come back once it is started again.
func TestReplicaStoppedUnderLoad(t *testing.T) {
	noLeaks(t)
	_, rep, p := replicaBed(t)
	ctx := testCtx(t)
	l := startReads(ctx, t, p)
	defer l.end()
	require.Eventually(t, func() bool { return l.onRep.Load() > 100 }, 30*time.Second, 10*time.Millisecond)

	rep.Stop()
	before := l.onPrimary.Load()
	require.Eventually(t, func() bool { return l.onPrimary.Load() > before+100 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, rep.Start(ctx))
	require.Eventually(t, func() bool { return l.last.Load() }, 60*time.Second, 10*time.Millisecond,
		"reads did not return to the restarted replica")
	l.end()
	assert.Zero(t, l.errs.Load(), "caller-visible errors")
	assert.Positive(t, p.Stat().Replicas[0].Failovers+p.Stat().ReplicaFallbacks)
}

// Read-your-writes: with replay delayed, a write followed by a read
// through Replica().After(CurrentLSN) sees the write every time, in 1,000
// tries; most reads still run on the replica.
func TestReplicaReadYourWrites(t *testing.T) {
	noLeaks(t)
	_, rep, p := replicaBed(t)
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, rep.AdminURL)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	_, err = admin.Exec(ctx, "alter system set recovery_min_apply_delay = '5ms'")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "select pg_reload_conf()")
	require.NoError(t, err)

	_, err = p.Exec(ctx, "create table ryw (n int primary key)")
	require.NoError(t, err)
	onRep := 0
	for i := range 1000 {
		// The bed runs with synchronous_commit off; this write waits for
		// its flush, as it would on a server with the default, so the
		// replica can have it within MaxReplicaLag.
		require.NoError(t, pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "set local synchronous_commit = on"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "insert into ryw values ($1)", i)
			return err
		}))
		lsn, err := p.CurrentLSN(ctx)
		require.NoError(t, err)
		var n int
		var in bool
		require.NoError(t, p.Replica().After(lsn).QueryRow(ctx, "select count(*), pg_is_in_recovery() from ryw where n = $1", i).Scan(&n, &in))
		require.Equal(t, 1, n, "try %d did not see its write", i)
		if in {
			onRep++
		}
	}
	t.Logf("1000 reads after writes: %d on the replica", onRep)
	assert.Positive(t, onRep, "every read went to the primary")
}
