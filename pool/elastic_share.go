package pool

import (
	"cmp"
	"slices"

	"github.com/supapool/supapool/internal/appname"
)

// Elastic sharing's arithmetic: from one look at pg_stat_activity, this
// instance's fair share of the server. Pure, so that every instance
// reading the same view computes the same split.

// headroom is the slots elastic sharing leaves free on a full server, so
// that an instance that starts while every other is busy finds one for its
// first connection (and so becomes visible to the others).
const headroom = 1

// serverView is one answer of the view query (elastic_view.go).
type serverView struct {
	usable int           // slots an ordinary role may use (pgstat.Usable)
	hidden int           // client backends whose details the role may not see
	rows   []clientCount // client backends per application_name
}

// clientCount is how many client backends one application_name holds.
type clientCount struct {
	name  string
	n     int
	quiet int // of n, backends idle for more than a second (pgstat.Quiet)
}

// instanceKey names an instance: an app and its instance id.
type instanceKey struct{ app, instance string }

func (k instanceKey) compare(o instanceKey) int {
	if c := cmp.Compare(k.app, o.app); c != 0 {
		return c
	}
	return cmp.Compare(k.instance, o.instance)
}

// fairShare is what a view says about one instance.
type fairShare struct {
	share   int // the instance's fair share of the server's slots, at least 1
	mine    int // client backends the instance holds (all its routes and lanes)
	free    int // usable slots no client backend holds (negative: over)
	live    int // instances holding at least one backend, this one included
	clients int // all client backends
	// idle is what other instances that are quiet (every backend of
	// theirs, or all but one, idle for more than a second) can give back
	// at the least: their backends but one each, since one may be a
	// listener's, which is never given back.
	idle int
	// deficit is the slots other instances that are not quiet lack to
	// reach their shares: free slots they may be waiting for, so not
	// slots to spare.
	deficit int
	// fits: every live instance is within the budget plan, so share is
	// the plan's and no route needs to shrink below it.
	fits bool
}

// share computes me's fair share of v. Backends whose application_name
// carries no instance id (other tools, pools with elastic sharing off, a
// pooler's server connections) are a fixed cost taken off the top; the
// rest, less headroom, is divided among the live instances in proportion
// to weight(app) (at least 1), by largest remainder, ties broken by app and
// instance so that every instance computes the same split. No share is
// below 1. With a SUPAPOOL_BUDGET plan (planned: instances per app) and
// live instances within it, each instance's share is exactly its weight,
// the plan's connections: the planner has checked that they fit, so a
// budget that fits closes nothing, whatever transient backends (logins
// not yet named, a tool's session) the view happens to see.
func (v serverView) share(me instanceKey, weight func(app string) int, planned map[string]int) fairShare {
	held := map[instanceKey]int{me: 0}
	quiet := map[instanceKey]int{}
	var fixed, clients int
	for _, r := range v.rows {
		clients += r.n
		n := appname.Parse(r.name)
		if n.Instance == "" {
			fixed += r.n
			continue
		}
		k := instanceKey{n.App, n.Instance}
		held[k] += r.n
		quiet[k] += r.quiet
	}
	keys := make([]instanceKey, 0, len(held))
	for k := range held {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, instanceKey.compare)
	fs := fairShare{mine: held[me], free: v.usable - clients, live: len(keys), clients: clients}
	isQuiet := func(k instanceKey) bool {
		// All but one: a quiet route's yielding asks the server over one
		// of its connections each second.
		n := held[k]
		return n > 0 && quiet[k] >= n-1 && quiet[k] > 0
	}
	for k, n := range held {
		if k != me && isQuiet(k) {
			fs.idle += n - 1
		}
	}
	shares, fits := v.shares(keys, fixed, weight, planned)
	i, _ := slices.BinarySearchFunc(keys, me, instanceKey.compare)
	fs.share, fs.fits = shares[i], fits
	for j, k := range keys {
		if k != me && !isQuiet(k) {
			fs.deficit += max(0, shares[j]-held[k])
		}
	}
	return fs
}

