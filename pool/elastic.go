package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/supapool/supapool/internal/appname"
)

// Elastic sharing: instances find their fair share of a full server
// through the server itself.
//
// Every route that connects to PostgreSQL itself (not through a pooler,
// whose client connections hold no server slot) sends application_name
// app#instance, one random id per Pool (internal/appname; the monitor
// folds it back into the app). While the route is busy or the server is
// nearly full, a release now and then (about once per viewEvery once the
// picture has settled) keeps its connection for one more small query, on
// a goroutine of its own so the caller does not wait: client backends per application_name and the
// server's usable slots (elastic_view.go). From that view it computes its
// fair share (elastic_share.go): the usable slots, less those held by
// clients without an instance id and one slot of headroom, divided among
// the instances holding a backend, weighted by the budget plan when
// SUPAPOOL_BUDGET names one.
//
// When the server is full (pressureFull), the route keeps to its share:
// its gate does not climb above it (gate.ceil), and connections above it
// are closed as they are released (never one in use), and idle ones at
// once. The headroom slot lets an instance that starts meanwhile open its
// first connection, and so become visible; the others then make room for
// it at their next look. When the server has room (pressureRoomy) the
// free slots go first to busy instances below their shares (the deficit);
// a route may grow past its share only by its part of the rest (free
// less deficit and headroom, divided among the live instances), since all
// of them may be looking at the same free slots at once, and keeps to its
// share when nothing is left; a limit at or above its cap is no limit. A
// busy route held by a limit asks every viewEvery; one without a limit
// only after a refusal, or every spareRecheck. A route asks first on its
// first release, so that instances starting together share before they
// have overfilled the server; since they see each other only as they
// connect, a look that changed the picture (another number of live
// instances, or a new pressure) is followed by another after
// settleFirst, the gap doubling while nothing changes, up to viewEvery:
// measured on the storm of 28 instances, about four looks per instance in
// its first second, and every instance at its share within about 300 ms
// instead of 1.2 s. A route opens its first climbFree connections without
// looking; each one beyond needs a look asked while it held all the
// others (climbLook): the acquire that would climb asks on the connection
// it just got, before its caller has it, unless a look is under way. And
// it needs a settled picture: no look for climbSettle has seen more live
// instances than the one before (settled). So no route climbs on a look
// that saw the server before the crowd had logged in, nor while instances
// keep arriving, as 28 processes started one after another do over a
// second or more; and a route whose callers hold their connections for
// long (long queries, streamed rows, DirectDB) still climbs: on the
// acquire after the picture settled, or, when no release lets one come,
// by one connection its gate lets a waiter open without a look once
// climbSettle has passed (nudgeWhenSettled), the look on which decides
// the next.
//
// A quiet instance (every backend but the one its yielding asks over idle
// for more than a second) on a server elastic sharing keeps one slot short
// of full is never made to yield (yield.go waits for a full server). So a
// busy route with callers waiting that sees quiet instances holding
// backends they can give back takes the free slots, headroom included, and
// keeps them for at most keepFor: the server is full, the quiet ones give
// their idle connections back, and a later look finds room. Quiet
// backends that are never given back (a listener's, a route with yielding
// off) would otherwise keep the headroom slot taken for good, so once
// keepFor has passed without the quiet ones' count changing, the route
// keeps to its share again until it changes (keepLatch).

const (
	// viewEvery bounds how often a route asks once the picture has
	// settled.
	viewEvery = time.Second
	// settleFirst is the gap after a look that changed the picture (the
	// first look, or one that saw another number of live instances or a
	// new pressure): instances that start together see
	// each other only as they connect, so a busy route looks again
	// soon, doubling the gap while nothing changes, up to viewEvery.
	settleFirst = 100 * time.Millisecond
	// spareRecheck is how often a busy route asks while the server had
	// slots to spare at its last look and has refused it nothing since.
	spareRecheck = 5 * time.Second
	// viewTimeout bounds one question.
	viewTimeout = time.Second
	// refusedLately is how long after a refusal a busy route keeps asking
	// every viewEvery even when its last look found room: the server
	// refused it, so room there comes and goes.
	refusedLately = 10 * time.Second
	// keepFor bounds how long a route keeps slots it took while quiet
	// instances held idle connections (fairShare.limit): long enough for
	// their yielding (YieldAfter, then a question each yieldCheckEvery) to
	// see the full server and give them back.
	keepFor = 3 * yieldCheckEvery
)

