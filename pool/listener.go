package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// NotificationFunc receives one notification. It runs on its channel's own
// goroutine: notifications of a channel arrive in order, and a slow handler
// delays only its own channel. An error or panic is logged and counted and
// does not stop the listener.
type NotificationFunc func(ctx context.Context, n *pgconn.Notification) error

// PostgreSQL's limits: a payload must be shorter than 8000 bytes, and a
// channel is an identifier of at most 63 bytes (longer ones are cut short
// by the server, so LISTEN and NOTIFY would disagree on the name).
const (
	MaxPayload     = 7999
	MaxChannelName = 63
)

// How the listener waits: backoff between reconnect attempts stays short
// so it resumes within about a second of the server coming back, and an
// idle connection is pinged now and then so that a silently dead one is
// noticed.
const (
	listenerMinBackoff   = 50 * time.Millisecond
	listenerMaxBackoff   = time.Second
	listenerPingInterval = 15 * time.Second
)

// Listener delivers LISTEN/NOTIFY notifications over ONE direct
// connection, whatever the number of channels, because a LISTEN through a
// transaction pooler silently never delivers. The connection counts
// against MaxDirectConns. When it is lost, the listener reconnects with
// jittered backoff, listens to every channel again and calls
// Config.OnListenerReconnect. Get it with [Pool.Listener].
type Listener struct {
	p   *Pool
	log *zap.Logger

	startOnce sync.Once
	warnOnce  sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	runDone   chan struct{}
	// Commands wait in pending; do() ends the reader's current wait
	// (interrupt) or wakes its backoff sleep (wake) to get them seen.
	imu       sync.Mutex
	pending   []*listenCmd
	interrupt context.CancelFunc
	wake      chan struct{}

	workers sync.WaitGroup

	// Connected is true once a connection is up and resynced; epoch
	// counts lost connections, so a late resync cannot mark a newer,
	// lost one connected.
	cmu       sync.Mutex
	connected bool
	epoch     int64

	// counters for Stat
	channels      atomic.Int64
	delivered     atomic.Int64
	dropped       atomic.Int64
	handlerErrors atomic.Int64
	reconnects    atomic.Int64
}

// ListenerStat describes a Listener.
type ListenerStat struct {
	Connected bool  // holds a live connection now
	Channels  int64 // channels listened to
	// Delivered counts notifications handed to handlers; Dropped those
	// lost to full queues (each reported through OnListenerGap);
	// HandlerErrors handler errors and panics; Reconnects recoveries after
	// a lost connection.
	Delivered, Dropped, HandlerErrors, Reconnects int64
}

type listenCmd struct {
	listen  bool
	channel string
	handler NotificationFunc
	done    chan error // buffered: run never blocks on it
	// state lets a caller whose context ended withdraw a command that
	// has not started, so a Listen that returned an error never becomes
	// active later.
	state atomic.Int32
}

const (
	cmdPending int32 = iota
	cmdTaken
	cmdWithdrawn
)

// channel is one listened channel's queue and delivery goroutine.
type channel struct {
	name    string
	handler NotificationFunc
	queue   chan item
	wake    chan struct{}
	pending atomic.Int64 // drops not yet attached to a queued item
}

type item struct {
	n   *pgconn.Notification
	gap int64 // notifications dropped just before this one
}

// Listener returns the pool's listener. It opens its connection on the
// first Listen.
func (p *Pool) Listener() *Listener {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listener == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p.listener = &Listener{
			p:       p,
			log:     p.log.With(zap.String("component", "listener")),
			ctx:     ctx,
			cancel:  cancel,
			runDone: make(chan struct{}),
			wake:    make(chan struct{}, 1),
		}
	}
	return p.listener
}

// Notify sends a notification with pg_notify on the pooled route (NOTIFY
// works through a transaction pooler; only LISTEN does not).
func (p *Pool) Notify(ctx context.Context, channel, payload string) error {
	if err := checkChannel(channel); err != nil {
		return err
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("pool: notify %q: payload is %d bytes, PostgreSQL accepts at most %d", channel, len(payload), MaxPayload)
	}
	_, err := p.Exec(ctx, "select pg_notify($1, $2)", channel, payload)
	return err
}

