package budget

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Resource names what a spec runs out of.
type Resource string

const (
	// ResourceServerConns is the server's max_connections.
	ResourceServerConns Resource = "server connections"
	// ResourcePoolerClients is the pooler's client limit.
	ResourcePoolerClients Resource = "pooler clients"
)

// InfeasibleError says a spec's minimums do not fit, with the figures a
// reader needs to decide what to cut. [Plan] returns it (when both resources
// run short, joined with errors.Join; errors.As finds the server one first).
type InfeasibleError struct {
	// Replica is the name of the read replica (Spec.Replicas) that ran
	// short, or "" for the primary server.
	Replica string
	// Resource is what ran out.
	Resource Resource
	// Need is the least the spec needs of Resource; it includes Reserved
	// and PoolerServerConns.
	Need int
	// Limit is the spec's Limit, or the pooler's MaxClients.
	Limit int
	// Reserved is the spec's Reserved when Resource is server connections.
	Reserved int
	// PoolerServerConns is the pooler's ServerConns when Resource is server
	// connections and there is a pooler.
	PoolerServerConns int
	// Uses is what each app needs at least, largest first, apps that need
	// none of Resource left out.
	Uses []Use
}

// Use is one app's least demand on a resource.
type Use struct {
	App       string
	Instances int
	// Direct is the direct connections per instance counted in Total.
	Direct int
	// Pooled is the minimum pooled connections per instance counted in
	// Total: max(1, Min).
	Pooled int
	// Heavy is the heavy-lane connections per instance counted in
	// Total (App.Heavy).
	Heavy int
	// Replica is the replica-lane connections per instance counted in
	// Total (App.Replica); only in a replica server's error, which counts
	// nothing else.
	Replica int
	// Total is Instances × (Direct + Pooled + Heavy + Replica).
	Total int
}

// Over returns how far the spec is over the limit.
func (e *InfeasibleError) Over() int { return e.Need - e.Limit }

// Error lists the shortfall, then the apps' demands largest first, then
// what to change.
func (e *InfeasibleError) Error() string {
	var b strings.Builder
	b.WriteString("budget: ")
	if e.Replica != "" {
		fmt.Fprintf(&b, "replica %q: ", e.Replica)
	}
	fmt.Fprintf(&b, "needs %d %s, limit %d", e.Need, e.Resource, e.Limit)
	if e.Resource == ResourceServerConns {
		var extra []string
		if e.Reserved > 0 {
			extra = append(extra, fmt.Sprintf("reserved %d", e.Reserved))
		}
		if e.PoolerServerConns > 0 {
			extra = append(extra, fmt.Sprintf("pooler %d", e.PoolerServerConns))
		}
		if len(extra) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(extra, ", "))
		}
	}
	for i, u := range e.Uses {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(u.String())
	}
	b.WriteString("; ")
	switch {
	case e.Replica != "":
		fmt.Fprintf(&b, "lower instances or replica conns, or raise replica %q's limit", e.Replica)
	case e.Resource == ResourcePoolerClients:
		b.WriteString("lower instances or min conns, or raise the pooler's client limit")
	case e.PoolerServerConns > 0:
		b.WriteString("lower instances or direct conns, or raise the limit")
	default:
		b.WriteString("lower instances, direct or min conns, add a pooler, or raise the limit")
	}
	return b.String()
}

// String renders u as the error does: "web 4 instances × 3 direct = 12".
func (u Use) String() string {
	noun := "instances"
	if u.Instances == 1 {
		noun = "instance"
	}
	var per string
	if u.Replica > 0 && u.Direct == 0 && u.Pooled == 0 && u.Heavy == 0 {
		per = fmt.Sprintf("%d replica", u.Replica)
	} else if u.Replica > 0 {
		per = fmt.Sprintf("(%d direct + %d pooled + %d heavy + %d replica)", u.Direct, u.Pooled, u.Heavy, u.Replica)
	} else if u.Heavy > 0 {
		per = fmt.Sprintf("(%d direct + %d pooled + %d heavy)", u.Direct, u.Pooled, u.Heavy)
	}
	switch {
	case per != "":
	case u.Direct > 0 && u.Pooled > 0:
		per = fmt.Sprintf("(%d direct + %d pooled)", u.Direct, u.Pooled)
	case u.Direct > 0:
		per = fmt.Sprintf("%d direct", u.Direct)
	default:
		per = fmt.Sprintf("%d pooled", u.Pooled)
	}
	return fmt.Sprintf("%s %d %s × %s = %d", u.App, u.Instances, noun, per, u.Total)
}

// infeasible builds the error for resource r of a valid spec needing need.
func infeasible(s Spec, r Resource, need int64) *InfeasibleError {
	e := &InfeasibleError{Resource: r, Need: int(need), Limit: s.Limit}
	if r == ResourcePoolerClients {
		e.Limit = s.Pooler.MaxClients
	} else {
		e.Reserved = s.Reserved
		if s.Pooler != nil {
			e.PoolerServerConns = s.Pooler.ServerConns
		}
	}
	for _, a := range s.Apps {
		u := Use{App: a.Name, Instances: a.Instances}
		if r == ResourceServerConns {
			u.Direct = a.Direct
		}
		if r == ResourcePoolerClients || s.Pooler == nil {
			u.Pooled = max(1, a.Min)
			u.Heavy = a.Heavy
		}
		u.Total = u.Instances * (u.Direct + u.Pooled + u.Heavy)
		if u.Total > 0 {
			e.Uses = append(e.Uses, u)
		}
	}
	// Largest first, because those are the culprits worth cutting.
	sort.SliceStable(e.Uses, func(i, j int) bool { return e.Uses[i].Total > e.Uses[j].Total })
	return e
}

// infeasibleReplica builds the error for replica server r of a valid spec
// needing need.
func infeasibleReplica(s Spec, r ReplicaServer, need int64) *InfeasibleError {
	e := &InfeasibleError{Replica: r.Name, Resource: ResourceServerConns, Need: int(need), Limit: r.Limit, Reserved: r.Reserved}
	for _, a := range s.Apps {
		if a.Replica > 0 {
			e.Uses = append(e.Uses, Use{App: a.Name, Instances: a.Instances, Replica: a.Replica, Total: a.Instances * a.Replica})
		}
	}
	sort.SliceStable(e.Uses, func(i, j int) bool { return e.Uses[i].Total > e.Uses[j].Total })
	return e
}

// joinInfeasible keeps both explanations when both resources run short, so
// a reader fixes the spec in one pass.
func joinInfeasible(errs ...*InfeasibleError) error {
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}
