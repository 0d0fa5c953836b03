package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// TestService builds the binary once and runs it as a user would, against
// real servers, over real HTTP.
func TestService(t *testing.T) {
	bin := build(t)
	t.Run("endpoints and shutdown", func(t *testing.T) {
		t.Parallel()
		testEndpoints(t, bin)
	})
	t.Run("healthz names a stopped pooler", func(t *testing.T) {
		t.Parallel()
		testHealthzPoolerDown(t, bin)
	})
}

func testEndpoints(t *testing.T, bin string) {
	bed := testbed.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("service-e2e-%d", os.Getpid())
	svc := start(t, bin, bed, name)

	events := svc.subscribe(t, ctx)

	// Create and read.
	var a, b Item
	h := svc.do(t, "POST", "/items", `{"name":"widget","quantity":10}`, http.StatusCreated, &a)
	assert.Equal(t, fmt.Sprintf("/items/%d", a.ID), h.Get("Location"))
	assert.Equal(t, "widget", a.Name)
	assert.EqualValues(t, 10, a.Quantity)
	svc.do(t, "POST", "/items", `{"name":"gadget"}`, http.StatusCreated, &b)

	var got Item
	h = svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, &got)
	assert.Equal(t, "miss", h.Get("X-Cache"))
	assert.Equal(t, a, got)
	// The POSTs' notifications arrive asynchronously, and any of them
	// invalidates what a read in flight would cache (the cache's
	// generation guard): a read after they have arrived is a hit.
	require.Eventually(t, func() bool {
		var again Item
		h := svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, &again)
		return h.Get("X-Cache") == "hit" && again == a
	}, 5*time.Second, 10*time.Millisecond, "a second read was never served from the cache")

	var list struct {
		Items     []Item `json:"items"`
		NextAfter int64  `json:"next_after"`
	}
	svc.do(t, "GET", fmt.Sprintf("/items?after=%d", a.ID-1), "", http.StatusOK, &list)
	require.Len(t, list.Items, 2)
	assert.Equal(t, []int64{a.ID, b.ID}, []int64{list.Items[0].ID, list.Items[1].ID})
	svc.do(t, "GET", fmt.Sprintf("/items?after=%d&limit=1", a.ID-1), "", http.StatusOK, &list)
	assert.Equal(t, a.ID, list.NextAfter)

	// Requests that cannot succeed.
	svc.do(t, "GET", "/items/abc", "", http.StatusBadRequest, nil)
	svc.do(t, "GET", "/items/999999999", "", http.StatusNotFound, nil)
	svc.do(t, "POST", "/items", `{"name":""}`, http.StatusBadRequest, nil)
	svc.do(t, "POST", "/items", `{"name":"x","colour":"red"}`, http.StatusBadRequest, nil)

	// The transaction: both rows and the move row, or nothing.
	direct, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer direct.Close(context.Background())
	moves := func() (n int) {
		require.NoError(t, direct.QueryRow(ctx, "select count(*) from item_moves where from_id = $1", a.ID).Scan(&n))
		return n
	}
	var moved struct {
		Move Move `json:"move"`
		From Item `json:"from"`
		To   Item `json:"to"`
	}
	svc.do(t, "POST", itemPath(a.ID)+"/move", fmt.Sprintf(`{"to":%d,"quantity":4}`, b.ID), http.StatusOK, &moved)
	assert.EqualValues(t, 6, moved.From.Quantity)
	assert.EqualValues(t, 4, moved.To.Quantity)
	assert.Equal(t, Move{ID: moved.Move.ID, From: a.ID, To: b.ID, Quantity: 4, CreatedAt: moved.Move.CreatedAt}, moved.Move)
	svc.do(t, "POST", itemPath(a.ID)+"/move", fmt.Sprintf(`{"to":%d,"quantity":7}`, b.ID), http.StatusConflict, nil)
	svc.do(t, "POST", itemPath(a.ID)+"/move", `{"to":999999999,"quantity":1}`, http.StatusNotFound, nil)
	svc.do(t, "POST", itemPath(a.ID)+"/move", fmt.Sprintf(`{"to":%d,"quantity":0}`, b.ID), http.StatusBadRequest, nil)
	assert.Equal(t, 1, moves(), "refused moves left no row")

	// The writer reads its own write at once, although a was cached.
	h = svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, &got)
	assert.Equal(t, "miss", h.Get("X-Cache"))
	assert.EqualValues(t, 6, got.Quantity)

	// Server-Sent Events saw the creations and the committed move, and
	// nothing of the refused ones.
	assert.Equal(t, []change{
		{Op: "created", IDs: []int64{a.ID}},
		{Op: "created", IDs: []int64{b.ID}},
		{Op: "moved", IDs: []int64{a.ID, b.ID}},
	}, events.next(t, 3))

	// A change made behind the service's back stays invisible until a
	// NOTIFY says so: the cache is real, and NOTIFY is what clears it.
	svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, &got)
	_, err = direct.Exec(ctx, "update items set quantity = 100 where id = $1", a.ID)
	require.NoError(t, err)
	h = svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, &got)
	assert.Equal(t, "hit", h.Get("X-Cache"))
	assert.EqualValues(t, 6, got.Quantity, "served from the cache")
	_, err = direct.Exec(ctx, "select pg_notify('items', $1)", change{Op: "updated", IDs: []int64{a.ID}}.payload())
	require.NoError(t, err)
	svc.eventually(t, "the NOTIFY invalidates the cached item", func() bool {
		svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, &got)
		return got.Quantity == 100
	})
	assert.Equal(t, []change{{Op: "updated", IDs: []int64{a.ID}}}, events.next(t, 1))

	// A payload the service does not understand flushes everything.
	svc.do(t, "GET", itemPath(b.ID), "", http.StatusOK, nil)
	h = svc.do(t, "GET", itemPath(b.ID), "", http.StatusOK, nil)
	require.Equal(t, "hit", h.Get("X-Cache"))
	_, err = direct.Exec(ctx, "notify items, 'something changed'")
	require.NoError(t, err)
	svc.eventually(t, "an unknown payload flushes the cache", func() bool {
		return svc.do(t, "GET", itemPath(b.ID), "", http.StatusOK, nil).Get("X-Cache") == "miss"
	})

	// Notifications sent while the listener is away are lost, so when it
	// comes back the cache is flushed and clients are told to refetch.
	svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, nil)
	require.Equal(t, "hit", svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, nil).Get("X-Cache"))
	n, err := bed.Terminate(ctx, testbed.Filter{AppName: name, QueryPrefix: "listen"})
	require.NoError(t, err)
	require.Equal(t, 1, n, "one listener connection")
	assert.Equal(t, []change{{Op: "resync"}}, events.next(t, 1))
	svc.eventually(t, "the listener is back", func() bool {
		return strings.Contains(svc.text(t, "/metrics"), "supapool_pool_listener_connected 1")
	})
	assert.Equal(t, "miss", svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, nil).Get("X-Cache"))
	assert.Equal(t, "hit", svc.do(t, "GET", itemPath(a.ID), "", http.StatusOK, nil).Get("X-Cache"))

	// Health, metrics, connections.
	var health map[string]string
	svc.do(t, "GET", "/healthz", "", http.StatusOK, &health)
	assert.Equal(t, map[string]string{"status": "ok", "pooled": "ok", "direct": "ok", "listener": "connected"}, health)

	var metrics string
	svc.eventually(t, "the monitor's first poll shows in /metrics", func() bool {
		metrics = svc.text(t, "/metrics")
		return strings.Contains(metrics, "pg_stat_activity_count{")
	})
	for _, want := range []string{
		"supapool_monitor_up 1",
		"supapool_max_connections 60",
		"supapool_connection_level ",
		`supapool_pool_idle_conns{route="pooled"}`,
		`supapool_pool_acquired_conns{route="direct"}`,
		`supapool_pool_max_conns{route="pooled"} 4`,
		`supapool_pool_route_info{mode="transaction",route="pooled"} 1`,
		`supapool_pool_route_info{mode="direct",route="direct"} 1`,
		`supapool_pool_routed_calls_total{route="pooled"}`,
		"supapool_pool_refused_statements_total 0",
		"supapool_pool_listener_connected 1",
		"supapool_pool_listener_channels 1",
		"supapool_pool_listener_delivered_notifications_total",
		"supapool_pool_listener_reconnects_total 1",
		"go_goroutines",
	} {
		assert.Contains(t, metrics, want)
	}

	var snap monitor.Snapshot
	svc.eventually(t, "/debug/connections shows the app", func() bool {
		svc.do(t, "GET", "/debug/connections", "", http.StatusOK, &snap)
		for _, app := range snap.Apps {
			if app.Application == name && app.Total > 0 {
				return true
			}
		}
		return false
	})
	assert.False(t, snap.Stale)
	assert.Equal(t, bed.MaxConnections(), snap.MaxConnections)

	// SIGTERM: streams end, the process exits 0, and the server keeps no
	// connection of the app.
	code := svc.stop(t)
	assert.Equal(t, 0, code)
	events.closed(t)
	// PgBouncer keeps its server connections when its clients leave, and
	// they keep the application_name of the last client served. Those
	// belong to the pooler, not the app: anything else is a leak.
	var left []testbed.Backend
	svc.eventually(t, "the app's own backends are gone", func() bool {
		left, err = bed.Backends(ctx, testbed.Filter{AppName: name})
		require.NoError(t, err)
		return len(left) <= bed.PoolSize()
	})
	pooler := poolerPIDs(t, ctx, bed)
	for _, b := range left {
		assert.True(t, pooler[b.PID], "backend left after exit: %+v", b)
	}

	svc.checkLogs(t, bed, func(line map[string]any) bool {
		return line["msg"] == "request" && line["path"] == "/items" && line["method"] == "POST" && line["status"] == float64(http.StatusCreated)
	}, func(line map[string]any) bool { return line["msg"] == "stopped" })
}

