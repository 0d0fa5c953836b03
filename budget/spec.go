package budget

import (
	"errors"
	"fmt"
)

// maxCount bounds every count in a [Spec]. PostgreSQL's max_connections
// cannot exceed 262143, so a larger figure is a typo; the bound also keeps
// the planner's products inside int64 and every per-instance cap inside int32.
const maxCount = 1_000_000

// Spec describes one PostgreSQL server and the apps that share it. It is the
// input to [Plan] and the shape of a spec file (see [ParseSpec]).
//
// A Spec may be built in pieces (a Supabase tier supplies Limit and Pooler,
// a file supplies Apps); it is checked only when planned.
type Spec struct {
	// Limit is the server's max_connections.
	Limit int `json:"limit"`
	// Reserved is taken off Limit before any app: superuser-reserved slots,
	// dashboards, migrations, the monitor, the provider's own services.
	Reserved int `json:"reserved"`
	// Pooler is the transaction-mode pooler in front of the server, or nil
	// when apps connect straight to the server.
	Pooler *Pooler `json:"pooler,omitempty"`
	// Apps share what is left, in this order; the order breaks ties.
	Apps []App `json:"apps"`
	// Replicas are the server's read replicas (pool's Replica lane). Each
	// is a server of its own with its own max_connections, so each is
	// checked on its own: every app's Replica connections per instance
	// go to every replica, because a pool opens a route to each URL in
	// DATABASE_REPLICA_URL. None by default.
	Replicas []ReplicaServer `json:"replicas,omitempty"`
}

// ReplicaServer is one read replica, given as the primary's figures are.
type ReplicaServer struct {
	// Name identifies the replica in errors (say "r1" or its region).
	Name string `json:"name"`
	// Limit is the replica's max_connections.
	Limit int `json:"limit"`
	// Reserved is taken off Limit before any app: superuser slots, the
	// provider's own services and a pooler's server connections on the
	// replica (with a pooler in front, app connections are still counted
	// against Limit, which overstates their cost and so stays safe).
	Reserved int `json:"reserved"`
}

// Pooler describes a transaction-mode pooler (Supavisor, PgBouncer). Its
// server side is a fixed cost on the server; pooled connections then count
// against its client limit instead of the server's.
type Pooler struct {
	// ServerConns is how many server connections the pooler itself may
	// open (its pool size).
	ServerConns int `json:"server_conns"`
	// MaxClients is how many client connections the pooler accepts.
	MaxClients int `json:"max_clients"`
}

// App is one service, run as Instances identical processes. Every figure
// except Instances is per instance, because each instance configures its own
// pool.
type App struct {
	// Name identifies the app; the pool finds its caps by it.
	Name string `json:"name"`
	// Instances is how many processes run this app; at least 1.
	Instances int `json:"instances"`
	// Weight is the app's per-instance share of what is left after every
	// app has its minimum; 0 counts as 1.
	Weight int `json:"weight,omitempty"`
	// Min is the fewest pooled connections per instance; the planner never
	// gives fewer than 1, so 0 means 1.
	Min int `json:"min,omitempty"`
	// Max caps pooled connections per instance; 0 means no cap.
	Max int `json:"max,omitempty"`
	// Direct is how many connections per instance bypass the pooler
	// (LISTEN, session locks, transactions on the direct route,
	// migrations). It is granted as is, not shared, and every one counts
	// against Limit. 0 means none: a pool configured from the plan then
	// turns its direct route off, so Listen and Acquire(ctx, pool.Direct)
	// fail. A spec file that leaves direct out (or sets it to null) gets
	// 1 per instance: enough for a transaction, a session lock or a
	// migration (an app that listens wants 2: the listener holds one for
	// good). Write direct: 0 for none. In Go the field is taken as is.
	Direct int `json:"direct"`
	// Heavy is how many connections per instance the app's heavy lane
	// (pool's Heavy) may hold. They go where pooled connections go (the
	// pooler, or the server without one) and are granted as is, not
	// shared. Default 0, in a file and in Go: the plan counts none, and a
	// pool configured from it turns its heavy lane off (NoHeavy), so an
	// app opts in by writing heavy: 1 or more.
	Heavy int `json:"heavy,omitempty"`
	// Replica is how many connections per instance the app's replica lane
	// (pool's Replica) may hold on each of Spec.Replicas. They are granted
	// as is, not shared, and count against each replica's Limit only,
	// never the primary's. Default 0, in a file and in Go: an app opts in
	// with replica: 1 or more, and then the spec must name its replicas.
	Replica int `json:"replica,omitempty"`
}