// elastic is a route's elastic-sharing state; nil when the route does not
// share (through a pooler, or Config.NoElastic).
type elastic struct {
	me      instanceKey
	weight  func(app string) int
	planned map[string]int // planned instances per app (SUPAPOOL_BUDGET); nil without a plan

	asking   atomic.Bool // a view is being asked: one at a time
	shedding atomic.Bool // a release is closing a connection above the share
	nudging  atomic.Bool // nudgeWhenSettled waits: one at a time
	// above: the route may hold more connections than its limit; set by
	// every look that leaves a limit (apply: connections still being
	// opened, or opened by Acquire, are not in its count), cleared by the
	// release that finds the route within it (shed), so that releases
	// within the limit do not count the route's connections (a lock in
	// pgxpool) every time.
	above    atomic.Bool
	nextAt   atomic.Int64 // UnixNano before which no view is asked
	gap      atomic.Int64 // the wait after the last look, settleFirst doubling up to viewEvery
	spareAt  atomic.Int64 // UnixNano of the last view, or of the route's start
	pressure atomic.Int32 // a pressure, written by the one asking
	ceil     atomic.Int32 // the limit the gate keeps to, 0 for none
	refusals atomic.Int64 // route.retried at the last view
	refused  atomic.Int64 // UnixNano of the last view that found new refusals
	// seenHeld is the route's connections when its last look was asked
	// (lowered with the gate's cap, forget): climbing above it needs a
	// new look (climbLook).
	seenHeld atomic.Int32
	// roseAt is the UnixNano of the last look that saw more live
	// instances than the one before it (the first look always does), and
	// lookAt that of the last look: the picture is settled when no look
	// for climbSettle has seen instances arrive (settled).
	roseAt, lookAt atomic.Int64
	views          atomic.Int64
	closed         atomic.Int64

	// seen and keep are read and written only by the one asking (asking
	// is held): what the last look saw, and whether the route may keep
	// slots taken while quiet instances hold idle ones.
	seen viewSummary
	keep keepLatch

	// mu guards recent and logged; held for bookkeeping only.
	mu     sync.Mutex
	recent minuteCount
	logged bool // the hidden-backends notice
}

func newElastic(name string, weights, instances map[string]int) *elastic {
	n := appname.Parse(name)
	e := &elastic{
		me:      instanceKey{n.App, n.Instance},
		planned: instances,
		weight: func(app string) int {
			if w, ok := weights[app]; ok {
				return w
			}
			return 1
		},
	}
	// A route busy from the start asks once viewEvery has passed, even
	// if nothing refused it: it may have taken its cap before the server
	// filled up.
	e.spareAt.Store(time.Now().Add(-spareRecheck).UnixNano())
	e.gap.Store(int64(settleFirst))
	return e
}

// viewSummary is what a look saw that, when it changes, means the
// instances have not settled yet. Not the share: it also moves with
// backends that carry no instance id, such as logins not yet named, which
// come and go while nothing settles.
type viewSummary struct {
	live     int
	pressure pressure
}

// settle sets the gap before the next look from what this one saw: short
// again when the picture changed, doubled (up to viewEvery) when not. It
// records when the look came (lookAt) and, when it saw more live
// instances than the last one (the first look always does: the instance
// itself arrived), roseAt too (settled).
func (e *elastic) settle(now viewSummary) {
	gap := min(2*time.Duration(e.gap.Load()), viewEvery)
	if now != e.seen {
		gap = settleFirst
	}
	at := time.Now().UnixNano()
	if now.live > e.seen.live {
		e.roseAt.Store(at)
	}
	e.lookAt.Store(at)
	e.seen = now
	e.gap.Store(int64(gap))
	e.nextAt.Store(time.Now().Add(gap).UnixNano())
}

