package pool

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A route's cap is a cap on server connections, not only on pgxpool's.
//
// pgxpool counts the connections it holds. One taken out with
// pgxpool.Conn.Hijack (River's listener, pgxlisten, and supapool's own
// closeConn) leaves that count at once, while its socket, and the backend
// behind it, live on with the new owner; pgxpool would open a replacement,
// one connection above the cap per hijack. A connection pgxpool destroys
// also leaves its count before the close has reached the server.
//
// So every socket a route opens to the server holds one of the route's
// slots, from before it is dialled until it is closed, whoever closes it:
// the slot is tied to the socket (slotConn), not to pgxpool's bookkeeping.
// A connect that finds every slot taken waits in its dial for one. While it
// waits, a connection that goes idle in pgxpool is closed to make room
// (reclaim), because the caller pgxpool is connecting for cannot be given
// that idle connection: pgxpool already chose to connect for it.

// reclaimEvery is how often a connect waiting for a slot looks for an idle
// connection to close. It waits only while the route's slots are all taken
// and none is being closed, which takes a hijacked connection.
const reclaimEvery = 5 * time.Millisecond

// serverConns holds a route's slots.
type serverConns struct {
	route   Route
	field   string // the cap's name, for errors
	max     int32
	closing <-chan struct{} // the Pool's; ends every wait

	// reclaim closes one idle connection of the route's pgxpool and
	// reports whether it found one.
	reclaim func() bool

	// mu guards the fields below, held only for bookkeeping, never
	// across I/O or a wait.
	//
	// Invariant (with mu held): taken is the number of the route's
	// sockets to the server that are being dialled or are open, in
	// pgxpool (idle or in use), being closed, or hijacked out of it; and
	// 0 <= taken <= max. leaving counts those of them whose close has
	// begun (BeforeClose ran and the socket is not closed yet), so
	// leaving <= taken. A slot is taken before its dial and given back
	// when the dial fails or the socket closes, exactly once.
	mu      sync.Mutex
	taken   int32
	leaving int32
	freed   chan struct{} // closed, and replaced, whenever a slot is given back

	waits atomic.Int64 // connects that had to wait for a slot (Stat-worthy)
}

// slotsOff disables the slots, for a test that shows what they prevent.
var slotsOff atomic.Bool

func newServerConns(route Route, field string, max int32, closing <-chan struct{}) *serverConns {
	return &serverConns{route: route, field: field, max: max, closing: closing, freed: make(chan struct{})}
}

// install chains the slots into a pgxpool config, keeping the hooks set so
// far (the user's, and those of generations.install, which runs first):
// BeforeConnect gives each connect attempt a dial function that takes a
// slot; AfterConnect ties the connection to its socket, so that closing
// the socket also forgets it in the generations however it was closed;
// BeforeClose marks the socket as leaving.
func (s *serverConns) install(pc *pgxpool.Config, forget func(*pgx.Conn)) {
	beforeConnect, afterConnect, beforeClose := pc.BeforeConnect, pc.AfterConnect, pc.BeforeClose
	pc.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if beforeConnect != nil {
			if err := beforeConnect(ctx, cc); err != nil {
				return err
			}
		}
		dial := cc.DialFunc
		if dial == nil {
			dial = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
		}
		cc.DialFunc = s.dialer(dial)
		return nil
	}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if sc := socketOf(c); sc != nil {
			s.mu.Lock()
			sc.onClose = func() { forget(c) }
			s.mu.Unlock()
		}
		if afterConnect != nil {
			return afterConnect(ctx, c)
		}
		return nil
	}
	pc.BeforeClose = func(c *pgx.Conn) {
		if sc := socketOf(c); sc != nil {
			s.mu.Lock()
			if !sc.closed && !sc.leaving {
				sc.leaving = true
				s.leaving++
			}
			s.mu.Unlock()
		}
		if beforeClose != nil {
			beforeClose(c)
		}
	}
}

