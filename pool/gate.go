package pool

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// gate admits at most cap callers to a route at once. The cap starts at
// one and, while callers fill it, climbs to one above the connections the
// route has open, so a route opens its connections one after another
// rather than all at once: when many instances start together on a server
// that cannot hold all their caps, each gets about the same share before
// the server is full, instead of the first few taking everything. When the
// server refuses a connection, the cap drops to the connections the route
// already holds, so callers wait (first come, first served) for one of
// those instead of asking the server for more; it climbs again after
// raiseEvery (see ok).
//
// At MaxConns the gate only counts (an atomic add per call) and leaves the
// queueing to pgxpool, whose own cap is the same limit; below its cap it
// admits with a compare-and-swap. It takes its lock only when callers fill
// a cap lowered below MaxConns.
type gate struct {
	max   int32
	inUse atomic.Int32
	cap   atomic.Int32 // written with mu held
	nwait atomic.Int32 // waiters, so leave knows to admit
	// ceil is elastic sharing's limit on cap (elastic.go), 0 for none;
	// written with mu held. cap never climbs above it.
	ceil atomic.Int32

	// closing ends every wait with ErrClosed when the Pool closes.
	closing <-chan struct{}

	// mu guards waiters, lowered and writes of cap; it is held only for
	// bookkeeping, never across I/O or a wait.
	mu      sync.Mutex
	waiters list.List // of chan struct{}
	lowered time.Time // the last refusal or blind probe: climbing pauses raiseEvery after it
}

const raiseEvery = time.Second

func newGate(max int32, closing <-chan struct{}) *gate {
	g := &gate{max: max, closing: closing}
	g.cap.Store(1)
	return g
}

// enter waits for a place, or for ctx to end (its error) or the Pool to
// close (ErrClosed).
func (g *gate) enter(ctx context.Context) error {
	for g.nwait.Load() == 0 {
		c := g.cap.Load()
		if c >= g.max {
			// pgxpool's own cap is the same limit and queues the rest.
			g.inUse.Add(1)
			return nil
		}
		n := g.inUse.Load()
		if n >= c {
			break
		}
		if g.inUse.CompareAndSwap(n, n+1) {
			return nil
		}
	}
	g.mu.Lock()
	// Count ourselves as waiting before looking at inUse: a leave that
	// lowers inUse after our look then sees nwait > 0 and admits us.
	g.nwait.Add(1)
	if g.inUse.Load() < g.cap.Load() && g.waiters.Len() == 0 {
		g.nwait.Add(-1)
		g.inUse.Add(1)
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	el := g.waiters.PushBack(ch)
	g.mu.Unlock()
	// The cap normally climbs when an acquire succeeds (ok). A caller
	// that holds every place and waits for one more (a query inside its
	// own transaction, say) makes no acquire succeed, so waiters also
	// probe: one blind step per raiseEvery for the whole gate.
	probe := time.NewTimer(raiseEvery)
	defer probe.Stop()
	for {
		select {
		case <-ch:
			return nil
		case <-probe.C:
			g.mu.Lock()
			g.blindStep(true)
			g.mu.Unlock()
			probe.Reset(raiseEvery)
		case <-ctx.Done():
			g.withdraw(ch, el)
			return ctx.Err()
		case <-g.closing:
			g.withdraw(ch, el)
			return ErrClosed
		}
	}
}

// withdraw takes a waiter that gives up out of the queue, or passes on the
// place it was given while giving up.
func (g *gate) withdraw(ch chan struct{}, el *list.Element) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-ch:
		g.inUse.Add(-1)
		g.admit()
	default:
		g.waiters.Remove(el)
		g.nwait.Add(-1)
	}
}

// leave gives a place back.
func (g *gate) leave() {
	g.inUse.Add(-1)
	if g.nwait.Load() > 0 {
		g.mu.Lock()
		g.admit()
		g.mu.Unlock()
	}
}

// admit lets waiters in while there is room; g.mu is held.
func (g *gate) admit() {
	for g.inUse.Load() < g.cap.Load() && g.waiters.Len() > 0 {
		ch := g.waiters.Remove(g.waiters.Front()).(chan struct{})
		g.nwait.Add(-1)
		g.inUse.Add(1)
		close(ch)
	}
}

// atCap reports whether callers fill a cap below MaxConns and below
// elastic sharing's limit, when a successful acquire should tell ok how
// many connections the route holds. At the limit ok could not raise the
// cap, so a route that keeps to its share (the common case on a full
// server) pays nothing more per acquire.
func (g *gate) atCap() bool {
	c := g.cap.Load()
	return c < g.max && !g.atCeil(c) && g.inUse.Load() >= c
}