// releaseAction is what elastic sharing did with a connection given back.
type releaseAction int

const (
	releaseKeep   releaseAction = iota // nothing: release it as usual
	releaseClosed                      // closed it (above the share)
	releaseAsking                      // asks the server on it, then gives it and the gate place back
)

// onRelease runs for every connection a gated caller gives back. Its
// common path is three atomic loads.
func (r *route) onRelease(c *pgxpool.Conn) releaseAction {
	e := r.elastic
	if e.ceil.Load() > 0 && r.shed(c) {
		return releaseClosed
	}
	now := time.Now().UnixNano()
	if now < e.nextAt.Load() || !r.viewDue(now) || !e.asking.CompareAndSwap(false, true) {
		return releaseKeep
	}
	e.nextAt.Store(now + int64(viewEvery)) // until the look sets the gap (settle)
	r.bg.Add(1)
	go r.askAndRelease(c)
	return releaseAsking
}

// viewDue reports whether a route may ask now that the gap after its last
// question (settle) has passed: always while the server is full or after
// a refusal; while the route is busy, every time while the picture
// settles, while it keeps to a limit or for refusedLately after a
// refusal, and every spareRecheck otherwise.
func (r *route) viewDue(now int64) bool {
	e := r.elastic
	if pressure(e.pressure.Load()) == pressureFull || r.retried.Load() != e.refusals.Load() {
		return true
	}
	busy := r.gate.nwait.Load() > 0 || r.gate.inUse.Load() >= r.gate.limit()
	return busy && (e.gap.Load() < int64(viewEvery) || e.ceil.Load() > 0 || now-e.refused.Load() < int64(refusedLately) || now-e.spareAt.Load() >= int64(spareRecheck))
}

// climbFree is how many connections a route opens without looking at
// the server first; each one beyond needs a look asked while the route
// held all the others (climbLook).
const climbFree = 2

// climbSettle is how long no look may have seen instances arrive before
// a route climbs past climbFree (settled).
const climbSettle = 300 * time.Millisecond

// climbSettleOff lets routes climb on any look, settled or not, as before
// the rule: for the side-by-side benchmark of what it changes
// (BenchmarkElasticClimb, through WithoutClimbSettle in a test file).
var climbSettleOff atomic.Bool

// settled reports whether the looks so far show no instance arriving for
// climbSettle: the last look came at least climbSettle after the last one
// that saw more live instances than before.
func (e *elastic) settled() bool {
	return climbSettleOff.Load() || e.lookAt.Load()-e.roseAt.Load() >= int64(climbSettle)
}

// climbLook reports whether the route, holding held connections, may
// open one more now; c is the connection an acquire just got, before its
// caller has it. A route that opened a connection since its last look
// asks again first, on c: instances starting together see each other
// only as they connect, and a look taken before the route's newest
// connection may have seen a server still half empty. Without it, the
// first instances to connect climbed to their caps on such a look, and
// the slots they closed again once they saw the others had cost a login
// each at the busiest moment of a storm.
//
// Nor does it climb while the looks show instances arriving (settled):
// each one that arrives shrinks every share, and a route that climbed on
// a picture without it sheds again once it is seen, at the price of a
// login, while the late one waits for the slot. Once climbSettle has
// passed since the last arrival seen, the next acquire at the cap looks
// again; when none comes, nudgeWhenSettled lets one waiter climb.
//
// While another look is under way the route does not climb: that look,
// once its connection is back, admits a waiter whose acquire climbs on
// it. The look is the route's, not the caller's: it runs on a context of
// its own, bounded by viewTimeout (a look takes about a millisecond), so
// that a caller's deadline or cancellation cannot cut it short and cost
// the caller the connection it waited for, and the caller's tracer does
// not see it. usable is false when the look broke c (viewTimeout
// mid-protocol): the caller must not have it.
func (r *route) climbLook(c *pgxpool.Conn, held int32) (climb, usable bool) {
	e := r.elastic
	if e == nil || held < climbFree {
		return true, true
	}
	seen, settled := e.seenHeld.Load(), e.settled()
	if seen >= held && settled {
		return true, true
	}
	if !settled && time.Now().UnixNano()-e.roseAt.Load() < int64(climbSettle) {
		// Instances arrived too lately for a look now to find the
		// picture settled.
		r.nudgeWhenSettled()
		return false, true
	}
	if !e.asking.CompareAndSwap(false, true) {
		return false, true
	}
	defer e.asking.Store(false)
	lctx, cancel := context.WithTimeout(context.Background(), viewTimeout)
	defer cancel()
	v, err := r.look(lctx, c)
	// Even a failed look lets the route climb: the limit of the last
	// good one (if any) still holds, and without a view it would
	// otherwise stay at two for good.
	e.sawHeld(seen, held)
	if err != nil {
		return true, !brokenBy(lctx, c)
	}
	r.closeIdle(r.apply(v))
	if !e.settled() {
		r.nudgeWhenSettled()
		return false, true
	}
	return true, true
}

