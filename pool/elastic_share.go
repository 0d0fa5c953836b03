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
	// idle is the backends held by other instances that are quiet: every
	// backend of theirs, or all but one, idle for more than a second.
	idle int
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
	for k, n := range held {
		// All but one: a quiet route's yielding asks the server over one
		// of its connections each second.
		if k != me && n > 0 && quiet[k] >= n-1 && quiet[k] > 0 {
			fs.idle += n
		}
	}

	avail := v.usable - fixed - headroom
	w := make([]int, len(keys))
	total := 0
	for i, k := range keys {
		w[i] = max(1, weight(k.app))
		total += w[i]
	}
	i, _ := slices.BinarySearchFunc(keys, me, instanceKey.compare)
	if withinPlan(keys, planned) {
		fs.share, fs.fits = w[i], true
		return fs
	}
	if avail <= len(keys) || total == 0 {
		fs.share = 1
		return fs
	}
	shares := make([]int, len(keys))
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
	fs.share = max(1, shares[i])
	return fs
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