// dialer is one connect attempt's dial function. pgconn dials once per
// host and fallback it tries, one after another, closing each failed
// socket before the next dial; each of those dials takes a slot. Once the
// attempt has an open socket, later dials through the same function are
// cancel requests for that session (pgconn.PgConn.CancelRequest uses the
// connection's DialFunc): they open no session and take no slot.
func (s *serverConns) dialer(dial pgconn.DialFunc) pgconn.DialFunc {
	// mu guards session, the socket this attempt opened. The attempt's
	// own dials come one after another, but a cancel request comes from
	// whichever goroutine cancels a query.
	var mu sync.Mutex
	var session *slotConn
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		open := session != nil && !session.isClosed()
		mu.Unlock()
		if open {
			return dial(ctx, network, addr)
		}
		if err := s.take(ctx); err != nil {
			return nil, err
		}
		nc, err := dial(ctx, network, addr)
		if err != nil {
			s.give(nil)
			return nil, err
		}
		sc := &slotConn{Conn: nc, s: s}
		mu.Lock()
		session = sc
		mu.Unlock()
		return sc, nil
	}
}

// take waits for a slot, for ctx to end or for the Pool to close.
func (s *serverConns) take(ctx context.Context) error {
	var tick *time.Ticker
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	start := time.Now()
	for {
		s.mu.Lock()
		if s.taken < s.max {
			s.taken++
			s.mu.Unlock()
			return nil
		}
		freed, leaving, taken := s.freed, s.leaving, s.taken
		s.mu.Unlock()
		if tick == nil {
			s.waits.Add(1)
			tick = time.NewTicker(reclaimEvery)
		}
		// A socket being closed gives its slot back soon; otherwise the
		// slots are held by connections in use, idle ones and hijacked
		// ones, and only an idle one can be made to give its slot back.
		if leaving == 0 && s.reclaim != nil {
			s.reclaim()
		}
		select {
		case <-freed:
		case <-tick.C:
		case <-ctx.Done():
			return &SlotsTakenError{Route: s.route, Field: s.field, Max: s.max, Taken: taken, Waited: time.Since(start), Err: ctx.Err()}
		case <-s.closing:
			return ErrClosed
		}
	}
}

// give gives back the slot of sc (nil: a dial that failed).
func (s *serverConns) give(sc *slotConn) {
	var onClose func()
	s.mu.Lock()
	s.taken--
	if sc != nil {
		sc.closed = true
		if sc.leaving {
			s.leaving--
		}
		onClose, sc.onClose = sc.onClose, nil
	}
	close(s.freed)
	s.freed = make(chan struct{})
	s.mu.Unlock()
	if onClose != nil {
		onClose()
	}
}

// inUse is the number of slots taken.
func (s *serverConns) inUse() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taken
}

// slotConn is a socket to the server holding one of its route's slots,
// which it gives back when it is first closed, by pgxpool or by whoever
// hijacked its connection.
type slotConn struct {
	net.Conn
	s    *serverConns
	once sync.Once

	// Guarded by s.mu.
	closed  bool
	leaving bool
	onClose func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.s.give(c) })
	return err
}

func (c *slotConn) isClosed() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.closed
}

// socketOf finds the slotConn under a connection's socket, through the TLS
// connection (and any wrapper with a NetConn method) on top of it; nil
// when a user's AfterNetConnect hides it.
func socketOf(c *pgx.Conn) *slotConn {
	nc := c.PgConn().Conn()
	for range 8 {
		switch x := nc.(type) {
		case *slotConn:
			return x
		case interface{ NetConn() net.Conn }:
			nc = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// SlotsTakenError is the error of a connection attempt that waited in
// vain for room under the route's cap: every connection the cap allows was
// open, in use or taken out of the pool (pgxpool.Conn.Hijack, as River's
// listener and pgxlisten do) and none came back. It reaches callers of a
// pool from Pool.PgxPool wrapped in pgconn's connect error.
type SlotsTakenError struct {
	Route  Route
	Field  string // MaxConns or MaxDirectConns
	Max    int32
	Taken  int32
	Waited time.Duration
	Err    error // the context's error
}

func (e *SlotsTakenError) Error() string {
	return fmt.Sprintf("pool: %s route: all %d connections its cap allows (%s) are open, in use or hijacked out of the pool; waited %s for one: %v",
		e.Route, e.Max, e.Field, e.Waited.Round(time.Millisecond), e.Err)
}

func (e *SlotsTakenError) Unwrap() error { return e.Err }

// reclaimIdle closes one idle connection of the route, to give its slot to
// a connect waiting for one; the others go back.
func (r *route) reclaimIdle() bool {
	if r.isClosing() || r.pool.Stat().IdleConns() == 0 {
		return false
	}
	idle := r.pool.AcquireAllIdle(context.Background())
	if len(idle) == 0 {
		return false
	}
	r.closeConn(idle[0])
	for _, c := range idle[1:] {
		c.Release()
	}
	return true
}