func testHealthzPoolerDown(t *testing.T, bin string) {
	bed := testbed.NewT(t, testbed.Options{})
	name := fmt.Sprintf("service-e2e-down-%d", os.Getpid())
	svc := start(t, bin, bed, name)
	svc.do(t, "GET", "/healthz", "", http.StatusOK, nil)

	require.NoError(t, bed.StopPooler())
	var health map[string]string
	svc.do(t, "GET", "/healthz", "", http.StatusServiceUnavailable, &health)
	assert.Equal(t, "down", health["status"])
	assert.Equal(t, "down", health["pooled"])
	assert.Equal(t, "ok", health["direct"])

	assert.Equal(t, 0, svc.stop(t), "a broken pooler does not spoil the shutdown")
	// With the pooler gone, no backend at all may carry the app's name.
	svc.eventually(t, "no backend of the app is left", func() bool {
		n, err := bed.Count(context.Background(), testbed.Filter{AppName: name})
		require.NoError(t, err)
		return n == 0
	})
	svc.checkLogs(t, bed, func(line map[string]any) bool {
		return line["msg"] == "health check failed" && line["route"] == "pooled"
	})
}

// poolerPIDs returns the backends of the pooler's server connections, by
// holding a transaction open on every one of them at once: the pooler
// reuses idle server connections before it opens any, and never holds more
// than its pool size.
func poolerPIDs(t *testing.T, ctx context.Context, bed *testbed.Bed) map[int32]bool {
	cfg, err := pgx.ParseConfig(bed.PooledURL)
	require.NoError(t, err)
	// No prepared statement may outlive the transaction on the pooler.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.RuntimeParams["application_name"] = "service-e2e-probe"
	pids := map[int32]bool{}
	var txs []pgx.Tx
	for range bed.PoolSize() {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		txs = append(txs, tx)
		var pid int32
		require.NoError(t, tx.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid))
		pids[pid] = true
	}
	for _, tx := range txs {
		require.NoError(t, tx.Rollback(ctx))
	}
	return pids
}

