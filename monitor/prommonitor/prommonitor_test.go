package prommonitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
	"github.com/supapool/supapool/monitor/prommonitor"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// expected renders the metrics a snapshot should produce, written out
// independently of the collector.
func expected(s monitor.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP pg_stat_activity_count number of connections in this state\n# TYPE pg_stat_activity_count gauge\n")
	for _, g := range s.Groups {
		fmt.Fprintf(&b, "pg_stat_activity_count{application_name=%q,datname=%q,state=%q,usename=%q} %d\n", g.Application, g.Database, g.State, g.User, g.Count)
	}
	fmt.Fprintf(&b, "# HELP pg_stat_activity_max_tx_duration max duration in seconds any active transaction has been running\n# TYPE pg_stat_activity_max_tx_duration gauge\n")
	for _, g := range s.Groups {
		fmt.Fprintf(&b, "pg_stat_activity_max_tx_duration{application_name=%q,datname=%q,state=%q,usename=%q} %v\n", g.Application, g.Database, g.State, g.User, g.LongestXact.Seconds())
	}
	fmt.Fprintf(&b, "# HELP supapool_connections client backends on the server, hidden ones and the monitor's own included\n# TYPE supapool_connections gauge\nsupapool_connections %d\n", s.Total)
	fmt.Fprintf(&b, "# HELP supapool_max_connections the server's max_connections\n# TYPE supapool_max_connections gauge\nsupapool_max_connections %d\n", s.MaxConnections)
	fmt.Fprintf(&b, "# HELP supapool_connection_level connection level after hysteresis: 0 green, 1 yellow, 2 red\n# TYPE supapool_connection_level gauge\nsupapool_connection_level %d\n", int(s.Level))
	fmt.Fprintf(&b, "# HELP supapool_app_connections client backends of the app, its lanes and instances folded in\n# TYPE supapool_app_connections gauge\n")
	for _, a := range s.Apps {
		fmt.Fprintf(&b, "supapool_app_connections{application_name=%q} %d\n", a.Application, a.Total)
	}
	fmt.Fprintf(&b, "# HELP supapool_app_idle_in_transaction_max_seconds longest time one of the app's sessions has sat idle inside a transaction\n# TYPE supapool_app_idle_in_transaction_max_seconds gauge\n")
	for _, a := range s.Apps {
		fmt.Fprintf(&b, "supapool_app_idle_in_transaction_max_seconds{application_name=%q} %v\n", a.Application, a.LongestIdleInTx.Seconds())
	}
	fmt.Fprintf(&b, "# HELP supapool_budget_connections connections the budget plan allows the app, all instances together\n# TYPE supapool_budget_connections gauge\n")
	for _, a := range s.Apps {
		if a.Planned {
			fmt.Fprintf(&b, "supapool_budget_connections{application_name=%q} %d\n", a.Application, a.Budget)
		}
	}
	fmt.Fprintf(&b, "# HELP supapool_budget_used_connections connections a planned app holds\n# TYPE supapool_budget_used_connections gauge\n")
	for _, a := range s.Apps {
		if a.Planned {
			fmt.Fprintf(&b, "supapool_budget_used_connections{application_name=%q} %d\n", a.Application, a.Total)
		}
	}
	fmt.Fprintf(&b, "# HELP supapool_budget_over 1 when the app holds more connections than its budget\n# TYPE supapool_budget_over gauge\n")
	for _, a := range s.Apps {
		if a.Planned {
			over := 0
			if a.Over {
				over = 1
			}
			fmt.Fprintf(&b, "supapool_budget_over{application_name=%q} %d\n", a.Application, over)
		}
	}
	fmt.Fprintf(&b, "# HELP supapool_monitor_up 1 when the latest poll succeeded\n# TYPE supapool_monitor_up gauge\nsupapool_monitor_up 1\n")
	fmt.Fprintf(&b, "# HELP supapool_monitor_failed_polls_total polls that failed\n# TYPE supapool_monitor_failed_polls_total counter\nsupapool_monitor_failed_polls_total %d\n", s.Failed)
	return b.String()
}

func TestCollectorAndHandlerMatchSnapshot(t *testing.T) {
	bed := testbed.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	cfg, err := pgx.ParseConfig(bed.DirectURL)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = "prom-app"
	for range 3 {
		c, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		defer c.Close(context.Background())
	}
	plan, err := budget.Plan(budget.Spec{Limit: 60, Apps: []budget.App{{Name: "prom-app", Instances: 1, Max: 2}}})
	require.NoError(t, err)

	m, err := monitor.New(monitor.Config{URL: bed.AdminURL, Budget: plan, Timeout: 10 * time.Second})
	require.NoError(t, err)
	defer m.Close()
	s, err := m.Poll(ctx)
	require.NoError(t, err)
	a, _ := s.App("prom-app")
	require.True(t, a.Over, "the test wants an over-budget app: %+v", a)

	c := prommonitor.New(m)
	names := []string{"pg_stat_activity_count", "pg_stat_activity_max_tx_duration", "supapool_connections",
		"supapool_max_connections", "supapool_connection_level", "supapool_app_connections",
		"supapool_app_idle_in_transaction_max_seconds", "supapool_budget_connections",
		"supapool_budget_used_connections", "supapool_budget_over", "supapool_monitor_up", "supapool_monitor_failed_polls_total"}
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(expected(s)), names...))

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	// postgres_exporter's name breaks one lint rule; dashboards need it.
	for _, p := range problems {
		assert.Equal(t, "pg_stat_activity_count", p.Metric, "%+v", p)
	}

	// The JSON handler serves the same snapshot.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/connections", nil))
	var got monitor.Snapshot
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.True(t, s.Time.Equal(got.Time))
	got.Time = s.Time
	assert.Equal(t, s, got)
	for _, g := range s.Groups {
		if g.Application == "prom-app" {
			assert.Equal(t, 3, g.Count)
		}
	}
}

// staleMonitor returns a monitor whose only poll failed: nothing listens
// on port 1.
func staleMonitor(t *testing.T) *monitor.Monitor {
	t.Helper()
	m, err := monitor.New(monitor.Config{URL: "postgres://nobody@127.0.0.1:1/db?connect_timeout=1"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	_, err = m.Poll(context.Background())
	require.Error(t, err)
	return m
}

func TestStaleSnapshotExportsOnlyMonitorHealth(t *testing.T) {
	c := prommonitor.New(staleMonitor(t))
	assert.Equal(t, 4, testutil.CollectAndCount(c))
	assert.Zero(t, testutil.CollectAndCount(c, "pg_stat_activity_count", "supapool_connection_level"))
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`# HELP supapool_monitor_up 1 when the latest poll succeeded
# TYPE supapool_monitor_up gauge
supapool_monitor_up 0
# HELP supapool_monitor_failed_polls_total polls that failed
# TYPE supapool_monitor_failed_polls_total counter
supapool_monitor_failed_polls_total 1
`), "supapool_monitor_up", "supapool_monitor_failed_polls_total"))
}