// nudgeWhenSettled makes sure that a route that did not climb because
// instances arrived lately climbs once climbSettle has passed, even when
// no release comes to look again: its callers may hold every connection
// (long queries, streamed rows). Unless a look came meanwhile (a release
// or acquire that could look again), the gate then lets one waiter climb
// (gate.nudge), whose acquire looks on the connection it opened. One
// goroutine at a time, counted in the Pool's bg and ended by Close.
func (r *route) nudgeWhenSettled() {
	e := r.elastic
	if !e.nudging.CompareAndSwap(false, true) {
		return
	}
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		defer e.nudging.Store(false)
		at := e.lookAt.Load()
		t := time.NewTimer(e.untilSettled())
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-r.closing:
				return
			}
			switch nudge, stop, last := e.nudgeThen(at); {
			case nudge:
				r.gate.nudge()
				return
			case stop:
				return
			default:
				at = last
				t.Reset(e.untilSettled())
			}
		}
	}()
}

// untilSettled is the time left until a look could find the picture
// settled (climbSettle after the last arrival seen), and a millisecond.
func (e *elastic) untilSettled() time.Duration {
	return max(time.Duration(e.roseAt.Load()+int64(climbSettle)-time.Now().UnixNano()), 0) + time.Millisecond
}

// nudgeThen is what a nudge that waited since the look at does once
// climbSettle has passed since the last arrival seen: nudge the gate when
// no look came meanwhile; stop when one did and found the picture settled
// (the route climbs on it, or on the next acquire); otherwise, a look saw
// another arrival, wait again from the last look, last.
func (e *elastic) nudgeThen(at int64) (nudge, stop bool, last int64) {
	last = e.lookAt.Load()
	if last == at {
		return true, false, last
	}
	return false, e.settled(), last
}

// sawHeld records that a look was asked while the route held held
// connections, unless forget lowered seenHeld from seen while it was
// asked (the lower value then stands).
func (e *elastic) sawHeld(seen, held int32) {
	e.seenHeld.CompareAndSwap(seen, held)
}

// forget lowers what the last look covers to held connections, when the
// gate's cap drops to them (a refusal, or a quiet route that gave its
// connections back): climbing above them again needs a new look.
func (e *elastic) forget(held int32) {
	if e == nil {
		return
	}
	for {
		seen := e.seenHeld.Load()
		if seen <= held || e.seenHeld.CompareAndSwap(seen, held) {
			return
		}
	}
}