func itemPath(id int64) string { return fmt.Sprintf("/items/%d", id) }

// build compiles the service, with the race detector when the test has it.
func build(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "service")
	args := []string{"build", "-o", bin}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

type service struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
	done   chan struct{} // closed when the process has exited

	mu   sync.Mutex
	logs []string
}

// start runs the binary with configuration in the environment only, and
// returns once it has logged the address it listens on.
func start(t *testing.T, bin string, bed *testbed.Bed, appName string, env ...string) *service {
	cmd := exec.Command(bin)
	cmd.Env = append(env,
		"DATABASE_URL="+bed.DirectURL,
		"DATABASE_POOLED_URL="+bed.PooledURL,
		"DATABASE_APP_NAME="+appName,
		"ADDR=127.0.0.1:0",
		"GORACE=halt_on_error=1",
	)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &service{cmd: cmd, client: &http.Client{Timeout: 10 * time.Second}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs = append(s.logs, line)
			s.mu.Unlock()
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
				addr <- l.Addr
			}
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			s.mu.Lock()
			t.Logf("service log:\n%s", strings.Join(s.logs, "\n"))
			s.mu.Unlock()
		}
	})
	select {
	case a := <-addr:
		s.base = "http://" + a
	case <-s.done:
		t.Fatalf("service exited before listening: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		t.Fatal("service did not log its address within 30s")
	}
	return s
}

