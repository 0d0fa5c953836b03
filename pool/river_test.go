package pool_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

type countArgs struct {
	N int `json:"n"`
}

func (countArgs) Kind() string { return "supapool_count" }

// countWorker counts the jobs it works and says when it has seen want.
type countWorker struct {
	river.WorkerDefaults[countArgs]
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (w *countWorker) Work(ctx context.Context, job *river.Job[countArgs]) error {
	if w.n.Add(1) == w.want {
		close(w.done)
	}
	return nil
}

const riverJobs = 50

// riverRun runs River's real client (riverpgxv5, with its LISTEN/NOTIFY
// listener) on the direct route's pgxpool with MaxDirectConns max: River's
// migrations, riverJobs jobs inserted in one p.Begin transaction, and
// every one of them worked. It returns the most backends of the app seen
// meanwhile.
func riverRun(t *testing.T, max int32, withoutSlots bool) (most int64) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	restore := func() {}
	if withoutSlots {
		restore = pool.WithoutHijackCap()
	}
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = max })
	restore()
	stop := sampleBackends(ctx, bed, testbed.Filter{AppName: p.Config().AppName})
	sampled := false
	defer func() {
		if !sampled {
			stop()
		}
	}()

	pp, err := p.PgxPool(pool.Direct)
	require.NoError(t, err)
	// On the direct route only: PgBouncer's server connections would take
	// the app's application_name and be counted.
	schema := fmt.Sprintf("river_%d", appSeq.Add(1))
	_, err = pp.Exec(ctx, "create schema "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	driver := riverpgxv5.New(pp)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: quiet})
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)

	worker := &countWorker{want: riverJobs, done: make(chan struct{})}
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	client, err := river.NewClient(driver, &river.Config{
		Schema:  schema,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers: workers,
		Logger:  quiet,
		// Polling this seldom, jobs worked within the test's wait came
		// by LISTEN/NOTIFY.
		FetchPollInterval: time.Minute,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	}()
	// River's listener hijacks a pool connection and LISTENs on it;
	// wait for it before inserting, so the jobs are announced by NOTIFY.
	require.Eventually(t, func() bool {
		n, err := bed.Count(ctx, testbed.Filter{AppName: p.Config().AppName, QueryPrefix: "LISTEN "})
		return err == nil && n == 1
	}, 10*time.Second, 10*time.Millisecond, "River's listener LISTENs on one backend")
	start := time.Now()

	tx, err := p.Begin(ctx)
	require.NoError(t, err)
	params := make([]river.InsertManyParams, riverJobs)
	for i := range params {
		params[i] = river.InsertManyParams{Args: countArgs{N: i}}
	}
	res, err := client.InsertManyTx(ctx, tx, params)
	require.NoError(t, err)
	require.Len(t, res, riverJobs)
	require.NoError(t, tx.Commit(ctx))

	select {
	case <-worker.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("River worked %d of %d jobs in 30s", worker.n.Load(), riverJobs)
	}
	took := time.Since(start)
	// River records completions in batches, after Work returns.
	var completed int
	require.Eventually(t, func() bool {
		err := pp.QueryRow(ctx, fmt.Sprintf("select count(*) from %s.river_job where kind = 'supapool_count' and state = 'completed'", pgx.Identifier{schema}.Sanitize())).Scan(&completed)
		return err == nil && completed == riverJobs
	}, 10*time.Second, 20*time.Millisecond, "River completes every job")

	most, samples := stop()
	sampled = true
	require.Positive(t, samples)
	t.Logf("MaxDirectConns %d, slots %v: %d jobs worked in %s, %d completed; backends at most %d in %d samples; pgxpool opened %d connections",
		max, !withoutSlots, worker.n.Load(), took.Round(time.Millisecond), completed, most, samples, pp.Stat().NewConnsCount())
	assert.Less(t, took, 30*time.Second)
	return most
}

// River's real client, LISTEN/NOTIFY listener included, works on the
// direct route's pgxpool within MaxDirectConns although its listener
// hijacks one of the route's connections.
func TestRiver(t *testing.T) {
	noLeaks(t)
	for _, max := range []int32{2, 4} {
		t.Run(fmt.Sprint("MaxDirectConns=", max), func(t *testing.T) {
			most := riverRun(t, max, false)
			assert.LessOrEqual(t, most, int64(max), "River's backends stay within MaxDirectConns")
		})
	}
}

// The same run without the slots exceeds the cap by the listener's
// hijacked connection: what TestRiver guards against.
func TestRiverWithoutSlots(t *testing.T) {
	noLeaks(t)
	most := riverRun(t, 2, true)
	assert.Greater(t, most, int64(2), "without the slots River's listener takes a backend above the cap")
}
