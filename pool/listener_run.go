package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// How the listener waits. Backoff between reconnect attempts stays short,
// so it resumes within about a second of the server coming back; after a
// configuration error it is longer (the error will not fix itself), but a
// new Listen tries again at once so that its caller hears the error.
// Every statement the listener sends is bounded by listenerOpTimeout.
const (
	listenerMinBackoff    = 50 * time.Millisecond
	listenerMaxBackoff    = time.Second
	listenerConfigBackoff = 10 * time.Second
	listenerOpTimeout     = 10 * time.Second
)

// run owns the listener's connection: it connects, listens, proves the
// session, reads notifications and carries out Listen and Unlisten.
// Nothing else touches the connection. Its owner is close: it returns when
// l.ctx ends, and every wait in it is bounded by l.ctx.
func (l *Listener) run() {
	defer close(l.runDone)
	st := &runState{l: l, r: l.p.direct, chans: map[string]*channel{}, backoff: listenerMinBackoff, wcancel: func() {}}
	defer st.stop()
	for l.ctx.Err() == nil {
		if st.c == nil {
			st.offline()
		} else {
			st.online()
		}
	}
}

// runState is what run owns: the connection, the channels and the wait.
type runState struct {
	l     *Listener
	r     *route
	c     *pgxpool.Conn
	chans map[string]*channel
	lost  bool // a connection was lost since the last recovery

	backoff time.Duration
	fails   failStreak

	// The current wait for a notification: one context serves many
	// notifications, so a notification costs no timer or goroutine. It
	// ends when a command arrives (l.interrupt) or the heartbeat is due.
	wctx    context.Context
	wcancel context.CancelFunc
	// quietSince is when the connection last proved it delivers: a
	// notification arrived or a probe came back.
	quietSince time.Time
}

// offline runs while there is no connection: Unlistens are carried out at
// once (a new connection will not listen to their channels), and a
// connection is made only when something needs one.
func (st *runState) offline() {
	l := st.l
	st.unlistens()
	if len(st.chans) == 0 && !l.listenWaiting() {
		// Nothing to listen to, so nothing was missed: the next
		// connection is no recovery.
		st.lost = false
		select { // wait for a command
		case <-l.ctx.Done():
		case <-l.wake:
		}
		return
	}
	err := st.connect()
	if err == nil {
		st.fails = failStreak{}
		st.backoff = listenerMinBackoff
		l.lastErr.Store(nil)
		st.up()
		return
	}
	if l.ctx.Err() != nil {
		return
	}
	if st.failed(err) { // logged; pending Listens answered
		st.sleep(listenerConfigBackoff, true)
		return
	}
	st.sleep(st.backoff, false)
	st.backoff = min(st.backoff*2, listenerMaxBackoff)
}

// online waits for a notification, a command, or the heartbeat.
func (st *runState) online() {
	l, c := st.l, st.c
	wctx := st.wait()
	n, err := c.Conn().WaitForNotification(wctx)
	switch {
	case err == nil:
		st.quietSince = time.Now()
		st.notification(n)
		return
	case l.ctx.Err() != nil:
		return
	case wctx.Err() != nil && !c.Conn().IsClosed():
		// We ended the wait; pgx's deadline-based cancellation leaves the
		// connection usable.
		if errors.Is(wctx.Err(), context.DeadlineExceeded) {
			st.heartbeat()
		}
	default:
		st.drop(err)
	}
	st.commands()
}

// wait returns the context of the current wait, making a new one when the
// last has ended.
func (st *runState) wait() context.Context {
	if st.wctx != nil && st.wctx.Err() == nil {
		return st.wctx
	}
	st.wcancel()
	if hb := st.l.p.cfg.ListenerHeartbeat; hb > 0 {
		st.wctx, st.wcancel = context.WithDeadline(st.l.ctx, st.quietSince.Add(hb))
	} else {
		st.wctx, st.wcancel = context.WithCancel(st.l.ctx)
	}
	if st.l.setInterrupt(st.wcancel) {
		st.wcancel() // a command came before this wait could be interrupted
	}
	return st.wctx
}

func (st *runState) notification(n *pgconn.Notification) {
	if n.Channel == st.l.probe {
		return // a late answer to an earlier probe
	}
	st.l.dispatch(st.chans, n)
}

// commands carries out the pending commands while the connection lasts.
func (st *runState) commands() {
	for st.c != nil {
		cmd := st.l.take(true)
		if cmd == nil {
			return
		}
		st.apply(cmd)
	}
}