// shares splits v among the live instances keys (sorted), fixed slots
// taken off the top: the plan's connections when every instance is within
// it (fits), otherwise the usable slots less fixed ones and headroom in
// proportion to weight (at least 1), by largest remainder; never below 1.
func (v serverView) shares(keys []instanceKey, fixed int, weight func(app string) int, planned map[string]int) (shares []int, fits bool) {
	w := make([]int, len(keys))
	total := 0
	for i, k := range keys {
		w[i] = max(1, weight(k.app))
		total += w[i]
	}
	if withinPlan(keys, planned) {
		return w, true
	}
	shares = make([]int, len(keys))
	avail := v.usable - fixed - headroom
	if avail <= len(keys) || total == 0 {
		for i := range shares {
			shares[i] = 1
		}
		return shares, false
	}
	rem := make([]int, len(keys))
	left := avail
	for i := range keys {
		shares[i] = avail * w[i] / total
		rem[i] = avail * w[i] % total
		left -= shares[i]
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rem[b], rem[a]) })
	for _, i := range order[:left] {
		shares[i]++
	}
	for i := range shares {
		shares[i] = max(1, shares[i])
	}
	return shares, false
}

// limit is the connections a route keeps to after a look that found fs
// and pressure p, while it holds held and its share on this route is
// target (at least 1); waiting says callers wait in its gate, keep that
// it may still keep slots taken while quiet instances hold idle ones
// (keepLatch), and most is its cap (MaxConns). 0 means no limit but the
// cap.
func (fs fairShare) limit(p pressure, held, target int32, waiting, keep bool, most int32) int32 {
	ceil := target
	switch {
	case p == pressureFull && fs.idle > 0 && waiting && keep:
		// Quiet instances hold idle connections on a full server while
		// this one has callers waiting: take the free slots, headroom
		// included, and keep them while the quiet ones still hold
		// theirs (for at most keepFor). That fills the server, and the
		// quiet instances' yielding (yield.go), which waits for a full
		// server, gives theirs back; a later look finds room again. Busy
		// instances that reach for the same slot at once are refused and
		// wait for their own connections, as in any storm.
		ceil = max(target, held+int32(max(fs.free, 0)))
	case p != pressureFull:
		// Room: but free slots go first to busy instances below their
		// shares (deficit), which may be waiting for them; only the rest,
		// less headroom, is spare. Without spare the route keeps to its
		// share, so that one above it gives back what others lack; with
		// spare it grows by its part of it, since every live instance may
		// be looking at the same free slots at once.
		if spare := fs.free - headroom - fs.deficit; spare > 0 {
			ceil = max(target, held+int32(spare/max(1, fs.live)))
		}
	}
	if ceil >= most {
		return 0
	}
	return ceil
}

// withinPlan reports whether every live instance belongs to an app of the
// plan and no app has more live instances than the plan gives it.
func withinPlan(keys []instanceKey, planned map[string]int) bool {
	if planned == nil {
		return false
	}
	live := map[string]int{}
	for _, k := range keys {
		live[k.app]++
	}
	for app, n := range live {
		if n > planned[app] {
			return false
		}
	}
	return true
}

// pressure is elastic sharing's view of how full the server is, with
// hysteresis: a server turns full at headroom+1 free slots or fewer and
// roomy again only at headroom+3 or more, so a slot or two coming and going
// does not flip instances between shrinking and growing.
type pressure int

const (
	pressureUnknown pressure = iota // not asked yet
	pressureRoomy                   // slots to spare: routes grow to their caps, and ask rarely
	pressureFull                    // routes keep to their shares, and ask about once a second
)

// next is the pressure after a view with free slots free.
func (p pressure) next(free int) pressure {
	switch {
	case free <= headroom+1:
		return pressureFull
	case free >= headroom+3:
		return pressureRoomy
	case p == pressureUnknown:
		return pressureRoomy
	}
	return p
}