func checkChannel(name string) error {
	if name == "" {
		return errors.New("pool: channel name is empty")
	}
	if len(name) > MaxChannelName {
		return fmt.Errorf("pool: channel name is %d bytes, PostgreSQL allows at most %d", len(name), MaxChannelName)
	}
	return nil
}

// Listen starts delivering notifications of channel to h and returns once
// the server has confirmed the LISTEN: a notification sent after Listen
// returns is delivered. Any channel name works; it is quoted as an
// identifier.
func (l *Listener) Listen(ctx context.Context, channel string, h NotificationFunc) error {
	if l.p.direct == nil {
		return ErrNoDirectRoute
	}
	if l.p.cfg.MaxDirectConns < 2 {
		l.warnOnce.Do(func() {
			l.log.Warn("supapool: the listener holds the direct route's only connection (MaxDirectConns 1): Begin and Acquire(Direct) will fail; set DATABASE_MAX_DIRECT_CONNS to 2 or more")
		})
	}
	if err := checkChannel(channel); err != nil {
		return err
	}
	if h == nil {
		return errors.New("pool: Listen needs a handler")
	}
	return l.do(ctx, &listenCmd{listen: true, channel: channel, handler: h})
}

// Unlisten stops delivering notifications of channel. Notifications
// already queued are still delivered.
func (l *Listener) Unlisten(ctx context.Context, channel string) error {
	if err := checkChannel(channel); err != nil {
		return err
	}
	return l.do(ctx, &listenCmd{channel: channel})
}

func (l *Listener) do(ctx context.Context, cmd *listenCmd) error {
	if l.p.closed.Load() {
		return ErrClosed
	}
	l.startOnce.Do(func() { go l.run() })
	cmd.done = make(chan error, 1)
	l.imu.Lock()
	l.pending = append(l.pending, cmd)
	if l.interrupt != nil {
		l.interrupt()
	}
	l.imu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-cmd.done:
		return err
	case <-ctx.Done():
		if cmd.state.CompareAndSwap(cmdPending, cmdWithdrawn) {
			return ctx.Err()
		}
		// Already under way: its result follows shortly (each step is
		// bounded by a timeout).
		select {
		case err := <-cmd.done:
			return err
		case <-l.runDone:
			return ErrClosed
		}
	case <-l.runDone:
		return ErrClosed
	}
}

// takePending hands the waiting commands to run.
func (l *Listener) takePending() []*listenCmd {
	l.imu.Lock()
	defer l.imu.Unlock()
	cmds := l.pending
	l.pending = nil
	return cmds
}

// Stat returns a snapshot of the listener's counters.
func (l *Listener) Stat() ListenerStat {
	return ListenerStat{
		Connected:     l.isConnected(),
		Channels:      l.channels.Load(),
		Delivered:     l.delivered.Load(),
		Dropped:       l.dropped.Load(),
		HandlerErrors: l.handlerErrors.Load(),
		Reconnects:    l.reconnects.Load(),
	}
}

func (l *Listener) close() {
	l.cancel()
	l.startOnce.Do(func() { close(l.runDone) }) // never started: nothing to wait for
	<-l.runDone
	l.workers.Wait()
}

// run owns the listener's connection: it connects, listens, reads
// notifications and carries out Listen and Unlisten. Nothing else touches
// the connection.
func (l *Listener) run() {
	defer close(l.runDone)
	st := &runState{l: l, chans: map[string]*channel{}, r: l.p.direct}
	defer st.stop()
	backoff := listenerMinBackoff
	var (
		wctx    context.Context
		wcancel context.CancelFunc = func() {}
	)
	defer func() { wcancel() }()
	for {
		if l.ctx.Err() != nil {
			return
		}
		if st.c == nil {
			var err error
			st.c, err = l.connect(st.chans)
			if err != nil {
				if l.ctx.Err() != nil {
					return
				}
				l.log.Debug("supapool: listener connect failed", zap.Error(err))
				if !st.sleep(backoff) {
					return
				}
				backoff = min(backoff*2, listenerMaxBackoff)
				continue
			}
			backoff = listenerMinBackoff
			st.up()
			st.handleAll()
			continue
		}
		c := st.c

		// Wait for a notification, a command, or time to check the
		// connection. One wait context serves many notifications, so a
		// notification costs no timer or goroutine.
		if wctx == nil || wctx.Err() != nil {
			wctx, wcancel = context.WithTimeout(l.ctx, listenerPingInterval)
			l.imu.Lock()
			l.interrupt = wcancel
			queued := len(l.pending) > 0
			l.imu.Unlock()
			if queued {
				wcancel() // a command came before this wait could be interrupted
			}
		}
		n, err := c.Conn().WaitForNotification(wctx)
		switch {
		case err == nil:
			l.dispatch(st.chans, n)
			continue
		case l.ctx.Err() != nil:
			return
		case wctx.Err() != nil && !c.Conn().IsClosed():
			// We ended the wait (a command, or time for a ping); pgx's
			// deadline-based cancellation leaves the connection usable.
			if errors.Is(wctx.Err(), context.DeadlineExceeded) {
				pctx, pcancel := context.WithTimeout(l.ctx, 5*time.Second)
				if perr := c.Ping(pctx); perr != nil {
					st.drop(perr)
				}
				pcancel()
			}
		default:
			st.drop(err)
		}
		st.handleAll()
	}
}