// defaultDirect is the direct connections per instance of an app whose spec
// file leaves direct out (documented on App.Direct).
const defaultDirect = 1

// Validate reports every field that makes s unplannable, naming the field
// and the app. It does not check whether the apps fit: [Plan] does that and
// explains with an [InfeasibleError].
func (s Spec) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("budget: "+format, args...))
	}
	switch {
	case s.Limit < 1:
		add("limit must be at least 1, got %d", s.Limit)
	case s.Limit > maxCount:
		add("limit %d is above the most supported (%d)", s.Limit, maxCount)
	}
	switch {
	case s.Reserved < 0:
		add("reserved must not be negative, got %d", s.Reserved)
	case s.Limit >= 1 && s.Reserved >= s.Limit:
		add("limit %d must be above reserved %d", s.Limit, s.Reserved)
	}
	if p := s.Pooler; p != nil {
		checkCount(add, "pooler.", "server_conns", p.ServerConns, 1)
		checkCount(add, "pooler.", "max_clients", p.MaxClients, 1)
	}
	if len(s.Apps) == 0 {
		add("apps: none listed")
	}
	seen := make(map[string]int, len(s.Apps))
	for i, a := range s.Apps {
		label := appLabel(i, a.Name)
		if a.Name == "" {
			add("%s: name is empty", label)
		} else if j, dup := seen[a.Name]; dup {
			add("apps[%d]: name %q is already used by apps[%d]", i, a.Name, j)
		} else {
			seen[a.Name] = i
		}
		prefix := label + ": "
		checkCount(add, prefix, "instances", a.Instances, 1)
		checkCount(add, prefix, "weight", a.Weight, 0)
		checkCount(add, prefix, "min", a.Min, 0)
		checkCount(add, prefix, "max", a.Max, 0)
		checkCount(add, prefix, "direct", a.Direct, 0)
		checkCount(add, prefix, "heavy", a.Heavy, 0)
		checkCount(add, prefix, "replica", a.Replica, 0)
		if a.Replica > 0 && len(s.Replicas) == 0 {
			add("%sreplica is %d but the spec names no replica servers (replicas: [{name, limit, reserved}])", prefix, a.Replica)
		}
		if a.Max > 0 && a.Min > a.Max {
			add("%smin %d is above max %d", prefix, a.Min, a.Max)
		}
	}
	rseen := make(map[string]int, len(s.Replicas))
	for i, r := range s.Replicas {
		label := replicaLabel(i, r.Name)
		if r.Name == "" {
			add("%s: name is empty", label)
		} else if j, dup := rseen[r.Name]; dup {
			add("replicas[%d]: name %q is already used by replicas[%d]", i, r.Name, j)
		} else {
			rseen[r.Name] = i
		}
		checkCount(add, label+": ", "limit", r.Limit, 1)
		switch {
		case r.Reserved < 0:
			add("%s: reserved must not be negative, got %d", label, r.Reserved)
		case r.Limit >= 1 && r.Reserved >= r.Limit:
			add("%s: limit %d must be above reserved %d", label, r.Limit, r.Reserved)
		}
	}
	return errors.Join(errs...)
}

// replicaLabel names a replica server in messages, by name when it has one.
func replicaLabel(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("replicas[%d]", i)
	}
	return fmt.Sprintf("replica %q", name)
}

func checkCount(add func(string, ...any), prefix, field string, v, least int) {
	switch {
	case v < least && least == 0:
		add("%s%s must not be negative, got %d", prefix, field, v)
	case v < least:
		add("%s%s must be at least %d, got %d", prefix, field, least, v)
	case v > maxCount:
		add("%s%s %d is above the most supported (%d)", prefix, field, v, maxCount)
	}
}

// appLabel names an app in messages by its name when it has one, because
// that is what the reader wrote; the index is the fallback.
func appLabel(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("apps[%d]", i)
	}
	return fmt.Sprintf("app %q", name)
}

func (s Spec) clone() Spec {
	c := s
	if s.Pooler != nil {
		p := *s.Pooler
		c.Pooler = &p
	}
	c.Apps = append([]App(nil), s.Apps...)
	if s.Replicas != nil {
		c.Replicas = append([]ReplicaServer{}, s.Replicas...)
	}
	return c
}
