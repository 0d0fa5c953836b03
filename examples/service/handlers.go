package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/supapool/supapool/monitor"
	"github.com/supapool/supapool/monitor/prommonitor"
	"github.com/supapool/supapool/pool"
)

// dbTimeout bounds each request's database work, so a request waiting for
// a connection on a full server fails in time for the client to retry,
// instead of piling up.
const dbTimeout = 5 * time.Second

// App holds what the handlers share.
type App struct {
	db     *pool.Pool
	log    *zap.Logger
	cache  *cache
	events *broker
}

func (a *App) routes(mon *monitor.Monitor) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		prommonitor.New(mon),
		newPoolCollector(a.db),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /items", a.listItems)
	mux.HandleFunc("POST /items", a.createItem)
	mux.HandleFunc("GET /items/{id}", a.getItem)
	mux.HandleFunc("POST /items/{id}/move", a.moveItem)
	mux.HandleFunc("GET /events", a.streamEvents)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// The snapshot names every application and user holding connections:
	// keep it off the public internet.
	mux.Handle("GET /debug/connections", mon.Handler())
	// The dashboard reads /debug/dashboard/snapshot.json and history.json;
	// like /debug/connections, put it behind the service's own auth.
	mux.Handle("GET /debug/dashboard/", mon.Dashboard())
	return a.logRequests(mux), nil
}

