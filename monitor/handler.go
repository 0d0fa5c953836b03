package monitor

import (
	"encoding/json"
	"net/http"
)

// Handler serves the latest snapshot as JSON (see [Snapshot.MarshalJSON]).
// It never polls, so scraping it costs the database nothing; a stale
// snapshot is served as it is, with "stale": true and "error" set.
func (m *Monitor) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "monitor: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := json.MarshalIndent(m.Snapshot(), "", "  ")
		writeJSON(w, r, body, err)
	})
}

// writeJSON answers with body, uncached; HEAD gets the headers only. It
// is the one writer of the monitor's JSON responses.
func writeJSON(w http.ResponseWriter, r *http.Request, body []byte, err error) {
	if err != nil {
		http.Error(w, "monitor: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(append(body, '\n'))
}