// runState is what run owns: the connection, the channels, and the
// commands waiting for a connection.
type runState struct {
	l       *Listener
	r       *route
	c       *pgxpool.Conn
	chans   map[string]*channel
	waiting []*listenCmd
	lost    bool // a connection was lost since the last recovery
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
	st.r.pinned.Add(-1)
	st.r.discard(st.c)
	st.c = nil
	l := st.l
	l.cmu.Lock()
	l.epoch++
	l.connected = false
	l.cmu.Unlock()
}

// up marks a fresh connection. After a loss, OnListenerReconnect runs on
// its own goroutine (so it may call Listen, and a slow one does not stop
// delivery), and the listener reports Connected once it has returned.
func (st *runState) up() {
	l := st.l
	l.cmu.Lock()
	epoch := l.epoch
	l.cmu.Unlock()
	setConnected := func() {
		l.cmu.Lock()
		if l.epoch == epoch {
			l.connected = true
		}
		l.cmu.Unlock()
	}
	f := l.p.cfg.OnListenerReconnect
	if !st.lost || f == nil {
		if st.lost {
			st.lost = false
			l.reconnects.Add(1)
			l.log.Info("supapool: listener reconnected; notifications sent meanwhile are lost", zap.Int("channels", len(st.chans)))
		}
		setConnected()
		return
	}
	st.lost = false
	l.reconnects.Add(1)
	l.log.Info("supapool: listener reconnected; notifications sent meanwhile are lost", zap.Int("channels", len(st.chans)))
	l.workers.Add(1)
	go func() {
		defer l.workers.Done()
		defer func() {
			if v := recover(); v != nil {
				l.log.Error("supapool: OnListenerReconnect panicked", zap.Any("panic", v))
			}
			setConnected()
		}()
		f(l.ctx)
	}()
}

// handleAll carries out the commands that wait, in order.
func (st *runState) handleAll() {
	cmds := append(st.waiting, st.l.takePending()...)
	st.waiting = nil
	for _, cmd := range cmds {
		st.handle(cmd)
	}
}

// handle carries out one command, or keeps a Listen for when a connection
// is up (an Unlisten needs no connection: a new one will not listen).
func (st *runState) handle(cmd *listenCmd) {
	if !cmd.state.CompareAndSwap(cmdPending, cmdTaken) {
		return // withdrawn by its caller
	}
	if st.c == nil {
		if !cmd.listen {
			st.l.remove(st.chans, cmd.channel)
			cmd.done <- nil
			return
		}
		cmd.state.Store(cmdPending) // its caller may still withdraw it
		st.waiting = append(st.waiting, cmd)
		return
	}
	st.l.apply(st, cmd)
}

// sleep waits for d, taking in commands meanwhile. It reports false when
// the listener closes.
func (st *runState) sleep(d time.Duration) bool {
	d += rand.N(d / 2)
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-st.l.ctx.Done():
			return false
		case <-t.C:
			return true
		case <-st.l.wake:
			st.handleAll()
		}
	}
}

// stop runs when run exits: the connection goes, the channels' goroutines
// finish their queues, and commands still waiting learn that the
// listener is closed.
func (st *runState) stop() {
	if st.c != nil {
		st.release()
	}
	for _, ch := range st.chans {
		close(ch.queue)
	}
	for _, cmd := range append(st.waiting, st.l.takePending()...) {
		cmd.done <- ErrClosed
	}
}