// unlistens carries out the pending Unlistens without a connection.
func (st *runState) unlistens() {
	for cmd := st.l.take(false); cmd != nil; cmd = st.l.take(false) {
		st.l.remove(st.chans, cmd.channel)
		cmd.done <- nil
	}
}

// answer fails every pending Listen with a configuration error, so their
// callers hear it at once instead of waiting out their contexts.
func (st *runState) answer(err error) {
	for cmd := st.l.take(true); cmd != nil; cmd = st.l.take(true) {
		if !cmd.listen {
			st.l.remove(st.chans, cmd.channel)
			cmd.done <- nil
			continue
		}
		cmd.done <- fmt.Errorf("pool: listen %q: %w", cmd.channel, err)
	}
}

// apply carries out a command on the live connection. Only a broken
// connection is dropped: a statement the server refuses leaves it usable.
func (st *runState) apply(cmd *listenCmd) {
	l := st.l
	ctx, cancel := context.WithTimeout(l.ctx, listenerOpTimeout)
	defer cancel()
	ident := pgx.Identifier{cmd.channel}.Sanitize()
	if !cmd.listen {
		l.remove(st.chans, cmd.channel)
		if _, err := st.c.Exec(ctx, "unlisten "+ident); err != nil {
			// Not listening is what was asked, and a new connection
			// will not listen to this channel either.
			st.fail(err)
		}
		cmd.done <- nil
		return
	}
	if _, ok := st.chans[cmd.channel]; ok {
		cmd.done <- fmt.Errorf("pool: already listening on channel %q", cmd.channel)
		return
	}
	if _, err := st.c.Exec(ctx, "listen "+ident); err != nil {
		cmd.done <- fmt.Errorf("pool: listen %q: %w", cmd.channel, err)
		st.fail(err)
		return
	}
	l.add(st.chans, cmd.channel, cmd.handler)
	cmd.done <- nil
}

// fail drops the connection after a failed statement unless the server
// merely refused the statement.
func (st *runState) fail(err error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || st.c.Conn().IsClosed() {
		st.drop(err)
	}
}

// drop gives up a broken connection; run reconnects.
func (st *runState) drop(err error) {
	if st.c == nil {
		return
	}
	st.l.log.Warn("supapool: listener connection lost; reconnecting", zap.Error(err))
	st.release()
	st.lost = true
}

func (st *runState) release() {
	st.wcancel()
	st.r.pinned.Add(-1)
	st.r.discard(st.c)
	st.c = nil
	st.l.disconnected()
}

// up marks a fresh, proven connection. After a loss, OnListenerReconnect
// runs on its own goroutine (so it may call Listen, and a slow one does
// not stop delivery), and the listener reports Connected once it has
// returned.
func (st *runState) up() {
	l := st.l
	st.quietSince = time.Now()
	epoch := l.currentEpoch()
	setConnected := func() { l.setConnected(epoch) }
	if !st.lost {
		setConnected()
		return
	}
	st.lost = false
	l.reconnects.Add(1)
	l.log.Info("supapool: listener reconnected; notifications sent meanwhile are lost", zap.Int("channels", len(st.chans)))
	f := l.p.cfg.OnListenerReconnect
	if f == nil {
		setConnected()
		return
	}
	l.workers.Add(1)
	go func() { // owner: close, through l.ctx and l.workers
		defer l.workers.Done()
		defer setConnected()
		defer func() {
			if v := recover(); v != nil {
				l.log.Error("supapool: OnListenerReconnect panicked", zap.Any("panic", v))
			}
		}()
		f(l.ctx)
	}()
}

// sleep waits for about d (with jitter), carrying out Unlistens meanwhile.
// With retryOnListen a new Listen ends it early, so that its caller hears
// the outcome of a fresh attempt at once.
func (st *runState) sleep(d time.Duration, retryOnListen bool) {
	d += rand.N(d / 2)
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-st.l.ctx.Done():
			return
		case <-t.C:
			return
		case <-st.l.wake:
			st.unlistens()
			if retryOnListen && st.l.listenWaiting() {
				return
			}
		}
	}
}

// stop runs when run exits: the connection goes, the channels' goroutines
// finish their queues, and commands still pending learn that the listener
// is closed.
func (st *runState) stop() {
	st.wcancel()
	if st.c != nil {
		st.release()
	}
	for _, ch := range st.chans {
		close(ch.queue)
	}
	for cmd := st.l.take(true); cmd != nil; cmd = st.l.take(true) {
		cmd.done <- ErrClosed
	}
}
