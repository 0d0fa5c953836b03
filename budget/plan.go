package budget

import (
	"errors"
	"math"
)

// Alloc is one instance's share: the caps its pool is configured with. The
// fields are int32 so they assign straight into a pool configuration.
type Alloc struct {
	// MaxConns caps the instance's pooled connections: through the pooler
	// when there is one, straight to the server otherwise.
	MaxConns int32
	// MaxDirectConns caps the connections that bypass the pooler.
	MaxDirectConns int32
	// MaxHeavyConns caps the heavy lane's connections (App.Heavy).
	MaxHeavyConns int32
	// MaxReplicaConns caps the replica lane's connections on each read
	// replica (App.Replica).
	MaxReplicaConns int32
}

// AppShare is one app's line in an [Allocation]: its per-instance caps and
// what all its instances together may hold.
type AppShare struct {
	Name      string
	Instances int
	// Alloc is per instance.
	Alloc Alloc
	// ServerConns is the server connections all instances may hold: direct
	// ones, plus pooled ones when there is no pooler.
	ServerConns int
	// PoolerClients is the pooler client slots all instances may hold; 0
	// without a pooler.
	PoolerClients int
	// Conns is Instances × (MaxConns + MaxDirectConns + MaxHeavyConns): the most client
	// connections the app may open, which live usage is compared against.
	// Replica connections are not in it: they go to other servers.
	Conns int
	// ReplicaConns is Instances × MaxReplicaConns: the connections all
	// instances may hold on each read replica.
	ReplicaConns int
}

// ReplicaShare is one read replica's line in an [Allocation].
type ReplicaShare struct {
	Name string
	// Limit and Reserved are the spec's.
	Limit, Reserved int
	// ServerConns is Reserved plus every app's ReplicaConns: never above
	// Limit.
	ServerConns int
}

// Allocation is a plan that fits: what [Plan] returns. It is immutable and
// safe for concurrent use. Its methods accept a nil receiver and then report
// nothing, so a caller whose budget is optional need not check.
type Allocation struct {
	spec          Spec
	allocs        []Alloc
	index         map[string]int
	serverConns   int
	poolerClients int
	replicas      []ReplicaShare
}

// Plan shares the server's connections among s.Apps, or explains with an
// [*InfeasibleError] why their minimums cannot fit. Invalid specs get an
// error naming each bad field.
//
// Direct connections are granted as asked. Pooled connections start at
// max(1, Min) per instance; what is left of the constrained resource (server
// connections without a pooler, pooler client slots with one) is then handed
// out one pooled connection per instance at a time, to the app whose
// instances hold the fewest connections for their weight, ties going to the
// app listed first, skipping apps at Max or whose instances no longer fit.
// The result is deterministic and never exceeds any limit.
//
// Each of s.Replicas is checked on its own: its Reserved plus every app's
// Replica × Instances must fit its Limit. Replica connections are granted
// as asked and never shared out. When several servers run short, the
// errors are joined, the primary's first.
func Plan(s Spec) (*Allocation, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.clone()
	replicas, replicaErrs := planReplicas(s)
	a, err := share(s)
	if err != nil || len(replicaErrs) > 0 {
		return nil, joinErrs(err, replicaErrs)
	}
	a.replicas = replicas
	return a, nil
}

// planReplicas checks every replica server of a valid spec.
func planReplicas(s Spec) ([]ReplicaShare, []*InfeasibleError) {
	var out []ReplicaShare
	var errs []*InfeasibleError
	for _, r := range s.Replicas {
		need := int64(r.Reserved)
		for _, a := range s.Apps {
			need += int64(a.Replica) * int64(a.Instances)
		}
		if need > int64(r.Limit) {
			errs = append(errs, infeasibleReplica(s, r, need))
			continue
		}
		out = append(out, ReplicaShare{Name: r.Name, Limit: r.Limit, Reserved: r.Reserved, ServerConns: int(need)})
	}
	return out, errs
}

// joinErrs returns the primary's error and the replicas' as one: the
// error itself when there is only one.
func joinErrs(primary error, replicas []*InfeasibleError) error {
	var all []error
	if primary != nil {
		all = append(all, primary)
	}
	for _, e := range replicas {
		all = append(all, e)
	}
	if len(all) == 1 {
		return all[0]
	}
	return errors.Join(all...)
}

