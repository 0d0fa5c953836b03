package pool

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// replicaCheckEvery is how often the lag of each replica in use is
// measured: one small query on a connection of its route.
const replicaCheckEvery = time.Second

// lagSQL is a replica's replay lag in seconds: 0 when it has replayed all
// it received (an idle primary sends nothing, so the age of the last
// replayed transaction would overstate it), else the age of the last
// transaction it replayed, or, when it has replayed none since it started,
// the time since it started; 0 on a server that is not in recovery.
const lagSQL = `select case when not pg_is_in_recovery() or pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0
	else extract(epoch from now() - coalesce(pg_last_xact_replay_timestamp(), pg_postmaster_start_time())) end::float8`

// checkReplicas measures each replica's lag about once a second, takes a
// replica out of use while it lags more than MaxReplicaLag, and probes a
// down one again with backoff (1s doubling to 30s). A replica no call has
// used yet is not checked, so New still opens no connection. It runs
// until the Pool closes; the Pool's bg group owns it.
func (p *Pool) checkReplicas() {
	s := p.replicas
	backoff := make([]time.Duration, len(s.list))
	nextProbe := make([]time.Time, len(s.list))
	t := time.NewTicker(replicaCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-p.closing:
			return
		case <-t.C:
		}
		for i, rep := range s.list {
			down := rep.downSince.Load() != 0
			if (!down && rep.r.routed.Load() == 0) || (down && time.Now().Before(nextProbe[i])) {
				continue
			}
			lag, err := p.measureLag(rep)
			if err != nil {
				if p.pooled.isClosing() {
					return
				}
				rep.markDown(p.log, err)
				backoff[i] = min(max(2*backoff[i], time.Second), 30*time.Second)
				nextProbe[i] = time.Now().Add(backoff[i])
				continue
			}
			backoff[i] = 0
			if rep.downSince.Swap(0) != 0 {
				p.log.Info("supapool: replica back", zap.Int("replica", rep.index))
			}
			rep.lag.Store(int64(lag))
			usable := lag <= s.maxLag
			if rep.usable.Swap(usable) != usable {
				p.log.Warn("supapool: replica lag crossed MaxReplicaLag", zap.Int("replica", rep.index), zap.Duration("lag", lag), zap.Duration("max_replica_lag", s.maxLag), zap.Bool("usable", usable))
			}
		}
	}
}

// measureLag runs lagSQL on a connection of rep's route (an idle one when
// it has one).
func (p *Pool) measureLag(rep *replica) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := rep.r.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	rep.lagChecks.Add(1)
	var secs float64
	if err := c.QueryRow(ctx, lagSQL).Scan(&secs); err != nil {
		return 0, err
	}
	return time.Duration(secs * float64(time.Second)), nil
}
