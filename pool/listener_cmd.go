package pool

import (
	"context"
	"fmt"
	"sync/atomic"
)

// A command goes one way only:
//
//	pending --run takes it--> taken --run completes it--> done
//	pending --its caller's context ends--> withdrawn (run skips it)
//
// Both moves are a compare-and-swap from cmdPending, so exactly one of run
// and the caller wins: once run has taken a command it alone completes it
// (each of its steps is bounded, so the caller waits a bounded time), and
// a caller that withdrew returns its context's error knowing that run will
// never carry the command out. Run takes a Listen only when it can carry
// it out at once (a proven connection is up, or a configuration error
// answers it); until then the Listen stays pending and withdrawable.
type listenCmd struct {
	listen  bool
	channel string
	handler NotificationFunc
	done    chan error // buffered: written once, by run, after taking the command
	state   atomic.Int32
}

const (
	cmdPending int32 = iota
	cmdTaken
	cmdWithdrawn
)

// do queues a command for run and waits for its outcome.
func (l *Listener) do(ctx context.Context, cmd *listenCmd) error {
	if l.p.closed.Load() {
		return ErrClosed
	}
	l.startOnce.Do(func() {
		go l.run() // owner: close, which cancels l.ctx and waits for runDone
	})
	cmd.done = make(chan error, 1)
	l.enqueue(cmd)

	select {
	case err := <-cmd.done:
		return err
	case <-ctx.Done():
		if cmd.state.CompareAndSwap(cmdPending, cmdWithdrawn) {
			return l.withdrawn(cmd, ctx.Err())
		}
	case <-l.runDone:
		if cmd.state.CompareAndSwap(cmdPending, cmdWithdrawn) {
			return ErrClosed // run is gone and never took it
		}
	}
	// Run took it: it completes it shortly (every step it takes is
	// bounded), and before runDone closes.
	return <-cmd.done
}

// enqueue puts cmd in pending and gets run to look: it ends run's wait
// for a notification, or wakes it from a wait without a connection.
func (l *Listener) enqueue(cmd *listenCmd) {
	l.imu.Lock()
	defer l.imu.Unlock()
	l.pending = append(l.pending, cmd)
	if l.interrupt != nil {
		l.interrupt()
	}
	select {
	case l.wake <- struct{}{}:
	default: // a wake is queued already
	}
}

// setInterrupt makes f end run's current wait when a command arrives, and
// reports whether one is pending already.
func (l *Listener) setInterrupt(f context.CancelFunc) (queued bool) {
	l.imu.Lock()
	defer l.imu.Unlock()
	l.interrupt = f
	return len(l.pending) > 0
}

// withdrawn is the error of a command its caller gave up on before run
// took it: the context's error, with the last connection failure if the
// listener has no connection.
func (l *Listener) withdrawn(cmd *listenCmd, err error) error {
	verb := "listen"
	if !cmd.listen {
		verb = "unlisten"
	}
	if last := l.lastErr.Load(); last != nil {
		return fmt.Errorf("pool: %s %q: %w (the listener has no connection; last attempt: %v)", verb, cmd.channel, err, *last)
	}
	if !l.isConnected() {
		return fmt.Errorf("pool: %s %q: %w (the listener has no ready connection yet)", verb, cmd.channel, err)
	}
	return fmt.Errorf("pool: %s %q: %w", verb, cmd.channel, err)
}

// take hands run the oldest pending command it can carry out now: any
// command if listens is true, else Unlistens only (they need no
// connection). Withdrawn commands are dropped on the way. It returns nil
// when there is none.
func (l *Listener) take(listens bool) *listenCmd {
	l.imu.Lock()
	defer l.imu.Unlock()
	kept := l.pending[:0]
	var got *listenCmd
	for _, cmd := range l.pending {
		switch {
		case cmd.state.Load() == cmdWithdrawn:
			continue // its caller has returned
		case got != nil || (cmd.listen && !listens):
			kept = append(kept, cmd)
		case cmd.state.CompareAndSwap(cmdPending, cmdTaken):
			got = cmd
		}
	}
	clear(l.pending[len(kept):])
	l.pending = kept
	return got
}

// listenWaiting reports whether a Listen waits for a connection.
func (l *Listener) listenWaiting() bool {
	l.imu.Lock()
	defer l.imu.Unlock()
	for _, cmd := range l.pending {
		if cmd.listen && cmd.state.Load() == cmdPending {
			return true
		}
	}
	return false
}