// share plans the primary's connections of a valid, cloned spec.
func share(s Spec) (*Allocation, error) {
	n := len(s.Apps)
	inst := make([]int64, n)
	lo := make([]int64, n)
	hi := make([]int64, n)
	weight := make([]int64, n)

	// fixed is the server connections taken whatever the sharing: reserved,
	// the pooler's own, and every direct connection.
	fixed := int64(s.Reserved)
	if s.Pooler != nil {
		fixed += int64(s.Pooler.ServerConns)
	}
	var minPooled, heavy int64
	for i, a := range s.Apps {
		inst[i] = int64(a.Instances)
		lo[i] = int64(max(1, a.Min))
		hi[i] = math.MaxInt64
		if a.Max > 0 {
			hi[i] = int64(a.Max)
		}
		weight[i] = int64(max(1, a.Weight))
		fixed += int64(a.Direct) * inst[i]
		minPooled += lo[i] * inst[i]
		heavy += int64(a.Heavy) * inst[i]
	}
	// Heavy lanes are granted as asked, where pooled connections go.
	if s.Pooler == nil {
		fixed += heavy
	} else {
		minPooled += heavy
	}

	var room int64 // what pooled connections may use beyond their minimums
	if s.Pooler == nil {
		if need := fixed + minPooled; need > int64(s.Limit) {
			return nil, infeasible(s, ResourceServerConns, need)
		}
		room = int64(s.Limit) - fixed - minPooled
	} else {
		serverShort := fixed > int64(s.Limit)
		clientsShort := minPooled > int64(s.Pooler.MaxClients)
		switch {
		case serverShort && clientsShort:
			return nil, joinInfeasible(infeasible(s, ResourceServerConns, fixed), infeasible(s, ResourcePoolerClients, minPooled))
		case serverShort:
			return nil, infeasible(s, ResourceServerConns, fixed)
		case clientsShort:
			return nil, infeasible(s, ResourcePoolerClients, minPooled)
		}
		room = int64(s.Pooler.MaxClients) - minPooled
	}

	pooled := append([]int64(nil), lo...)
	for i := range hi {
		// Bounding "no cap" by what could ever fit keeps the search finite.
		hi[i] = min(hi[i], lo[i]+room/inst[i])
	}
	fill(room, inst, pooled, hi, weight)

	a := &Allocation{
		spec:   s,
		allocs: make([]Alloc, n),
		index:  make(map[string]int, n),
	}
	a.serverConns = s.Reserved
	if s.Pooler != nil {
		a.serverConns += s.Pooler.ServerConns
	}
	for i, app := range s.Apps {
		a.allocs[i] = Alloc{MaxConns: int32(pooled[i]), MaxDirectConns: int32(app.Direct), MaxHeavyConns: int32(app.Heavy), MaxReplicaConns: int32(app.Replica)}
		a.index[app.Name] = i
		sh := a.share(i)
		a.serverConns += sh.ServerConns
		a.poolerClients += sh.PoolerClients
	}
	return a, nil
}

