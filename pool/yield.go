package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/supapool/supapool/internal/pgstat"
)

// Yielding: a quiet route gives its idle connections back to a full
// server.
//
// A route learns that the server is full only when one of its own
// connection attempts is refused. An instance that opened its connections
// before the server filled up is never refused, so after its burst it
// would keep them idle for MaxConnIdleTime while other instances and apps
// queue for a slot. So a route to the server itself (not through a pooler:
// closing a client connection to a pooler frees no server slot), once
// unused for Config.YieldAfter with idle connections, borrows one of them
// and asks the server how many slots are taken; when none is free it
// closes its idle connections. While it stays quiet it asks again each
// yieldCheckEvery, up to half of MaxConnIdleTime. An answer younger than
// yieldCheckEvery is reused.

// yieldCheckEvery bounds how often a route asks the server.
const yieldCheckEvery = time.Second

// loadQuery counts the server's client backends and the slots an ordinary
// role may use, as package pgstat defines them (and the monitor reports
// them): rows hidden from a role without pg_read_all_stats count, so the
// answer errs towards giving back.
const loadQuery = pgstat.LoadQuery

// load is the server's answer to loadQuery.
type load struct{ clients, usable int }

// full: no slot is left for an ordinary role, so the next instance to ask
// for one is refused. A server with a few slots free is left alone: a
// budget that fits fills all but a few, and yielding there would only make
// its instances reconnect after every pause.
func (l load) full() bool { return l.clients >= l.usable }

// yielder is a route's yielding state.
type yielder struct {
	after time.Duration // Config.YieldAfter; 0 when the route never yields

	// armed mirrors timer != nil, so that release, on every call, skips
	// the lock while a check is pending.
	armed atomic.Bool

	mu        sync.Mutex
	timer     *time.Timer // pending quiet check, nil when none
	closed    bool
	asked     time.Time // when the server was last asked
	last      load      // its answer
	quietFrom time.Time
}

// quiet is called when the route's last caller has left and the route
// yields. It schedules a check after YieldAfter, unless one is pending.
func (r *route) quiet() {
	y := &r.yield
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.closed || y.timer != nil {
		return
	}
	y.quietFrom = time.Now()
	r.scheduleQuietCheck(y.after, r.routed.Load())
}

// scheduleQuietCheck arms the check; y.mu is held.
func (r *route) scheduleQuietCheck(d time.Duration, mark int64) {
	r.bg.Add(1)
	r.yield.armed.Store(true)
	r.yield.timer = time.AfterFunc(d, func() {
		defer r.bg.Done()
		r.quietCheck(mark)
	})
}

// quietCheck closes the route's idle connections if nobody has used the
// route since mark (its routed count when it went quiet) and the server is
// full.
func (r *route) quietCheck(mark int64) {
	y := &r.yield
	stillQuiet := func() bool { return r.routed.Load() == mark && r.idleGate() }
	again := false
	defer func() {
		y.mu.Lock()
		defer y.mu.Unlock()
		y.timer = nil
		y.armed.Store(false)
		switch {
		case y.closed:
		case stillQuiet():
			// Ask again while quiet, so connections kept because the
			// server had room go when it fills up. Each question resets
			// the idle clock of the connection it borrows (pgxpool hands
			// out the one used last, so always the same one): stopping
			// at half of MaxConnIdleTime keeps that one from outliving
			// it by more than half.
			if again && time.Since(y.quietFrom) < r.maxIdle/2 {
				r.scheduleQuietCheck(yieldCheckEvery, mark)
			}
		case r.idleGate():
			// Used and quiet again while this check was pending, when
			// quiet() could not arm another: watch the new quiet spell.
			y.quietFrom = time.Now()
			r.scheduleQuietCheck(y.after, r.routed.Load())
		}
	}()
	if !stillQuiet() || r.pool.Stat().IdleConns() == 0 {
		return
	}
	// Borrow one idle connection for the question, so that a caller
	// arriving meanwhile finds the others idle instead of opening a new
	// one; a short deadline, because with nothing idle after all pgxpool
	// would open one, which is not worth waiting for.
	ctx, cancel := context.WithTimeout(context.Background(), yieldCheckEvery)
	defer cancel()
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return
	}
	l, err := r.serverLoad(ctx, c)
	if err != nil || !l.full() || !stillQuiet() {
		c.Release()
		again = err == nil && !l.full()
		if err != nil {
			r.log.Debug("supapool: could not ask the server how many connections it has", zap.Error(err))
		}
		return
	}
	idle := append(r.pool.AcquireAllIdle(ctx), c)
	r.log.Debug("supapool: server full; closing this quiet route's idle connections",
		zap.Int("closed", len(idle)), zap.Int("clients", l.clients), zap.Int("usable", l.usable))
	for _, c := range idle {
		r.closeConn(c)
	}
	// The next burst opens its connections one at a time again.
	held := r.established()
	r.gate.restart(held)
	r.elastic.forget(held)
}

// idleGate reports whether no caller is in the route's gate or waiting for
// it, the listener's connection aside (it holds its place for good).
func (r *route) idleGate() bool {
	return r.gate.inUse.Load() <= r.pinned.Load() && r.gate.nwait.Load() == 0
}

// serverLoad asks the server on c, or reuses an answer younger than
// yieldCheckEvery.
func (r *route) serverLoad(ctx context.Context, c *pgxpool.Conn) (load, error) {
	y := &r.yield
	y.mu.Lock()
	if time.Since(y.asked) < yieldCheckEvery {
		l := y.last
		y.mu.Unlock()
		return l, nil
	}
	y.mu.Unlock()
	var l load
	if err := c.QueryRow(ctx, loadQuery, pgx.QueryExecModeSimpleProtocol).Scan(&l.clients, &l.usable); err != nil {
		return load{}, err
	}
	y.mu.Lock()
	y.asked, y.last = time.Now(), l
	y.mu.Unlock()
	return l, nil
}

// stopYield cancels a pending quiet check; the route is closing.
func (r *route) stopYield() {
	y := &r.yield
	y.mu.Lock()
	defer y.mu.Unlock()
	y.closed = true
	if y.timer != nil && y.timer.Stop() {
		y.timer = nil
		y.armed.Store(false)
		r.bg.Done()
	}
}
