package pool

// Stat is a snapshot of a Pool's routes and supapool's own counters.
type Stat struct {
	Pooled RouteStat
	Direct RouteStat
	// Heavy is the heavy lane (Pool.Heavy).
	Heavy RouteStat
	// Replicas are the read replicas, in ReplicaURLs order.
	Replicas []ReplicaStat
	// ReplicaFallbacks counts Replica calls that went to the primary
	// because no replica was usable.
	ReplicaFallbacks int64
	// Refused counts session statements refused on the pooled route and
	// the heavy lane.
	Refused int64
	// Listener describes the listener; zero until Listener is first used.
	Listener ListenerStat
}

// RouteStat describes one route.
type RouteStat struct {
	Mode PoolerMode // what the route's URL reaches
	// MaxConns is the configured cap; Cap the cap in force now: lower
	// while the route is opening its first connections (it opens them
	// one at a time) and after the server said it was full.
	MaxConns, Cap int32
	// Connections as pgxpool counts them (TotalConns includes those being
	// opened).
	TotalConns, AcquiredConns, IdleConns int32
	// Routed counts calls sent to this route; Retried counts connection
	// attempts refused because the server or pooler was full and tried
	// again; ServerFull counts callers whose context ended while waiting
	// (they got ErrServerFull).
	Routed, Retried, ServerFull int64
	// StaleRetries counts statements run again because a schema change
	// made a cached description stale; each retires the route's older
	// connections.
	StaleRetries int64
	// ExecMode is the pooled route's exec mode behind a transaction
	// pooler: chosen by supapool's probe or by the user (execmode.go).
	ExecMode ExecModeStat
	// Elastic is true when the route shares a full server with other
	// instances (elastic.go). ElasticLimit is the connections it keeps to
	// now, its fair share, while the server is full; 0 when there is
	// room (no limit but MaxConns). ElasticViews counts its looks at
	// pg_stat_activity; ElasticClosed counts connections it closed to
	// give their slots to other instances, and ElasticClosedLastMinute
	// those of the last 60 seconds: the churn sharing causes.
	Elastic                     bool
	ElasticLimit                int32
	ElasticViews, ElasticClosed int64
	ElasticClosedLastMinute     int64
}

// Stat returns a snapshot of the pool's state.
func (p *Pool) Stat() Stat {
	s := Stat{
		Pooled:  p.pooled.stat(),
		Direct:  p.direct.stat(), // zero when the direct route is off
		Heavy:   p.heavy.stat(),
		Refused: p.refused.Load(),
	}
	s.Replicas, s.ReplicaFallbacks = p.replicas.stat()
	p.mu.Lock()
	l := p.listener
	p.mu.Unlock()
	if l != nil {
		s.Listener = l.Stat()
	}
	return s
}

func (r *route) stat() RouteStat {
	if r == nil {
		return RouteStat{}
	}
	ps := r.pool.Stat()
	s := RouteStat{
		Mode:          r.mode,
		MaxConns:      ps.MaxConns(),
		Cap:           r.gate.limit(),
		TotalConns:    ps.TotalConns(),
		AcquiredConns: ps.AcquiredConns(),
		IdleConns:     ps.IdleConns(),
		Routed:        r.routed.Load(),
		Retried:       r.retried.Load(),
		ServerFull:    r.serverFull.Load(),
		StaleRetries:  r.gens.retries.Load(),
		ExecMode:      r.exec.stat(),
	}
	r.elasticStat(&s)
	return s
}