// do sends a request, checks the status and decodes a JSON answer into out.
func (s *service) do(t *testing.T, method, path, body string, status int, out any) http.Header {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "%s %s: %s", method, path, raw)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s", method, path)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), "%s %s: %s", method, path, raw)
	}
	return resp.Header
}

func (s *service) text(t *testing.T, path string) string {
	t.Helper()
	resp, err := s.client.Get(s.base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	return string(raw)
}

func (s *service) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("within 10s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code.
func (s *service) stop(t *testing.T) int {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("service still running 20s after SIGTERM")
	}
	return s.cmd.ProcessState.ExitCode()
}

// checkLogs checks that every log line is JSON, that none holds the
// database password, and that each of wants matches some line.
func (s *service) checkLogs(t *testing.T, bed *testbed.Bed, wants ...func(map[string]any) bool) {
	t.Helper()
	u, err := url.Parse(bed.DirectURL)
	require.NoError(t, err)
	password, _ := u.User.Password()
	require.NotEmpty(t, password)
	s.mu.Lock()
	defer s.mu.Unlock()
	found := make([]bool, len(wants))
	for _, line := range s.logs {
		assert.NotContains(t, line, password, "a log line holds the password")
		var m map[string]any
		if !assert.NoError(t, json.Unmarshal([]byte(line), &m), "log line is not JSON: %s", line) {
			continue
		}
		for i, w := range wants {
			found[i] = found[i] || w(m)
		}
	}
	for i, f := range found {
		assert.True(t, f, "no log line matches want #%d", i)
	}
}

// sse is a client of /events.
type sse struct {
	events chan change
	done   chan struct{} // closed when the stream has ended
}

func (s *service) subscribe(t *testing.T, ctx context.Context) *sse {
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	c := &sse{events: make(chan change, 100), done: make(chan struct{})}
	r := bufio.NewReader(resp.Body)
	first, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, ": subscribed\n", first)
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		var name string
		var data bytes.Buffer
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch line = strings.TrimSuffix(line, "\n"); {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data.WriteString(strings.TrimPrefix(line, "data: "))
			case line == "" && name != "":
				var ch change
				switch {
				case name == "resync":
					c.events <- change{Op: "resync"}
				case name == "items" && json.Unmarshal(data.Bytes(), &ch) == nil:
					c.events <- ch
				}
				name = ""
				data.Reset()
			}
		}
	}()
	return c
}

// next returns the next n item events that parse as changes.
func (c *sse) next(t *testing.T, n int) []change {
	t.Helper()
	var got []change
	for len(got) < n {
		select {
		case ch := <-c.events:
			got = append(got, ch)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events within 10s: %v", len(got), n, got)
		}
	}
	return got
}

func (c *sse) closed(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream is still open after the service stopped")
	}
}
