package prommonitor_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/supapool/supapool/monitor"
	"github.com/supapool/supapool/monitor/prommonitor"
)

// The alert rules and the Grafana board live beside package monitor, for
// operators to copy; they are tested here, where the metric names are.
const (
	rulesDir  = "../prometheus"
	boardFile = "../grafana/supapool.json"
)

type fixed monitor.Snapshot

func (f fixed) Snapshot() monitor.Snapshot { return monitor.Snapshot(f) }

// exported returns the metric names the monitor's collector describes.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	ch := make(chan *prometheus.Desc, 64)
	prommonitor.New(fixed{}).Describe(ch)
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		require.NotNil(t, m, "desc %s", d)
		names[m[1]] = true
	}
	require.Contains(t, names, "supapool_connection_level")
	return names
}

// metricRef finds the metric names in a PromQL expression: supapool's and
// postgres_exporter's prefixes, which no label, function or keyword uses.
var metricRef = regexp.MustCompile(`\b(?:supapool|pg)_[a-zA-Z0-9_]+`)

func checkExpr(t *testing.T, names map[string]bool, where, expr string) {
	t.Helper()
	refs := metricRef.FindAllString(expr, -1)
	assert.NotEmpty(t, refs, "%s: %q names no supapool metric", where, expr)
	for _, r := range refs {
		assert.True(t, names[r], "%s: %q names %s, which the collector does not export", where, expr, r)
	}
}

// promtool returns promtool's path, or skips (fails when
// SUPAPOOL_REQUIRE_TOOLS=1, as in CI).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("SUPAPOOL_REQUIRE_TOOLS") == "1" {
			t.Fatalf("promtool not found and SUPAPOOL_REQUIRE_TOOLS=1: install Debian package prometheus")
		}
		t.Skip("promtool not found: install Debian package prometheus (apt-get install prometheus) to check the alert rules")
	}
	return p
}

func TestAlertRulesCheckAndUnitTests(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = rulesDir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
		t.Logf("promtool %v:\n%s", args, out)
	}
}

func TestAlertRulesNameExportedMetrics(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile(filepath.Join(rulesDir, "alerts.yml"))
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	alerts := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			checkExpr(t, names, r.Alert, r.Expr)
		}
	}
	for _, want := range []string{"SupapoolConnectionsYellow", "SupapoolConnectionsRed", "SupapoolAppOverBudget", "SupapoolIdleInTransaction"} {
		assert.True(t, alerts[want], "alerts.yml has no %s", want)
	}
}

func TestGrafanaBoardNamesExportedMetrics(t *testing.T) {
	names := exported(t)
	b, err := os.ReadFile(boardFile)
	require.NoError(t, err)
	var board struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &board), "the board must be valid JSON")
	require.NotEmpty(t, board.Panels)
	used := map[string]bool{}
	for _, p := range board.Panels {
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			checkExpr(t, names, "panel "+p.Title, tg.Expr)
			for _, r := range metricRef.FindAllString(tg.Expr, -1) {
				used[r] = true
			}
		}
	}
	for _, want := range []string{"supapool_connection_level", "supapool_app_connections", "supapool_connection_level_threshold", "supapool_budget_over"} {
		assert.True(t, used[want], "the board shows no %s", want)
	}
}
