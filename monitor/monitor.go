package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Errors a caller may branch on.
var (
	// ErrRunning is returned by Run when the monitor is already running.
	ErrRunning = errors.New("monitor: already running")
	// ErrNoPoll is the Err of the snapshot returned before any poll has
	// succeeded.
	ErrNoPoll = errors.New("monitor: no successful poll yet")
	// ErrClosed is returned by a poll that Close cancelled. Such a poll
	// is not counted as failed: it says nothing about the server.
	ErrClosed = errors.New("monitor: closed")
)

// Monitor polls pg_stat_activity and keeps the latest [Snapshot]. Its
// methods are safe for concurrent use, from OnChange and OnAlert too.
//
// A monitor starts no goroutine of its own: polls run on the goroutine of
// Run or Poll, and so do the callbacks.
type Monitor struct {
	db       DB
	connCfg  *pgx.ConnConfig
	interval time.Duration
	timeout  time.Duration
	cfg      Config
	log      *zap.Logger
	sql      string // the poll's statement (pollSQL)

	// turn is held by the poll in progress, so two never run at once; the
	// monitor's own connection and the poll state below belong to its
	// holder. It is held across the poll's query, the one wait a poll
	// makes, which Timeout bounds and Close cancels; never across a user
	// callback or a log write: a poll queues those in pending and they run
	// after it gives the turn back.
	turn   chan struct{}
	conn   *pgx.Conn
	levels *hysteresis
	raised map[alertKey]bool

	running atomic.Bool
	skipped atomic.Uint64

	// mu guards the fields below. Long-running operations are not allowed
	// while mu is held: no I/O, no callback, no log write, no wait for the
	// turn.
	mu   sync.Mutex
	last Snapshot
	hist *history
	// cancel cancels the poll in progress with ErrClosed; nil between
	// polls.
	cancel context.CancelCauseFunc
	// closing counts Close calls in progress: a poll that gets the turn
	// meanwhile returns ErrClosed at once, so Close waits for one poll at
	// most.
	closing int
	// pending are the reports (log lines and callbacks) polls have made
	// and nobody has run yet, oldest first; reporting is set while a
	// goroutine runs them.
	pending   []func()
	reporting bool
}

