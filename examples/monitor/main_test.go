package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
)

func TestMain(m *testing.M) { testbed.Main(m) }

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func openApp(t *testing.T, url, app string, n int) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = app
	for range n {
		c, err := pgx.ConnectConfig(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(context.Background()) })
	}
}

func TestOnceJSON(t *testing.T) {
	bed := testbed.Start(t)
	openApp(t, bed.DirectURL, "dash-json", 2)
	var out bytes.Buffer
	code := run(context.Background(), []string{"-once", "-json"}, env(map[string]string{"DATABASE_URL": bed.AdminURL}), &out)
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1, "one snapshot, one line")
	var s monitor.Snapshot
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &s))
	assert.Equal(t, 60, s.MaxConnections)
	assert.False(t, s.Stale)
	a, ok := s.App("dash-json")
	require.True(t, ok)
	assert.Equal(t, 2, a.Total)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &raw))
	assert.Equal(t, "green", raw["level"])
	assert.Contains(t, raw, "poll_seconds")
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

func TestOnceTable(t *testing.T) {
	bed := testbed.Start(t)
	openApp(t, bed.DirectURL, "dash-table-with-a-very-long-application-name", 3)
	c, err := pgx.Connect(context.Background(), testbed.WithParams(bed.DirectURL, "application_name=dash-tx"))
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Exec(context.Background(), "begin; select 1")
	require.NoError(t, err)

	for _, tt := range []struct {
		name   string
		args   []string
		env    map[string]string
		colour bool
	}{
		{"not a terminal: no colour", []string{"-once"}, nil, false},
		{"forced colour", []string{"-once", "-color", "always"}, nil, true},
		{"NO_COLOR wins over auto", []string{"-once", "-color", "auto"}, map[string]string{"NO_COLOR": "1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"DATABASE_URL": bed.AdminURL}
			for k, v := range tt.env {
				vars[k] = v
			}
			var out bytes.Buffer
			require.Equal(t, 0, run(context.Background(), tt.args, env(vars), &out))
			text := out.String()
			assert.Equal(t, tt.colour, strings.Contains(text, "\x1b["), "colour escapes")
			plain := ansi.ReplaceAllString(text, "")
			for _, line := range strings.Split(plain, "\n") {
				assert.LessOrEqual(t, utf8.RuneCountInString(line), width, "line too wide: %q", line)
			}
			assert.Contains(t, plain, "supapool monitor")
			assert.Contains(t, plain, "[GREEN]")
			assert.Regexp(t, `connections \d+/60 \(3 reserved\)`, plain)
			assert.Regexp(t, `dash-table-with-a-very-~ +3 +0 +3 +0 +0`, plain)
			assert.Contains(t, plain, "LONGEST TRANSACTIONS")
			assert.Regexp(t, `dash-tx +supapool +app +idle in transaction`, plain)
			t.Log("\n" + plain)
		})
	}
}

func TestBudgetColumn(t *testing.T) {
	bed := testbed.Start(t)
	openApp(t, bed.DirectURL, "dash-over", 3)
	spec := t.TempDir() + "/spec.yaml"
	writeFile(t, spec, "limit: 60\napps:\n  - name: dash-over\n    instances: 1\n    max: 2\n    direct: 0\n")
	var out bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"-once", "-budget", spec}, env(map[string]string{"DATABASE_URL": bed.AdminURL}), &out))
	assert.Regexp(t, `dash-over +3 .* 3/2 OVER`, out.String())
}

func TestRefreshesUntilCancelled(t *testing.T) {
	bed := testbed.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	require.Equal(t, 0, run(ctx, []string{"-json", "-interval", "50ms"}, env(map[string]string{"DATABASE_URL": bed.AdminURL}), &out))
	assert.GreaterOrEqual(t, strings.Count(out.String(), "\n"), 2, "several snapshots")
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	stderr = &out
	defer func() { stderr = os.Stderr }()
	assert.Equal(t, 2, run(context.Background(), []string{"-once"}, env(nil), &out))
	assert.Contains(t, out.String(), "DATABASE_URL is not set")
	assert.Equal(t, 2, run(context.Background(), []string{"-color", "rainbow"}, env(map[string]string{"DATABASE_URL": "postgres://x/y"}), &out))
	// Nothing listens on port 1: -once reports the failure and exits 1.
	assert.Equal(t, 1, run(context.Background(), []string{"-once"}, env(map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db?connect_timeout=1"}), &out))
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "-", 250 * time.Millisecond: "250ms", 61 * time.Second: "1m1s",
		26*time.Hour + 5*time.Minute: "26h05m", 300 * time.Hour: "12d",
	} {
		assert.Equal(t, want, age(d))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// lockedBuffer is a bytes.Buffer safe for the run goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestHTTPServesDashboard(t *testing.T) {
	bed := testbed.Start(t)
	openApp(t, bed.DirectURL, "dash-http", 2)
	errs := &lockedBuffer{}
	old := stderr
	stderr = errs
	t.Cleanup(func() { stderr = old })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"-http", "127.0.0.1:0", "-interval", "100ms", "-color", "never"},
			env(map[string]string{"DATABASE_URL": bed.AdminURL}), io.Discard)
	}()
	addrRE := regexp.MustCompile(`dashboard on (http://127\.0\.0\.1:\d+/)`)
	var url string
	require.Eventually(t, func() bool {
		m := addrRE.FindStringSubmatch(errs.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 20*time.Second, 10*time.Millisecond, "stderr: %s", errs)

	resp, err := http.Get(url)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(page), "supapool connections")

	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "snapshot.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var s monitor.Snapshot
		if json.NewDecoder(resp.Body).Decode(&s) != nil {
			return false
		}
		a, ok := s.App("dash-http")
		return ok && a.Total == 2
	}, 20*time.Second, 50*time.Millisecond)

	cancel()
	assert.Equal(t, 0, <-done)
	_, err = http.Get(url)
	assert.Error(t, err, "the listener closes when run returns")
}
