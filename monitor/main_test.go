package monitor_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
)

func TestMain(m *testing.M) { testbed.Main(m) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open connects n times under application name app and closes the
// connections when the test ends.
func open(t testing.TB, url, app string, n int) []*pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = app
	conns := make([]*pgx.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			conns[i], errs[i] = pgx.ConnectConfig(ctxT(t), cfg)
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		c := conns[i]
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return conns
}

// newMonitor makes a monitor that the test closes.
func newMonitor(t testing.TB, cfg monitor.Config) *monitor.Monitor {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	if cfg.Timeout == 0 {
		// Under -race and parallel tests, connecting can take longer than
		// a 50ms interval.
		cfg.Timeout = 10 * time.Second
	}
	m, err := monitor.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// appGroups returns the snapshot's groups of one application, by state.
func appGroups(s monitor.Snapshot, app string) map[string]monitor.Group {
	out := map[string]monitor.Group{}
	for _, g := range s.Groups {
		if g.Application == app {
			out[g.State] = g
		}
	}
	return out
}

// settle waits until the server shows want backends of app in state,
// asked through conn, because a closed or busy client's backend changes a
// moment after the client returns.
func settle(t testing.TB, conn *pgx.Conn, app, state string, want int) {
	t.Helper()
	ctx := ctxT(t)
	require.Eventually(t, func() bool {
		var n int
		err := conn.QueryRow(ctx, `select count(*) from pg_stat_activity
			where backend_type = 'client backend' and application_name = $1 and ($2 = '' or state = $2)`, app, state).Scan(&n)
		return err == nil && n == want
	}, 20*time.Second, 10*time.Millisecond, "waiting for %d %q backends of %s", want, state, app)
}