// New checks cfg and returns a monitor. It does not connect: the first
// poll does.
func New(cfg Config) (*Monitor, error) {
	var errs []error
	switch {
	case cfg.DB == nil && cfg.URL == "":
		errs = append(errs, errors.New("monitor: config needs DB or URL"))
	case cfg.DB != nil && cfg.URL != "":
		errs = append(errs, errors.New("monitor: config has both DB and URL; set one"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("monitor: interval must not be negative, got %s", cfg.Interval))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("monitor: timeout must not be negative, got %s", cfg.Timeout))
	}
	if cfg.QueryTexts < 0 {
		errs = append(errs, fmt.Errorf("monitor: query texts must be 0 (off) or a number of characters, got %d", cfg.QueryTexts))
	}
	if err := cfg.Levels.validate(); err != nil {
		errs = append(errs, err)
	}
	m := &Monitor{
		db:       cfg.DB,
		interval: cfg.Interval,
		timeout:  cfg.Timeout,
		cfg:      cfg,
		log:      cfg.Logger,
		turn:     make(chan struct{}, 1),
		levels:   newHysteresis(cfg.Levels),
		raised:   map[alertKey]bool{},
	}
	if cfg.URL != "" && cfg.DB == nil {
		cc, err := pgx.ParseConfig(cfg.URL)
		if err != nil {
			// pgx's message quotes the URL with its password redacted.
			errs = append(errs, fmt.Errorf("monitor: url: %w", err))
		} else {
			if cc.RuntimeParams["application_name"] == "" {
				cc.RuntimeParams["application_name"] = defaultApplicationName
			}
			m.connCfg = cc
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if m.interval == 0 {
		m.interval = defaultInterval
	}
	if m.timeout == 0 {
		m.timeout = min(m.interval, defaultMaxPollTimeout)
	}
	if m.cfg.IdleInTxAlert == 0 {
		m.cfg.IdleInTxAlert = defaultIdleInTxAlert
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	m.last = Snapshot{Stale: true, Err: ErrNoPoll.Error(), ByState: map[string]int{}}
	m.sql = pollSQL(cfg.QueryTexts)
	m.hist = newHistory(m.interval)
	return m, nil
}

// Run polls now and then every Interval until ctx ends, and returns
// ctx's error. A tick that finds a poll still running (one started with
// Poll) is skipped, not queued. The callbacks run on Run's goroutine
// between polls. Run calls Close when it returns, which closes the
// monitor's own connection and cancels a Poll then in progress.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	defer m.Close()
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case m.turn <- struct{}{}:
			_, _ = m.pollHeld(ctx)
			m.report()
		default:
			m.skipped.Add(1)
			m.log.Debug("monitor: poll skipped: previous poll still running")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Poll polls once now, waiting for a poll in progress to finish first, and
// returns the new snapshot. On failure it returns the stale snapshot (the
// last good data, Stale set) and the error. Handy for one-shot tools and
// tests; Run is the usual way.
//
// Poll runs the callbacks its poll causes before it returns, unless
// another goroutine (Run's, or another Poll's) is running callbacks at the
// time: that one then runs them, in order, after its own. So a callback
// may call Poll: its poll's callbacks follow once it has returned.
func (m *Monitor) Poll(ctx context.Context) (Snapshot, error) {
	select {
	case m.turn <- struct{}{}:
	case <-ctx.Done():
		return m.Snapshot(), ctx.Err()
	}
	s, err := m.pollHeld(ctx)
	m.report()
	return s, err
}

// Snapshot returns the latest snapshot. Before the first successful poll it
// is empty and Stale, with Err set to ErrNoPoll's text.
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// History returns the polls and alert log entries at or after since (all
// of them when since is zero): every poll of the last hour, one point per
// minute (its busiest poll) for the day before, and the newest 200
// events. Memory is bounded: under 3 MB with 10 apps.
func (m *Monitor) History(since time.Time) History {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hist.after(since)
	h.Interval = m.interval
	return h
}

// Close cancels the poll in progress, if any, and closes the monitor's own
// connection (Config.URL). The cancelled poll returns ErrClosed and is not
// counted as failed. Close waits only for that poll to stop, which it does
// as soon as pgx sees the cancellation, and then closes the connection
// with a one-second bound, so it returns promptly whatever the server is
// doing. With Config.DB there is no connection to close (the caller owns
// the pool), so Close returns after cancelling.
//
// Close does not end the monitor: a later poll opens a new connection, and
// Run may be called again. Close does not stop Run either (cancel Run's
// context for that): a Run in progress polls again at its next tick. It
// always returns nil; the error is there for io.Closer.
func (m *Monitor) Close() error {
	m.mu.Lock()
	m.closing++
	if m.cancel != nil {
		m.cancel(ErrClosed)
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.closing--
		m.mu.Unlock()
	}()
	if m.db != nil {
		return nil
	}
	m.turn <- struct{}{}
	defer func() { <-m.turn }()
	m.closeConn()
	return nil
}

// pollHeld runs one poll; the caller has taken the turn, which pollHeld
// gives back. The poll's reports are queued for report.
func (m *Monitor) pollHeld(ctx context.Context) (Snapshot, error) {
	defer func() { <-m.turn }()
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	m.mu.Lock()
	prev := m.last
	if m.closing > 0 {
		m.mu.Unlock()
		return prev, ErrClosed
	}
	m.cancel = cancel
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.cancel = nil
		m.mu.Unlock()
	}()

	pctx, cancelTimeout := context.WithTimeout(cctx, m.timeout)
	defer cancelTimeout()
	start := time.Now()
	r, err := m.query(pctx)
	took := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			// The caller is stopping us; that says nothing about the server.
			return prev, err
		}
		if errors.Is(context.Cause(cctx), ErrClosed) {
			return prev, ErrClosed
		}
		return m.fail(prev, err, took)
	}

	s := build(r)
	applyBudget(&s, m.cfg.Budget)
	s.YellowAt, s.RedAbove, _ = m.cfg.Levels.Resolve(s.MaxConnections)
	s.Level = m.levels.observe(s.Total, s.MaxConnections)
	s.PollDuration = took
	s.Polls = prev.Polls + 1
	s.Failed = prev.Failed
	s.Skipped = m.skipped.Load()

	var notes []Alert
	if m.raised[alertKey{kind: AlertPollFailing}] {
		delete(m.raised, alertKey{kind: AlertPollFailing})
		notes = append(notes, Alert{Kind: AlertPollFailing, Time: s.Time, Message: clearMessage(alertKey{kind: AlertPollFailing})})
	}
	notes = append(notes, alerts(s, m.cfg.IdleInTxAlert, m.raised)...)

	var reports []func()
	var events []Event
	// A monitor starts at Green, so a first poll that finds the server
	// beyond it is a change too.
	if prevLevel := prev.Level; s.Level != prevLevel {
		events = append(events, Event{Time: s.Time, Kind: "level", Raised: s.Level > prevLevel, Level: s.Level,
			Message: fmt.Sprintf("level %s → %s: %d of %d connections", prevLevel, s.Level, s.Total, s.MaxConnections)})
		reports = append(reports, func() {
			m.log.Warn("monitor: connection level changed",
				zap.Stringer("from", prevLevel), zap.Stringer("to", s.Level),
				zap.Int("total", s.Total), zap.Int("max_connections", s.MaxConnections))
			if m.cfg.OnChange != nil {
				m.cfg.OnChange(s)
			}
		})
	}
	reports = append(reports, m.alertReports(notes)...)
	for _, a := range notes {
		events = append(events, a.event(s.Level))
	}
	m.publish(s, s.Time, events, reports)
	return s, nil
}

