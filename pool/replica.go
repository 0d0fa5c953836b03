package pool

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// Replica returns the read-replica lane: reads that tolerate a little
// staleness go to one of ReplicaURLs (round robin among those usable) and
// come back on the primary's pooled route when none is: every replica
// lags more than MaxReplicaLag, is down, or none is configured. A replica
// that fails under a call costs the caller no error: the read runs again
// on the next replica or the primary, and the replica is probed again with
// backoff. On the primary the call runs in a read-only transaction, so a
// write fails the same way everywhere: with ErrReplicaWrite. Session
// statements are refused as on the pooled route. Connections carry
// application_name APP/replica.
func (p *Pool) Replica() *Lane { return p.replicaLane }

// ErrReplicaWrite is matched (errors.Is) by the error of a write sent
// through Replica.
var ErrReplicaWrite = errors.New("pool: replica lane: a replica is read-only (SQLSTATE 25006); send writes to the primary (Pool's Exec, Query, Begin)")

// replicaWriteError wraps the server's 25006 so that both errors.Is
// (ErrReplicaWrite) and errors.As (*pgconn.PgError) find what they look for.
type replicaWriteError struct{ err error }

func (e *replicaWriteError) Error() string        { return ErrReplicaWrite.Error() + ": " + e.err.Error() }
func (e *replicaWriteError) Unwrap() error        { return e.err }
func (e *replicaWriteError) Is(target error) bool { return target == ErrReplicaWrite }

// replicaErr names the primary in a write's error.
func replicaErr(err error) error {
	var pgErr *pgconn.PgError
	if err != nil && errors.As(err, &pgErr) && pgErr.Code == "25006" {
		return &replicaWriteError{err}
	}
	return err
}

func replicaField(i int) string {
	return fieldName("ReplicaURLs["+strconv.Itoa(i)+"]", EnvReplicaURL)
}

// replicaAcquireTimeout bounds a replica call's wait for a connection, so
// that a replica starting up or saturated sends the call on to the next
// one instead of holding it.
const replicaAcquireTimeout = 2 * time.Second

// replica is one read replica's route and what the lag check last saw.
type replica struct {
	r     *route
	index int
	// usable is whether reads go here: the last check (or call) found it
	// up and within MaxReplicaLag. Written by the checker and by calls
	// that found it down.
	usable atomic.Bool
	lag    atomic.Int64 // nanoseconds, as last measured
	// downSince is when a call or check last found it down (unix nano),
	// 0 while up; the checker probes it again with backoff.
	downSince atomic.Int64
	failovers atomic.Int64
	lagChecks atomic.Int64 // lag queries sent (replica_lag.go)
}

// markDown takes r out of use after a failure and drops its connections,
// which are likely dead.
func (rep *replica) markDown(log *zap.Logger, err error) {
	if rep.downSince.CompareAndSwap(0, time.Now().UnixNano()) {
		log.Warn("supapool: replica down; reads go to the next replica or the primary", zap.Int("replica", rep.index), zap.String("error", Redact(err.Error())))
	}
	rep.usable.Store(false)
	rep.r.pool.Reset()
}

// replicas are the Pool's read replicas.
type replicas struct {
	list      []*replica
	next      atomic.Uint64
	maxLag    time.Duration
	fallbacks atomic.Int64 // calls sent to the primary because no replica was usable
}

// replicaDown reports whether err says the replica (not the statement)
// failed: the connection broke, the server is shutting down or starting,
// or no connection came within replicaAcquireTimeout.
func replicaDown(err error) bool {
	if err == nil || errors.Is(err, ErrSessionStatement) || errors.Is(err, ErrClosed) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	return true
}

// onReplica runs f on a usable replica, then on the next, and at last on
// the primary's pooled route (primary true), until one does not fail for
// the replica's sake.
func (p *Pool) onReplica(ctx context.Context, after LSN, f func(r *route, primary bool) error) error {
	if s := p.replicas; s != nil && len(s.list) > 0 {
		start := int(s.next.Add(1))
		for i := range s.list {
			rep := s.list[(start+i)%len(s.list)]
			if !rep.usable.Load() {
				continue
			}
			var err error
			if after != "" {
				err = waitReplayed(ctx, rep.r, after, s.maxLag)
			}
			if errors.Is(err, errBehind) {
				if ctx.Err() != nil {
					return fmt.Errorf("pool: replica lane: waiting for the replica to replay the write: %w", ctx.Err())
				}
				continue
			}
			if err == nil {
				err = f(rep.r, false)
			}
			if !replicaDown(err) || ctx.Err() != nil {
				return replicaErr(err)
			}
			rep.failovers.Add(1)
			rep.markDown(p.log, err)
		}
		s.fallbacks.Add(1)
	}
	return replicaErr(f(p.pooled, true))
}

// readOnly is the transaction a replica read runs in on the primary.
var readOnly = pgx.TxOptions{AccessMode: pgx.ReadOnly}

// newReplicas builds the replica routes and starts their lag checker.
func (p *Pool) newReplicas(ctx context.Context) error {
	s := &replicas{maxLag: p.cfg.MaxReplicaLag}
	for i, d := range p.cfg.replicas {
		limit := p.cfg.MaxConns
		if p.cfg.MaxReplicaConns > 0 {
			limit = p.cfg.MaxReplicaConns
		}
		r, err := p.newRoute(ctx, Replica, replicaField(i), d, limit, p.cfg.ConfigurePooled)
		if err != nil {
			for _, rep := range s.list {
				rep.r.pool.Close()
			}
			return err
		}
		if r.acquireTimeout == 0 || r.acquireTimeout > replicaAcquireTimeout {
			r.acquireTimeout = replicaAcquireTimeout
		}
		rep := &replica{r: r, index: i}
		rep.usable.Store(true) // until the first check says otherwise
		s.list = append(s.list, rep)
	}
	p.replicas = s
	if len(s.list) > 0 {
		p.bg.Add(1)
		go func() {
			defer p.bg.Done()
			p.checkReplicas()
		}()
	}
	return nil
}

// ReplicaStat describes one read replica.
type ReplicaStat struct {
	Route RouteStat
	// Usable is whether reads go there now; Lag is the replay lag last
	// measured.
	Usable bool
	Lag    time.Duration
	// Failovers counts calls that failed there and ran again elsewhere.
	Failovers int64
	// LagChecks counts the lag queries the background check sent there
	// (about one a second while the replica is in use, whatever the
	// read rate); calls never send one.
	LagChecks int64
}

func (s *replicas) stat() ([]ReplicaStat, int64) {
	if s == nil {
		return nil, 0
	}
	out := make([]ReplicaStat, len(s.list))
	for i, rep := range s.list {
		out[i] = ReplicaStat{Route: rep.r.stat(), Usable: rep.usable.Load(), Lag: time.Duration(rep.lag.Load()), Failovers: rep.failovers.Load(), LagChecks: rep.lagChecks.Load()}
	}
	return out, s.fallbacks.Load()
}

func (s *replicas) close() {
	if s == nil {
		return
	}
	for _, rep := range s.list {
		rep.r.stopYield()
		rep.r.pool.Close()
	}
}

// redactList shows ReplicaURLs as Config's String does: each URL with its
// password masked, comma-separated.
func redactList(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = Redact(u)
	}
	return strings.Join(out, ",")
}
