package monitor_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
)

// chromiumPath returns the browser's path, or skips the test (fails it when
// SUPAPOOL_REQUIRE_TOOLS=1, as in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SUPAPOOL_REQUIRE_TOOLS") == "1" {
		t.Fatal("chromium not found and SUPAPOOL_REQUIRE_TOOLS=1: install Debian package chromium")
	}
	t.Skip("chromium not found: install Debian package chromium (apt-get install chromium) to test the dashboard in a browser")
	return ""
}

// artifactDir is where screenshots go: $SUPAPOOL_ARTIFACTS, or a fresh
// temporary directory that outlives the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SUPAPOOL_ARTIFACTS")
	if dir == "" {
		var err error
		dir, err = os.MkdirTemp("", "supapool-dashboard-")
		require.NoError(t, err)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// The level colours the page's CSS gives #level.
var levelRGB = map[string]string{"green": "rgb(46, 125, 50)", "yellow": "rgb(249, 168, 37)", "red": "rgb(198, 40, 40)"}

func TestDashboardInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	bed := testbed.NewT(t, testbed.Options{NoPooler: true})
	ctx := ctxT(t)

	const overApp, loadApp = "dash-over", "dash-load"
	plan, err := budget.Plan(budget.Spec{Limit: 60, Apps: []budget.App{{Name: overApp, Instances: 1, Max: 1}}})
	require.NoError(t, err)
	m, err := monitor.New(monitor.Config{URL: bed.AdminURL, Interval: 200 * time.Millisecond, Timeout: 2 * time.Second, Budget: plan})
	require.NoError(t, err)
	runCtx, stopRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = m.Run(runCtx) })
	t.Cleanup(func() { stopRun(); wg.Wait() })

	srv := httptest.NewServer(m.Dashboard()) // listens on 127.0.0.1
	t.Cleanup(srv.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	// The browser lives as long as the allocator's context: no deadline on
	// it (chromedp's rule); each step below has its own bound.
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)

	var mu sync.Mutex
	var consoleErrors []string
	err = chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				consoleErrors = append(consoleErrors, fmt.Sprintf("console.%s %s", e.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, "exception: "+e.ExceptionDetails.Text)
		}
	})
	require.NoError(t, err)

	// within runs a browser step with a liveness bound.
	within := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		_, err := chromedp.Run(c, a)
		require.NoError(t, err, what)
	}
	text := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, a)
		require.NoError(t, err, what)
		return v
	}
	levelIs := func(level string) {
		t.Helper()
		within("level "+level, chromedp.WaitVisible(chromedp.CSS(`#level[data-level="`+level+`"]`)))
		colour := text("level colour", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("level")).backgroundColor`))
		assert.Equal(t, levelRGB[level], colour, "level %s", level)
	}
	dir := artifactDir(t)
	shot := func(name string, w, h int64) {
		t.Helper()
		within("viewport "+name, chromedp.EmulateViewport(w, h))
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100) /* 100: PNG, below: JPEG */)
		require.NoError(t, err, "screenshot "+name)
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, png, 0o644))
		t.Logf("screenshot: %s (%d bytes)", p, len(png))
	}

	// An app over its budget of 1.
	open(t, bed.DirectURL, overApp, 3)
	within("load", chromedp.Navigate(srv.URL+"/"))
	levelIs("green")
	within("over budget flagged", chromedp.WaitVisible(chromedp.CSS(`tr.over[data-app="`+overApp+`"] td.flag`)))
	assert.Equal(t, "OVER BUDGET", text("flag text", chromedp.Text(chromedp.CSS(`tr.over[data-app="`+overApp+`"] td.flag`))))

	// The number shown is the snapshot's: wait until a poll and a redraw
	// agree (they run on separate clocks).
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		shown, err := chromedp.Run(c, chromedp.TextContent(chromedp.ID("total")))
		if err != nil {
			return false
		}
		max, err := chromedp.Run(c, chromedp.TextContent(chromedp.ID("max")))
		if err != nil {
			return false
		}
		s := m.Snapshot()
		return shown == fmt.Sprint(s.Total) && max == "60" && s.Level == monitor.Green
	}, 30*time.Second, 100*time.Millisecond, "page total matches the snapshot")

	// Past 45 of 60: red within a few polls.
	cfg, err := pgx.ParseConfig(bed.DirectURL)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = loadApp
	load := make([]*pgx.Conn, 0, 44)
	for range 44 {
		c, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		load = append(load, c)
	}
	levelIs("red")
	require.Greater(t, m.Snapshot().Total, 45)
	within("load app drawn", chromedp.WaitVisible(chromedp.CSS(`tr[data-app="`+loadApp+`"]`)))
	within("red threshold drawn", chromedp.WaitReady(chromedp.CSS(`#chart line[data-threshold="red"]`)))
	shot("dashboard-red-1280x800.png", 1280, 800)
	shot("dashboard-red-390.png", 390, 844)
	within("back to desktop", chromedp.EmulateViewport(1280, 800))

	// Load gone: back to green after hysteresis.
	for _, c := range load {
		require.NoError(t, c.Close(ctx))
	}
	levelIs("green")
	log := text("alert log", chromedp.TextContent(chromedp.ID("log")))
	// Red is left straight for green, or through yellow when a poll
	// falls between the two thresholds; both are logged.
	assert.Regexp(t, `level red → (green|yellow)`, log)
	assert.Contains(t, log, "→ green")
	assert.Contains(t, log, "→ red")
	shot("dashboard-green-1280x800.png", 1280, 800)

	// PostgreSQL stopped: the stale banner, with the error; gone when back.
	require.NoError(t, bed.StopPostgres(testbed.Fast))
	within("stale banner", chromedp.WaitVisible(chromedp.CSS(`#stale.on`)))
	banner := text("banner text", chromedp.TextContent(chromedp.ID("stale")))
	assert.Contains(t, banner, "STALE")
	assert.Contains(t, banner, "monitor:")
	shot("dashboard-stale-1280x800.png", 1280, 800)
	require.NoError(t, bed.StartPostgres(ctx))
	within("stale banner gone", chromedp.WaitNotPresent(chromedp.CSS(`#stale.on`)))

	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, consoleErrors, "the page logs no errors")
}
