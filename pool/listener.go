package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// The listener is split by concept:
//
//	listener.go          the public API: Listener, Listen, Unlisten, Stat, Notify
//	listener_cmd.go      the hand-off of Listen and Unlisten commands to run
//	listener_run.go      run, the one goroutine that owns the connection
//	listener_connect.go  getting a connection ready, and what a failure means
//	listener_probe.go    proving the session: the self-sent notification
//	listener_deliver.go  per-channel queues and handler goroutines

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

// Listener delivers LISTEN/NOTIFY notifications over ONE direct
// connection, whatever the number of channels, because a LISTEN through a
// transaction pooler silently never delivers. The connection counts
// against MaxDirectConns. Before the first Listen on a connection returns,
// and every Config.ListenerHeartbeat while it is idle, the listener proves
// the session: a notification sent from another session must come back on
// it. When the connection is lost or fails that proof, the listener
// reconnects with jittered backoff, listens to every channel again and
// calls Config.OnListenerReconnect. Get it with [Pool.Listener].
type Listener struct {
	p     *Pool
	log   *zap.Logger
	probe string // this listener's private channel for self-sent notifications

	startOnce sync.Once
	warnOnce  sync.Once
	ctx       context.Context // ends when the pool closes; bounds everything run does
	cancel    context.CancelFunc
	runDone   chan struct{} // closed when run has returned and completed every taken command

	// imu guards the hand-off from callers to run. Invariant: pending holds
	// the commands not yet taken by run (some perhaps withdrawn by their
	// callers since), in arrival order; interrupt, when set, ends run's
	// current wait for a notification so that it looks at pending. Held
	// only to read or change these fields: never across I/O.
	imu       sync.Mutex
	pending   []*listenCmd
	interrupt context.CancelFunc
	// wake gets run out of a wait without a connection (backoff, idle)
	// when a command arrives. Buffered: a missed send means one is queued.
	wake chan struct{}

	// workers counts the goroutines run starts (one per channel, and each
	// OnListenerReconnect call); close waits for them.
	workers sync.WaitGroup

	// cmu guards the connection state Stat reports. Invariant: connected
	// is true only while run holds a connection that has been resynced
	// (OnListenerReconnect returned); epoch counts connections given up,
	// so a resync that finishes late cannot mark a newer connection, or
	// none, as connected. Never held across I/O or a callback.
	cmu       sync.Mutex
	connected bool
	epoch     int64

	// lastErr is why the last connection attempt failed (nil once one
	// succeeds), for a Listen whose context ends while it waits.
	lastErr atomic.Pointer[error]

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

// Listener returns the pool's listener. It opens its connection on the
// first Listen. With Config.NoDirect its Listen and Unlisten fail with
// ErrNoDirectRoute.
func (p *Pool) Listener() *Listener {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listener == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p.listener = &Listener{
			p:       p,
			log:     p.log.With(zap.String("component", "listener")),
			probe:   probeChannel(),
			ctx:     ctx,
			cancel:  cancel,
			runDone: make(chan struct{}),
			wake:    make(chan struct{}, 1),
		}
	}
	return p.listener
}

// probeChannel names a listener's private channel: random, so that two
// listeners on one database never take each other's probes.
func probeChannel() string { return "supapool_probe_" + randomHex(8) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather)
	return hex.EncodeToString(b)
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
// the server has confirmed the LISTEN on a connection whose session has
// been proven: a notification sent after Listen returns is delivered. Any
// channel name works; it is quoted as an identifier.
//
// A configuration error (wrong password, unknown host or database, TLS
// refused, a pooler in DATABASE_URL) is returned at once. While the server
// is unreachable, Listen waits within ctx as the listener retries. A
// Listen that returns an error never becomes active later.
func (l *Listener) Listen(ctx context.Context, channel string, h NotificationFunc) error {
	if l.p.direct == nil {
		return ErrNoDirectRoute
	}
	if err := checkChannel(channel); err != nil {
		return err
	}
	if h == nil {
		return errors.New("pool: Listen needs a handler")
	}
	if l.p.cfg.MaxDirectConns < 2 {
		l.warnOnce.Do(func() {
			l.log.Warn("supapool: the listener holds the direct route's only connection (MaxDirectConns 1): Begin and Acquire(Direct) will fail; set DATABASE_MAX_DIRECT_CONNS to 2 or more")
		})
	}
	return l.do(ctx, &listenCmd{listen: true, channel: channel, handler: h})
}

// Unlisten stops delivering notifications of channel. Notifications
// already queued are still delivered. It needs no connection, but while
// the listener is in the middle of a connection attempt (bounded) it
// waits for that attempt to end, within ctx.
func (l *Listener) Unlisten(ctx context.Context, channel string) error {
	if l.p.direct == nil {
		return ErrNoDirectRoute
	}
	if err := checkChannel(channel); err != nil {
		return err
	}
	return l.do(ctx, &listenCmd{channel: channel})
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

func (l *Listener) isConnected() bool {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return l.connected
}

func (l *Listener) currentEpoch() int64 {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return l.epoch
}

// setConnected reports the connection of epoch resynced, unless it has
// been given up since.
func (l *Listener) setConnected(epoch int64) {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if l.epoch == epoch {
		l.connected = true
	}
}

// disconnected records that run gave its connection up.
func (l *Listener) disconnected() {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	l.epoch++
	l.connected = false
}

// close stops run and waits for it and for every goroutine it started.
// Everything run waits on is bounded by l.ctx, so this returns promptly
// whatever the server does (user handlers aside: they get l.ctx too).
func (l *Listener) close() {
	l.cancel()
	l.startOnce.Do(func() { close(l.runDone) }) // never started: nothing to wait for
	<-l.runDone
	l.workers.Wait()
}