// full lowers the cap to the connections the route holds (at least one, so
// that somebody keeps trying), and pauses climbing.
func (g *gate) full(held int32) { g.lower(held, true) }

// restart lowers the cap to the connections the route holds after it gave
// its idle ones back, so that its next burst opens connections one at a
// time again; climbing is not paused, since nothing was refused.
func (g *gate) restart(held int32) { g.lower(held, false) }

func (g *gate) lower(held int32, pause bool) {
	g.mu.Lock()
	if held = max(held, 1); held < g.cap.Load() {
		g.cap.Store(held)
	}
	if pause {
		g.lowered = time.Now()
	}
	g.mu.Unlock()
}

// ok records a successful acquire while the route holds held connections,
// and raises the cap: at once to held, because connections the route
// already has cost the server nothing more and idle ones would be wasted
// while callers wait; then, when climb allows it (elastic sharing may want
// a look first, see route.climbLook), to held+1, so that one more caller
// may open one more connection, but not within raiseEvery of a refusal,
// so that refused attempts (each costs the server a process) come about
// once per raiseEvery.
func (g *gate) ok(held int32, climb bool) {
	g.mu.Lock()
	c, step := g.next(held)
	if climb && step {
		c++
	}
	g.cap.Store(c)
	g.admit()
	g.mu.Unlock()
}

// wouldClimb reports whether ok(held, true) would raise the cap above
// held, so that a look taken to allow it (route.climbLook) is not wasted.
func (g *gate) wouldClimb(held int32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, step := g.next(held)
	return step
}

// next is ok's arithmetic: the cap raised to held (within MaxConns and
// elastic sharing's limit), and whether one step above it is allowed;
// g.mu is held.
func (g *gate) next(held int32) (c int32, step bool) {
	c = g.cap.Load()
	if held > c {
		c = min(held, g.max)
	}
	ceil := g.ceil.Load()
	if ceil > 0 && c > ceil {
		c = ceil
	}
	step = held >= c && c < g.max && (ceil == 0 || c < ceil) && time.Since(g.lowered) >= raiseEvery
	return c, step
}

// nudge lets one waiter climb when callers fill a cap below MaxConns and
// elastic sharing's limit, outside a refusal's pause: the step its probe
// takes, but at once and without pausing the next (route.nudgeWhenSettled).
func (g *gate) nudge() {
	g.mu.Lock()
	g.blindStep(false)
	g.mu.Unlock()
}

// blindStep raises the cap by one and admits a waiter, without a
// successful acquire to go by, when callers fill a cap below MaxConns and
// elastic sharing's limit while somebody waits, outside a refusal's
// pause; pause starts a new one (the waiters' probe: one blind step per
// raiseEvery for the whole gate). g.mu is held.
func (g *gate) blindStep(pause bool) {
	c := g.cap.Load()
	if c >= g.max || g.atCeil(c) || g.waiters.Len() == 0 || g.inUse.Load() < c || time.Since(g.lowered) < raiseEvery {
		return
	}
	g.cap.Store(c + 1)
	if pause {
		g.lowered = time.Now()
	}
	g.admit()
}

// unpause ends the pause in climbing after a refusal: elastic sharing saw
// room for this route on the server.
func (g *gate) unpause() {
	g.mu.Lock()
	g.lowered = time.Time{}
	g.mu.Unlock()
}

// wouldAdmit reports whether enter would let a caller in at once, which
// after a refusal means waiting in the gate would not wait at all (the
// connections it counts are held outside it, by Acquire or DirectDB).
func (g *gate) wouldAdmit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inUse.Load() < g.cap.Load() && g.waiters.Len() == 0
}

// atCeil reports whether cap c has reached elastic sharing's limit.
func (g *gate) atCeil(c int32) bool {
	ceil := g.ceil.Load()
	return ceil > 0 && c >= ceil
}

// setCeil sets elastic sharing's limit (0: none) and lowers the cap to it;
// callers already in keep their places until they leave.
func (g *gate) setCeil(n int32) {
	g.mu.Lock()
	g.ceil.Store(n)
	if n > 0 && g.cap.Load() > n {
		g.cap.Store(n)
	}
	g.admit()
	g.mu.Unlock()
}

// limit is the current cap.
func (g *gate) limit() int32 { return g.cap.Load() }