// fill hands out pooled connections beyond the minimums already in p, in
// the order a one-at-a-time greedy would: the next connection goes to the
// app with the smallest (p+1)/weight, earlier apps first on ties, skipping
// apps at hi or whose instances cost more than the room left.
//
// Doing that one connection at a time would take as many steps as there are
// connections, so fill alternates two moves that give the same result. A
// level step finds the highest level v such that granting every app all
// connections with (p+1)/weight ≤ v still fits, and grants them. A tie step
// then takes the apps whose next connection is at the lowest level (which
// cannot all fit, or the level step would have taken them) in order, granting
// those that fit. Each tie step leaves at least one app that can never fit
// again, so there are at most 2×apps steps.
func fill(room int64, inst, p, hi, weight []int64) {
	n := len(p)
	eligible := make([]bool, n)
	update := func() bool {
		any := false
		for i := range n {
			eligible[i] = p[i] < hi[i] && inst[i] <= room
			any = any || eligible[i]
		}
		return any
	}
	// cost is what granting every eligible app all connections up to level
	// num/den would add, stopping early once it exceeds room.
	cost := func(num, den int64) int64 {
		var c int64
		for j := range n {
			if !eligible[j] {
				continue
			}
			t := min(hi[j], num*weight[j]/den)
			if t > p[j] {
				c += inst[j] * (t - p[j])
				if c > room {
					return c
				}
			}
		}
		return c
	}
	for update() {
		// Level step. For each app, the highest k whose level k/weight fits;
		// the best level over all apps is the answer.
		bestNum, bestDen := int64(0), int64(0)
		for i := range n {
			if !eligible[i] {
				continue
			}
			lo, up := p[i], hi[i] // cost(lo) is 0, so lo always fits
			for lo < up {
				mid := lo + (up-lo+1)/2
				if cost(mid, weight[i]) <= room {
					lo = mid
				} else {
					up = mid - 1
				}
			}
			if lo > p[i] && (bestDen == 0 || lo*bestDen > bestNum*weight[i]) {
				bestNum, bestDen = lo, weight[i]
			}
		}
		if bestDen != 0 {
			for j := range n {
				if !eligible[j] {
					continue
				}
				if t := min(hi[j], bestNum*weight[j]/bestDen); t > p[j] {
					room -= inst[j] * (t - p[j])
					p[j] = t
				}
			}
			if !update() {
				return
			}
		}

		// Tie step at the lowest next level.
		nextNum, nextDen := int64(0), int64(0)
		for i := range n {
			if eligible[i] && (nextDen == 0 || (p[i]+1)*nextDen < nextNum*weight[i]) {
				nextNum, nextDen = p[i]+1, weight[i]
			}
		}
		for i := range n {
			if eligible[i] && (p[i]+1)*nextDen == nextNum*weight[i] && inst[i] <= room {
				p[i]++
				room -= inst[i]
			}
		}
	}
}

func (a *Allocation) share(i int) AppShare {
	app, al := a.spec.Apps[i], a.allocs[i]
	sh := AppShare{
		Name:         app.Name,
		Instances:    app.Instances,
		Alloc:        al,
		ServerConns:  app.Instances * int(al.MaxDirectConns),
		Conns:        app.Instances * int(al.MaxConns+al.MaxDirectConns+al.MaxHeavyConns),
		ReplicaConns: app.Instances * int(al.MaxReplicaConns),
	}
	if a.spec.Pooler == nil {
		sh.ServerConns += app.Instances * int(al.MaxConns+al.MaxHeavyConns)
	} else {
		sh.PoolerClients = app.Instances * int(al.MaxConns+al.MaxHeavyConns)
	}
	return sh
}

// For returns the per-instance caps of app, or the zero Alloc when the plan
// has no such app; use [Allocation.Lookup] to tell the two apart.
func (a *Allocation) For(app string) Alloc {
	al, _ := a.Lookup(app)
	return al
}

// Lookup returns the per-instance caps of app and whether the plan has it.
func (a *Allocation) Lookup(app string) (Alloc, bool) {
	if a == nil {
		return Alloc{}, false
	}
	i, ok := a.index[app]
	if !ok {
		return Alloc{}, false
	}
	return a.allocs[i], true
}

// Apps returns every app's share, in spec order. The slice is the caller's.
func (a *Allocation) Apps() []AppShare {
	if a == nil {
		return nil
	}
	out := make([]AppShare, len(a.allocs))
	for i := range a.allocs {
		out[i] = a.share(i)
	}
	return out
}

// Spec returns a copy of the spec this plan was made from.
func (a *Allocation) Spec() Spec {
	if a == nil {
		return Spec{}
	}
	return a.spec.clone()
}

// ServerConns returns the server connections the plan may use in all:
// reserved, the pooler's own, and every app's (see [AppShare.ServerConns]).
// It is never above the spec's Limit.
func (a *Allocation) ServerConns() int {
	if a == nil {
		return 0
	}
	return a.serverConns
}

// Replicas returns each read replica's line, in spec order; nil when the
// spec names none. The slice is the caller's.
func (a *Allocation) Replicas() []ReplicaShare {
	if a == nil || a.replicas == nil {
		return nil
	}
	return append([]ReplicaShare(nil), a.replicas...)
}

// PoolerClients returns the pooler client slots the plan may use in all; 0
// without a pooler. It is never above the pooler's MaxClients.
func (a *Allocation) PoolerClients() int {
	if a == nil {
		return 0
	}
	return a.poolerClients
}