// shed closes c instead of giving it back when the route holds more than
// its share. One release at a time decides (a try-lock, so that two
// releases do not both close the last connection above the share).
func (r *route) shed(c *pgxpool.Conn) bool {
	e := r.elastic
	if !e.above.Load() || !e.shedding.CompareAndSwap(false, true) {
		return false
	}
	ceil := e.ceil.Load()
	over := ceil > 0 && r.established() > ceil && !r.isClosing()
	var conn *pgx.Conn
	if over {
		conn = c.Hijack() // leaves pgxpool's count before the next release looks
	} else {
		// Within the limit it was checked against. Cleared before the
		// limit is read again: apply sets the limit before above, so a
		// look that changed it meanwhile is not lost.
		e.above.Store(false)
		if e.ceil.Load() != ceil {
			e.above.Store(true)
		}
	}
	e.shedding.Store(false)
	if over {
		r.closeHijacked(conn)
		r.countShed(1)
	}
	return over
}

// askAndRelease asks the server on c, applies the answer, and gives c
// and its caller's gate place back. It runs on its own goroutine, counted
// in the Pool's bg, which Close waits for; the question is bounded by
// viewTimeout.
func (r *route) askAndRelease(c *pgxpool.Conn) {
	e := r.elastic
	defer r.bg.Done()
	// left runs after asking is cleared, so that the waiter it admits
	// may look itself if it must (climbLook).
	defer r.left()
	defer e.asking.Store(false)
	pc := c.Conn().PgConn()
	if r.isClosing() || pc.IsBusy() || pc.TxStatus() != 'I' {
		c.Release()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), viewTimeout)
	defer cancel()
	held, seen := r.established(), e.seenHeld.Load()
	v, err := r.look(ctx, c)
	// Before c goes back, so that the waiter it admits may climb on this
	// look (climbLook). Even a failed look counts, as there.
	e.sawHeld(seen, held)
	if err != nil {
		if brokenBy(ctx, c) {
			r.closeConn(c)
			return
		}
		c.Release()
		return
	}
	over := r.apply(v)
	if over > 0 && !r.isClosing() {
		r.closeConn(c)
		r.countShed(1)
		over--
	} else {
		c.Release()
	}
	r.closeIdle(over)
}

// look asks the server on c for its view (one at a time: asking is
// held), with the bookkeeping every look does.
func (r *route) look(ctx context.Context, c *pgxpool.Conn) (serverView, error) {
	e := r.elastic
	if n := r.retried.Load(); e.refusals.Swap(n) != n {
		e.refused.Store(time.Now().UnixNano())
	}
	v, err := askView(ctx, c.Conn())
	e.spareAt.Store(time.Now().UnixNano())
	if err != nil {
		r.log.Debug("supapool: elastic sharing could not read pg_stat_activity", zap.Error(err))
		return serverView{}, err
	}
	e.views.Add(1)
	r.noteHidden(v)
	return v, nil
}

// brokenBy reports whether a look on c that failed left it unusable: cut
// short by ctx, it is mid-protocol.
func brokenBy(ctx context.Context, c *pgxpool.Conn) bool {
	return ctx.Err() != nil || c.Conn().IsClosed()
}

// closeIdle closes up to n of the route's idle connections (above its
// limit) and counts them as shed.
func (r *route) closeIdle(n int) {
	if n <= 0 || r.isClosing() || r.pool.Stat().IdleConns() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), viewTimeout)
	idle := r.pool.AcquireAllIdle(ctx)
	cancel()
	closed := 0
	for _, ic := range idle {
		if closed < n {
			r.closeConn(ic)
			closed++
		} else {
			ic.Release()
		}
	}
	if closed > 0 {
		r.countShed(int64(closed))
	}
}