func (a *App) getItem(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	// While the listener is down, invalidations are being missed: serve
	// from the database until it is back and has flushed the cache.
	live := a.db.Listener().Stat().Connected
	it, hit, gen := a.cache.get(id)
	if hit && live {
		w.Header().Set("X-Cache", "hit")
		writeJSON(w, http.StatusOK, it)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
	defer cancel()
	it, err := getItem(ctx, a.db, id)
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	if live {
		a.cache.put(it, gen)
	}
	w.Header().Set("X-Cache", "miss")
	writeJSON(w, http.StatusOK, it)
}

func (a *App) listItems(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err1 := intParam(q.Get("after"), 0)
	limit, err2 := intParam(q.Get("limit"), 50)
	if err := errors.Join(err1, err2); err != nil || after < 0 || limit < 1 || limit > 500 {
		writeError(w, http.StatusBadRequest, "after must be an id, limit between 1 and 500")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
	defer cancel()
	items, err := listItems(ctx, a.db, after, int(limit))
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	resp := struct {
		Items []Item `json:"items"`
		// NextAfter is the after= value of the next page.
		NextAfter int64 `json:"next_after,omitempty"`
	}{Items: items}
	if len(items) == int(limit) {
		resp.NextAfter = items[len(items)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *App) createItem(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name     string `json:"name"`
		Quantity int32  `json:"quantity"`
	}
	if !decode(w, r, &req) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 200 || req.Quantity < 0 {
		writeError(w, http.StatusBadRequest, "name must have 1 to 200 bytes and quantity must not be negative")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
	defer cancel()
	it, err := createItem(ctx, a.db, req.Name, req.Quantity)
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	// The insert stands even if the notification fails: no instance can
	// have cached an item that did not exist, so only /events clients
	// miss it.
	if err := a.db.Notify(ctx, itemsChannel, change{Op: "created", IDs: []int64{it.ID}}.payload()); err != nil {
		a.log.Warn("notify after insert failed", zap.Int64("id", it.ID), zap.Error(err))
	}
	w.Header().Set("Location", fmt.Sprintf("/items/%d", it.ID))
	writeJSON(w, http.StatusCreated, it)
}

func (a *App) moveItem(w http.ResponseWriter, r *http.Request) {
	from, ok := pathID(w, r)
	if !ok {
		return
	}
	var req struct {
		To       int64 `json:"to"`
		Quantity int32 `json:"quantity"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.To < 1 || req.To == from || req.Quantity < 1 {
		writeError(w, http.StatusBadRequest, "to must be another item's id and quantity positive")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
	defer cancel()
	mv, items, err := moveItems(ctx, a.db, from, req.To, req.Quantity)
	if err != nil {
		a.dbError(w, r, err)
		return
	}
	// The notification reaches this instance's own cache a little later;
	// dropping the entries now lets the caller read its write at once.
	a.cache.invalidate(from, req.To)
	writeJSON(w, http.StatusOK, struct {
		Move Move `json:"move"`
		From Item `json:"from"`
		To   Item `json:"to"`
	}{mv, items[0], items[1]})
}

// onItemsNotification runs on the listener's goroutine for itemsChannel.
func (a *App) onItemsNotification(_ context.Context, n *pgconn.Notification) error {
	var c change
	if err := json.Unmarshal([]byte(n.Payload), &c); err != nil || len(c.IDs) == 0 {
		// Someone sent a payload this version does not understand: the
		// only safe reading is "anything may have changed".
		a.cache.flush()
	} else {
		a.cache.invalidate(c.IDs...)
	}
	a.events.publish(event{name: "items", data: n.Payload})
	return nil
}

// resync is Config.OnListenerReconnect.
func (a *App) resync(context.Context) {
	a.log.Warn("listener reconnected: notifications may have been lost, flushing the cache")
	a.cache.flush()
	// Tell clients to refetch: they missed the same notifications.
	a.events.publish(event{name: "resync", data: "{}"})
}

// streamEvents streams item changes as Server-Sent Events:
//
//	event: items
//	data: {"op":"moved","ids":[1,2]}
func (a *App) streamEvents(w http.ResponseWriter, r *http.Request) {
	ch, ok := a.events.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	defer a.events.unsubscribe(ch)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would hold events back otherwise
	w.WriteHeader(http.StatusOK)
	// The comment tells the client it is subscribed: an event sent from
	// now on reaches it.
	_, _ = io.WriteString(w, ": subscribed\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	// Proxies and load balancers drop connections that stay silent.
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case e, open := <-ch:
			if !open {
				return
			}
			err = writeEvent(w, e)
		case <-ping.C:
			_, err = io.WriteString(w, ": ping\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func writeEvent(w io.Writer, e event) error {
	var b strings.Builder
	b.WriteString("event: " + e.name + "\n")
	// A newline inside data would end the field, so each line gets its own.
	for line := range strings.SplitSeq(e.data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// healthz checks both routes, so a broken pooler (pooled) or a server that
// refuses new sessions (direct) each show up by name:
//
//	{"status":"ok","pooled":"ok","direct":"ok","listener":"connected"}
//
// The listener is reported but does not fail the check: it reconnects by
// itself, and restarting the instance would not bring it back sooner.
func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	routes := []pool.Route{pool.Pooled, pool.Direct}
	errs := make([]error, len(routes))
	var wg sync.WaitGroup
	for i, route := range routes {
		wg.Go(func() { errs[i] = a.db.PingRoute(ctx, route) })
	}
	wg.Wait()
	resp := map[string]string{"status": "ok", "listener": "disconnected"}
	if a.db.Listener().Stat().Connected {
		resp["listener"] = "connected"
	}
	status := http.StatusOK
	for i, route := range routes {
		resp[route.String()] = "ok"
		if errs[i] != nil {
			// The error stays in the log: it names hosts and users.
			a.log.Warn("health check failed", zap.Stringer("route", route), zap.Error(errs[i]))
			resp[route.String()] = "down"
			resp["status"] = "down"
			status = http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, resp)
}

// dbError answers a failed database call. Clients get a status they can
// act on and no internals; the log gets the error.
func (a *App) dbError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, pgx.ErrNoRows):
		writeError(w, http.StatusNotFound, "item not found")
	case errors.Is(err, errInsufficient):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, pool.ErrServerFull), errors.Is(err, context.DeadlineExceeded):
		// Overload, not a bug: ask the client to come back.
		a.log.Warn("database busy", zap.String("path", r.URL.Path), zap.Error(err))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "database busy, retry shortly")
	default:
		a.log.Error("database error", zap.String("path", r.URL.Path), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, "id must be a positive integer")
		return 0, false
	}
	return id, true
}

func intParam(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// decode reads a JSON body into v, answering 400 itself when it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON object")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// logRequests logs one line per request, when it ends.
func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := zap.InfoLevel
		if rec.status >= 500 {
			level = zap.WarnLevel
		}
		a.log.Log(level, "request",
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.String("route", r.Pattern),
			zap.Int("status", rec.status),
			zap.Int64("bytes", rec.bytes),
			zap.Duration("duration", time.Since(start)))
	})
}

// recorder notes what a handler wrote. Unwrap lets
// http.ResponseController reach the real writer's Flush for /events.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
