package monitor_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
)

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func TestDashboardServesPageSnapshotAndHistory(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	const app = "dash-history"
	open(t, bed.DirectURL, app, 3)

	m := newMonitor(t, monitor.Config{URL: bed.AdminURL})
	before := time.Now().Add(-time.Minute)
	for range 3 {
		_, err := m.Poll(ctx)
		require.NoError(t, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/dashboard/", m.Dashboard())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	code, h, page := get(t, srv.URL+"/debug/dashboard/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, h.Get("Content-Type"), "text/html")
	assert.Contains(t, string(page), "snapshot.json")
	assert.NotContains(t, string(page), "innerHTML", "data must be written with textContent")
	for _, ref := range []string{`src="http`, `href="http`, "import "} {
		assert.NotContains(t, string(page), ref, "nothing fetched from elsewhere")
	}

	code, _, body := get(t, srv.URL+"/debug/dashboard/snapshot.json")
	require.Equal(t, http.StatusOK, code)
	var s monitor.Snapshot
	require.NoError(t, json.Unmarshal(body, &s))
	a, ok := s.App(app)
	require.True(t, ok)
	assert.Equal(t, 3, a.Total)

	var hist struct {
		monitor.History
		Interval float64 `json:"interval_seconds"`
	}
	code, _, body = get(t, srv.URL+"/debug/dashboard/history.json")
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.NoError(t, json.Unmarshal(body, &hist))
	require.Len(t, hist.Points, 3)
	assert.Equal(t, 3, hist.Points[2].Apps[app])
	assert.Equal(t, s.Total, hist.Points[2].Total)
	assert.InDelta(t, 0.05, hist.Interval, 1e-9)
	assert.False(t, hist.Since.IsZero())

	// since: RFC 3339 and unix seconds; the future gives nothing.
	for _, since := range []string{before.Format(time.RFC3339), strconv.FormatInt(before.Unix(), 10)} {
		code, _, body = get(t, srv.URL+"/debug/dashboard/history.json?since="+since)
		require.Equal(t, http.StatusOK, code, "%s", body)
		require.NoError(t, json.Unmarshal(body, &hist))
		assert.Len(t, hist.Points, 3, since)
	}
	code, _, body = get(t, srv.URL+"/debug/dashboard/history.json?since="+strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal(body, &hist))
	assert.Empty(t, hist.Points)

	code, _, body = get(t, srv.URL+"/debug/dashboard/history.json?since=yesterday")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, string(body), "monitor: since must be")

	// Without the slash, a redirect keeps the page's relative URLs right.
	code, _, page = get(t, srv.URL+"/debug/dashboard")
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, strings.Contains(string(page), "<svg"))
}

func TestQueryTextsOffByDefault(t *testing.T) {
	t.Parallel()
	bed := testbed.Start(t)
	ctx := ctxT(t)
	const app = "dash-query"
	c := open(t, bed.DirectURL, app, 1)[0]
	_, err := c.Exec(ctx, "begin")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "select 'secret-literal-0123456789' as x")
	require.NoError(t, err)
	watch := open(t, bed.AdminURL, "dash-query-watch", 1)[0]
	settle(t, watch, app, "idle in transaction", 1)

	off := newMonitor(t, monitor.Config{URL: bed.AdminURL})
	s, err := off.Poll(ctx)
	require.NoError(t, err)
	g := appGroups(s, app)["idle in transaction"]
	assert.Empty(t, g.Query, "query texts are off by default")
	b, _ := json.Marshal(s)
	assert.NotContains(t, string(b), "secret-literal")

	on := newMonitor(t, monitor.Config{URL: bed.AdminURL, QueryTexts: 16})
	s, err = on.Poll(ctx)
	require.NoError(t, err)
	g = appGroups(s, app)["idle in transaction"]
	assert.Equal(t, "select 'secret-l", g.Query, "cut to 16 characters on the server")

	_, err = monitor.New(monitor.Config{URL: bed.AdminURL, QueryTexts: -1})
	assert.ErrorContains(t, err, "query texts")
}
