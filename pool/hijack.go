package pool

import (
	"container/list"
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
// A connect that finds every slot taken waits in its dial for one, first
// come, first served; a slot given back goes straight to the first waiter.
//
// Only a hijacked connection makes a connect wait for long: without one,
// pgxpool's own cap keeps its connections and connects within the slots,
// and a connect waits at most for a socket being closed. With one, pgxpool
// connects for a caller although every slot is held, and that caller
// cannot be given a connection pgxpool already has: pgxpool chose to
// connect for it. So a connection of pgxpool's is closed to make room
// (reclaim): an idle one at once, else, once the connect has waited
// handoffAfter, the next one a Pool call gives back (route.release closes
// it instead). A route with h connections hijacked thus serves its callers
// with max-h connections, reconnecting about once per handoffAfter while
// more than max-h callers want one.
//
// What pgxpool's own callers give back (through PgxPool, or a conn from
// Pool.Acquire) is not seen until it is idle: pgxpool has no hook on
// release but AfterRelease, which would make every release asynchronous.
// A connection they give back and take again at once is not reclaimed, so
// a connect can wait its ConnectTimeout while they keep the route's other
// connections busy, and then fails with SlotsTakenError. No pgxpool caller
// is ever refused a connection for a waiting one: pgxpool's Acquire gives
// up after MaxConns+1 refusals by PrepareConn, and a refused caller queues
// again behind the others.

// reclaimEvery is how often a connect waiting for a slot looks for a
// connection to close.
const reclaimEvery = 5 * time.Millisecond

// handoffAfter is how long a connect waits for a slot before a connection
// in use is closed for it when it comes back.
const handoffAfter = 20 * time.Millisecond

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
	// 0 <= taken <= max. A slot is taken before its dial and given back
	// when the dial fails or the socket closes, exactly once; given back
	// while connects wait, it passes to the first of them (taken stays)
	// and taken < max only while none waits. leaving counts the sockets
	// whose close has begun (BeforeClose ran, or release chose to close
	// it, and the socket is not closed yet): leaving <= taken.
	mu      sync.Mutex
	taken   int32
	leaving int32
	waiters list.List // of chan struct{}, closed when given a slot

	// wanted asks route.release to close the next connection it is
	// given back, so that its slot goes to a connect that has waited
	// handoffAfter; cleared when taken up or when no connect waits.
	wanted atomic.Bool

	waits atomic.Int64 // connects that had to wait for a slot
}

// slotsOff disables the slots, for a test that shows what they prevent.
var slotsOff atomic.Bool

func newServerConns(route Route, field string, max int32, closing <-chan struct{}) *serverConns {
	return &serverConns{route: route, field: field, max: max, closing: closing}
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
		s.leave(c)
		if beforeClose != nil {
			beforeClose(c)
		}
	}
}

// handOff reports whether a connection given back should be closed for a
// waiting connect, and marks its socket as leaving if so.
func (s *serverConns) handOff(c *pgx.Conn) bool {
	sc := socketOf(c)
	if sc == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.wanted.Load() || sc.closed || sc.leaving || s.leaving >= int32(s.waiters.Len()) {
		return false
	}
	s.wanted.Store(false)
	sc.leaving = true
	s.leaving++
	return true
}

// leave marks c's socket as being closed.
func (s *serverConns) leave(c *pgx.Conn) {
	sc := socketOf(c)
	if sc == nil {
		return
	}
	s.mu.Lock()
	if !sc.closed && !sc.leaving {
		sc.leaving = true
		s.leaving++
	}
	s.mu.Unlock()
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
	s.mu.Lock()
	if s.taken < s.max && s.waiters.Len() == 0 {
		s.taken++
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	el := s.waiters.PushBack(ch)
	s.mu.Unlock()
	s.waits.Add(1)
	start := time.Now()
	tick := time.NewTicker(reclaimEvery)
	defer tick.Stop()
	for {
		select {
		case <-ch:
			return nil
		case <-tick.C:
			s.mu.Lock()
			// Sockets being closed give their slots to the waiters
			// first in line; reclaim only for those beyond them.
			enough := s.leaving >= int32(s.waiters.Len())
			s.mu.Unlock()
			if enough || s.reclaim == nil || s.reclaim() {
				continue
			}
			if time.Since(start) >= handoffAfter {
				s.wanted.Store(true)
			}
		case <-ctx.Done():
			taken := s.withdraw(ch, el)
			return &SlotsTakenError{Route: s.route, Field: s.field, Max: s.max, Taken: taken, Waited: time.Since(start), Err: ctx.Err()}
		case <-s.closing:
			s.withdraw(ch, el)
			return ErrClosed
		}
	}
}

// withdraw takes a connect that gives up out of the queue, or passes on
// the slot it was given meanwhile. It returns the slots taken.
func (s *serverConns) withdraw(ch chan struct{}, el *list.Element) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch:
		s.passOn()
	default:
		s.waiters.Remove(el)
		if s.waiters.Len() == 0 {
			s.wanted.Store(false)
		}
	}
	return s.taken
}

// give gives back the slot of sc (nil: a dial that failed).
func (s *serverConns) give(sc *slotConn) {
	var onClose func()
	s.mu.Lock()
	if sc != nil {
		sc.closed = true
		if sc.leaving {
			s.leaving--
		}
		onClose, sc.onClose = sc.onClose, nil
	}
	s.passOn()
	s.mu.Unlock()
	if onClose != nil {
		onClose()
	}
}

// passOn hands a slot given back to the first waiting connect, or frees
// it; s.mu is held.
func (s *serverConns) passOn() {
	if el := s.waiters.Front(); el != nil {
		close(s.waiters.Remove(el).(chan struct{}))
	} else {
		s.taken--
	}
	if s.waiters.Len() == 0 {
		s.wanted.Store(false)
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
	// Err is the connect's context error, most often its connect
	// timeout. It is not unwrapped: pgconn would report a context's
	// deadline as its own timeout and drop this error.
	Err error
}

func (e *SlotsTakenError) Error() string {
	return fmt.Sprintf("pool: %s route: all %d connections its cap allows (%s) are open, in use or hijacked out of the pool; waited %s for one: %v",
		e.Route, e.Max, e.Field, e.Waited.Round(time.Millisecond), e.Err)
}

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