// connect borrows a direct connection and listens to every channel.
func (l *Listener) connect(chans map[string]*channel) (*pgxpool.Conn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	c, err := l.p.direct.acquire(ctx, true)
	if err != nil {
		return nil, err
	}
	for name := range chans {
		if _, err := c.Exec(ctx, "listen "+pgx.Identifier{name}.Sanitize()); err != nil {
			l.p.direct.discard(c)
			return nil, err
		}
	}
	l.p.direct.pinned.Add(1)
	return c, nil
}

// apply carries out a command on the live connection. Only a broken
// connection is dropped: a statement the server refuses leaves it usable.
func (l *Listener) apply(st *runState, cmd *listenCmd) {
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	ident := pgx.Identifier{cmd.channel}.Sanitize()
	fail := func(err error) {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || st.c.Conn().IsClosed() {
			st.drop(err)
		}
	}
	if !cmd.listen {
		l.remove(st.chans, cmd.channel)
		if _, err := st.c.Exec(ctx, "unlisten "+ident); err != nil {
			// Not listening is what was asked, and a new connection
			// will not listen to this channel either.
			fail(err)
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
		fail(err)
		return
	}
	ch := &channel{
		name:    cmd.channel,
		handler: cmd.handler,
		queue:   make(chan item, l.p.cfg.ListenerQueueSize),
		wake:    make(chan struct{}, 1),
	}
	st.chans[cmd.channel] = ch
	l.channels.Store(int64(len(st.chans)))
	l.workers.Add(1)
	go l.deliver(ch)
	cmd.done <- nil
}

func (l *Listener) isConnected() bool {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return l.connected
}

func (l *Listener) remove(chans map[string]*channel, name string) {
	if ch, ok := chans[name]; ok {
		delete(chans, name)
		close(ch.queue)
		l.channels.Store(int64(len(chans)))
	}
}

// dispatch queues a notification for its channel without ever blocking
// the reader: a full queue drops it, counts it and signals the gap.
func (l *Listener) dispatch(chans map[string]*channel, n *pgconn.Notification) {
	ch, ok := chans[n.Channel]
	if !ok {
		return // unlistened a moment ago
	}
	// Only this goroutine sends, so room seen here is still there for
	// the send; a select with a send case would evaluate the Swap even
	// when it falls to default, losing the count.
	if len(ch.queue) < cap(ch.queue) {
		ch.queue <- item{n: n, gap: ch.pending.Swap(0)}
	} else {
		ch.pending.Add(1)
		l.dropped.Add(1)
		select {
		case ch.wake <- struct{}{}:
		default:
		}
	}
}

// deliver runs a channel's handler on each queued notification, in order.
// Drops are reported in their place: those followed by a queued
// notification travel with it (item.gap), and those with nothing queued
// after them are reported as soon as the queue is empty.
func (l *Listener) deliver(ch *channel) {
	defer l.workers.Done()
	for {
		select {
		case it, ok := <-ch.queue:
			if !ok {
				if g := ch.pending.Swap(0); g > 0 {
					l.gap(ch, g)
				}
				return
			}
			if it.gap > 0 {
				l.gap(ch, it.gap)
			}
			l.handle(ch, it.n)
		case <-ch.wake:
		}
		if len(ch.queue) == 0 {
			if g := ch.pending.Swap(0); g > 0 {
				l.gap(ch, g)
			}
		}
	}
}

func (l *Listener) handle(ch *channel, n *pgconn.Notification) {
	defer func() {
		if v := recover(); v != nil {
			l.handlerErrors.Add(1)
			l.log.Error("supapool: listener handler panicked", zap.String("channel", ch.name), zap.Any("panic", v))
		}
	}()
	l.delivered.Add(1)
	if err := ch.handler(l.ctx, n); err != nil {
		l.handlerErrors.Add(1)
		l.log.Warn("supapool: listener handler failed", zap.String("channel", ch.name), zap.Error(err))
	}
}

func (l *Listener) gap(ch *channel, dropped int64) {
	if f := l.p.cfg.OnListenerGap; f != nil {
		f(l.ctx, ch.name, dropped)
		return
	}
	l.log.Warn("supapool: listener queue full; notifications dropped", zap.String("channel", ch.name), zap.Int64("dropped", dropped))
}
