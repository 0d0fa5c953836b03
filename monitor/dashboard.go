package monitor

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed dashboard.html
var dashboardPage []byte

// Dashboard serves a live page of the monitor's data, self-contained
// (HTML, CSS and JavaScript embedded, nothing fetched from elsewhere), and
// the JSON it reads:
//
//	<prefix>/              the page
//	<prefix>/snapshot.json the latest snapshot, as [Monitor.Handler]
//	<prefix>/history.json  [Monitor.History]; ?since= RFC 3339 or unix seconds
//
// Mount it under a prefix ending in a slash:
//
//	mux.Handle("/debug/dashboard/", m.Dashboard())
//
// It never polls and opens no listener: it serves what Run or Poll saw.
// It shows application names, users, databases and errors (and query
// texts with Config.QueryTexts), so put it behind the service's own
// authentication.
func (m *Monitor) Dashboard() http.Handler {
	snap := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "monitor: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch base := path.Base(r.URL.Path); {
		case base == "snapshot.json":
			snap.ServeHTTP(w, r)
		case base == "history.json":
			m.serveHistory(w, r)
		case strings.HasSuffix(r.URL.Path, "/") || base == "index.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			if r.Method == http.MethodGet {
				_, _ = w.Write(dashboardPage)
			}
		default:
			// The page reads its JSON by relative URLs, which need the
			// trailing slash.
			http.Redirect(w, r, r.URL.Path+"/", http.StatusFound)
		}
	})
}

// parseSince reads ?since=: RFC 3339 or unix seconds; empty means all.
func parseSince(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("monitor: since must be an RFC 3339 time (2006-01-02T15:04:05Z) or unix seconds, got %q", v)
}

func (m *Monitor) serveHistory(w http.ResponseWriter, r *http.Request) {
	since, err := parseSince(r.URL.Query().Get("since"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := m.History(since)
	body, err := json.Marshal(struct {
		History
		Interval float64 `json:"interval_seconds"`
	}{h, h.Interval.Seconds()})
	writeJSON(w, r, body, err)
}