// fail records a failed poll: the last data stays, marked stale. The
// caller holds the turn.
func (m *Monitor) fail(prev Snapshot, err error, took time.Duration) (Snapshot, error) {
	s := prev
	s.Stale = true
	s.Err = err.Error()
	s.Failures = prev.Failures + 1
	s.Polls = prev.Polls + 1
	s.Failed = prev.Failed + 1
	s.Skipped = m.skipped.Load()
	s.PollDuration = took
	var reports []func()
	var events []Event
	now := time.Now()
	k := alertKey{kind: AlertPollFailing}
	if !m.raised[k] {
		m.raised[k] = true
		a := Alert{Kind: AlertPollFailing, Raised: true, Time: now, Message: "polls failing: " + err.Error()}
		reports = m.alertReports([]Alert{a})
		events = append(events, a.event(s.Level))
	} else {
		reports = append(reports, func() {
			m.log.Debug("monitor: poll failed", zap.Error(err), zap.Int("failures", s.Failures))
		})
	}
	m.publish(s, now, events, reports)
	return s, err
}

// publish makes s the latest snapshot, files it in the history at time
// at with its events, and queues its reports, in one step, so that
// reports run in the order of the snapshots that made them. The caller
// holds the turn.
func (m *Monitor) publish(s Snapshot, at time.Time, events []Event, reports []func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = s
	m.hist.add(s, at)
	for _, e := range events {
		m.hist.event(e)
	}
	m.pending = append(m.pending, reports...)
}

// report runs the queued reports one at a time, oldest first, with no lock
// held, unless another goroutine is already running them: that one then
// runs these too, after its current one. The caller holds no lock and not
// the turn, so a callback may poll; the reports of its poll are queued
// and run when it returns.
func (m *Monitor) report() {
	m.mu.Lock()
	if m.reporting {
		m.mu.Unlock()
		return
	}
	m.reporting = true
	locked := true
	defer func() {
		// Also when a callback panics: the reports queued behind it run
		// on the next report.
		if !locked {
			m.mu.Lock()
		}
		m.reporting = false
		m.mu.Unlock()
	}()
	for len(m.pending) > 0 {
		f := m.pending[0]
		m.pending[0] = nil
		m.pending = m.pending[1:]
		m.mu.Unlock()
		locked = false
		f()
		m.mu.Lock()
		locked = true
	}
	m.pending = nil
}

// alertReports returns the reports of alerts: a log line each, then
// OnAlert.
func (m *Monitor) alertReports(as []Alert) []func() {
	out := make([]func(), 0, len(as))
	for _, a := range as {
		out = append(out, func() {
			fields := []zap.Field{zap.String("alert", string(a.Kind)), zap.String("detail", a.Message)}
			if a.Application != "" {
				fields = append(fields, zap.String("application", a.Application))
			}
			if a.Raised {
				m.log.Warn("monitor: alert raised", fields...)
			} else {
				m.log.Info("monitor: alert cleared", fields...)
			}
			if m.cfg.OnAlert != nil {
				m.cfg.OnAlert(a)
			}
		})
	}
	return out
}