// apply sets the route's limit from view v and returns how many
// connections the route holds above it (0 when none, or no limit); one
// asked on is counted among them.
func (r *route) apply(v serverView) (over int) {
	e := r.elastic
	held := r.established()
	fs := v.share(e.me, e.weight, e.planned)
	// The instance's backends on its other routes (and lanes) count
	// against its share too.
	other := max(0, fs.mine-int(held))
	target := int32(max(fs.share-other, 1))
	if fs.fits {
		// The plan fits: this route may keep the plan's connections. The
		// view's count of the instance's other backends is not trusted
		// here, since a backend that pgxpool is replacing shows in it
		// beside its successor for a moment.
		target = int32(fs.share)
	}
	target = max(target, r.pinned.Load()+1)
	was := pressure(e.pressure.Load())
	p := was.next(fs.free)
	e.pressure.Store(int32(p))
	e.settle(viewSummary{live: fs.live, pressure: p})
	if held < target && fs.free > 0 {
		// Below its share with a slot free on the server (the headroom
		// one, if need be: an instance above its share gives one back at
		// its next look): a refusal's pause in the gate's climbing
		// (gate.full) is over.
		r.gate.unpause()
	}
	waiting := r.gate.nwait.Load() > 0
	keep := e.keep.allow(time.Now(), p == pressureFull && fs.idle > 0 && waiting, fs.idle)
	ceil := fs.limit(p, held, target, waiting, keep, r.gate.max)
	if old := e.ceil.Swap(ceil); old != ceil || p != was {
		r.log.Debug("supapool: elastic share",
			zap.Int32("limit", ceil), zap.Int("share", fs.share), zap.Int("instances", fs.live),
			zap.Int("free", fs.free), zap.Int("clients", fs.clients), zap.Int32("held", held))
	}
	r.gate.setCeil(ceil)
	if ceil == 0 {
		return 0
	}
	e.above.Store(true)
	if held <= ceil {
		return 0
	}
	return int(held - ceil)
}

// keepLatch bounds the rule that keeps slots taken while quiet instances
// hold idle ones (fairShare.limit) to keepFor from its first use while
// their idle backends stay the same: unchanged for that long, they are not
// being given back (a listener's connection, a route that never yields),
// and the route keeps to its share until their count changes.
type keepLatch struct {
	since time.Time // when the rule first applied with this idle count; zero before
	idle  int       // the quiet instances' idle backends
}

// allow reports whether the rule may apply at now, when it wants to
// (wanted) with the quiet instances holding idle backends.
func (k *keepLatch) allow(now time.Time, wanted bool, idle int) bool {
	if idle != k.idle {
		*k = keepLatch{idle: idle} // a change: the quiet ones are moving
	}
	if !wanted {
		return false
	}
	if k.since.IsZero() {
		k.since = now
	}
	return now.Sub(k.since) <= keepFor
}

// noteHidden says once, in the log, that the role cannot see every
// backend's details: they are still counted, by application_name.
func (r *route) noteHidden(v serverView) {
	if v.hidden == 0 {
		return
	}
	e := r.elastic
	e.mu.Lock()
	first := !e.logged
	e.logged = true
	e.mu.Unlock()
	if first {
		r.log.Info("supapool: elastic sharing: this role cannot see other roles' backends in full (grant pg_read_all_stats to see them); they are counted by application_name",
			zap.Int("hidden", v.hidden))
	}
}

func (r *route) countShed(n int64) {
	e := r.elastic
	e.closed.Add(n)
	e.mu.Lock()
	e.recent.add(time.Now(), n)
	e.mu.Unlock()
}

// elasticStat fills the route's elastic-sharing figures.
func (r *route) elasticStat(s *RouteStat) {
	e := r.elastic
	if e == nil {
		return
	}
	s.Elastic = true
	s.ElasticLimit = e.ceil.Load()
	s.ElasticViews = e.views.Load()
	s.ElasticClosed = e.closed.Load()
	e.mu.Lock()
	s.ElasticClosedLastMinute = e.recent.last(time.Now())
	e.mu.Unlock()
}

// minuteCount counts events over the last minute, in one-second buckets.
type minuteCount struct {
	sec [60]int64 // the Unix second each bucket counts
	n   [60]int64
}

func (m *minuteCount) add(now time.Time, k int64) {
	s := now.Unix()
	i := s % 60
	if m.sec[i] != s {
		m.sec[i], m.n[i] = s, 0
	}
	m.n[i] += k
}

func (m *minuteCount) last(now time.Time) int64 {
	s := now.Unix()
	var sum int64
	for i := range m.n {
		if s-m.sec[i] < 60 {
			sum += m.n[i]
		}
	}
	return sum
}
