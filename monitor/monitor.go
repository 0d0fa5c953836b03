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
)

// Monitor polls pg_stat_activity and keeps the latest [Snapshot]. Its
// methods are safe for concurrent use.
type Monitor struct {
	db       DB
	connCfg  *pgx.ConnConfig
	interval time.Duration
	timeout  time.Duration
	cfg      Config
	log      *zap.Logger

	// sem is held by the poll in progress, so two never run at once; the
	// monitor's own connection and the poll state below belong to it.
	sem    chan struct{}
	conn   *pgx.Conn
	levels *hysteresis
	raised map[alertKey]bool

	running atomic.Bool
	skipped atomic.Uint64

	mu   sync.Mutex
	last Snapshot
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
	if err := cfg.Levels.validate(); err != nil {
		errs = append(errs, err)
	}
	m := &Monitor{
		db:       cfg.DB,
		interval: cfg.Interval,
		timeout:  cfg.Timeout,
		cfg:      cfg,
		log:      cfg.Logger,
		sem:      make(chan struct{}, 1),
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
				cc.RuntimeParams["application_name"] = DefaultApplicationName
			}
			m.connCfg = cc
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if m.interval == 0 {
		m.interval = DefaultInterval
	}
	if m.timeout == 0 {
		m.timeout = min(m.interval, DefaultMaxPollTimeout)
	}
	if m.cfg.IdleInTxAlert == 0 {
		m.cfg.IdleInTxAlert = DefaultIdleInTxAlert
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	m.last = Snapshot{Stale: true, Err: ErrNoPoll.Error(), ByState: map[string]int{}}
	return m, nil
}

// Run polls now and then every Interval until ctx ends, and returns
// ctx's error. A tick that finds a poll still running (one started with
// Poll) is skipped, not queued. Run closes the monitor's own connection
// when it returns.
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
		case m.sem <- struct{}{}:
			_, _ = m.poll(ctx)
			<-m.sem
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
func (m *Monitor) Poll(ctx context.Context) (Snapshot, error) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return m.Snapshot(), ctx.Err()
	}
	defer func() { <-m.sem }()
	return m.poll(ctx)
}

// Snapshot returns the latest snapshot. Before the first successful poll it
// is empty and Stale, with Err set to ErrNoPoll's text.
func (m *Monitor) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Close closes the monitor's own connection (Config.URL), waiting for a
// poll in progress. A later poll opens a new one. With Config.DB it does
// nothing: the caller owns the pool.
func (m *Monitor) Close() error {
	m.sem <- struct{}{}
	defer func() { <-m.sem }()
	m.closeConn()
	return nil
}

// poll runs one poll. The caller holds m.sem.
func (m *Monitor) poll(ctx context.Context) (Snapshot, error) {
	pctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	start := time.Now()
	r, err := m.query(pctx)
	took := time.Since(start)

	m.mu.Lock()
	prev := m.last
	m.mu.Unlock()

	if err != nil {
		if ctx.Err() != nil {
			// The caller is stopping us; that says nothing about the server.
			return prev, err
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

	m.mu.Lock()
	m.last = s
	m.mu.Unlock()

	// A monitor starts at Green, so a first poll that finds the server
	// beyond it is a change too.
	prevLevel := prev.Level
	if s.Level != prevLevel {
		m.log.Warn("monitor: connection level changed",
			zap.Stringer("from", prevLevel), zap.Stringer("to", s.Level),
			zap.Int("total", s.Total), zap.Int("max_connections", s.MaxConnections))
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(s)
		}
	}
	m.notify(notes)
	return s, nil
}

// fail records a failed poll: the last data stays, marked stale.
func (m *Monitor) fail(prev Snapshot, err error, took time.Duration) (Snapshot, error) {
	s := prev
	s.Stale = true
	s.Err = err.Error()
	s.Failures = prev.Failures + 1
	s.Polls = prev.Polls + 1
	s.Failed = prev.Failed + 1
	s.Skipped = m.skipped.Load()
	s.PollDuration = took
	m.mu.Lock()
	m.last = s
	m.mu.Unlock()
	k := alertKey{kind: AlertPollFailing}
	if !m.raised[k] {
		m.raised[k] = true
		m.notify([]Alert{{Kind: AlertPollFailing, Raised: true, Time: time.Now(), Message: "polls failing: " + err.Error()}})
	} else {
		m.log.Debug("monitor: poll failed", zap.Error(err), zap.Int("failures", s.Failures))
	}
	return s, err
}

func (m *Monitor) notify(as []Alert) {
	for _, a := range as {
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
	}
}
