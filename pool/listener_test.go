package pool_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// collector gathers notifications per channel.
type collector struct {
	mu  sync.Mutex          // guards got
	got map[string][]string // payloads per channel, in arrival order
	ch  chan string         // channel names, one per notification
}

func newCollector() *collector {
	return &collector{got: map[string][]string{}, ch: make(chan string, 100000)}
}

func (c *collector) handle(_ context.Context, n *pgconn.Notification) error {
	c.mu.Lock()
	c.got[n.Channel] = append(c.got[n.Channel], n.Payload)
	c.mu.Unlock()
	c.ch <- n.Channel
	return nil
}

// wait blocks until n notifications arrived or d passed.
func (c *collector) wait(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for i := 0; i < n; i++ {
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("got %d of %d notifications within %s", i, n, d)
		}
	}
}

func (c *collector) payloads(channel string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got[channel]...)
}

func TestListenRefusedOnPooledRouteDeliveredByListener(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, nil)

	_, err := p.Exec(ctx, "LISTEN orders")
	require.ErrorIs(t, err, pool.ErrSessionStatement)
	assert.Contains(t, err.Error(), "Listener")

	c := newCollector()
	require.NoError(t, p.Listener().Listen(ctx, "orders", c.handle))
	require.NoError(t, p.Notify(ctx, "orders", "42"))
	c.wait(t, 1, 10*time.Second)
	assert.Equal(t, []string{"42"}, c.payloads("orders"))
	assert.Error(t, p.Listener().Listen(ctx, "orders", c.handle), "a second handler for one channel is refused")

	require.NoError(t, p.Listener().Unlisten(ctx, "orders"))
	require.NoError(t, p.Notify(ctx, "orders", "after"))
	require.NoError(t, p.Listener().Listen(ctx, "sentinel", c.handle))
	require.NoError(t, p.Notify(ctx, "sentinel", "s"))
	c.wait(t, 1, 10*time.Second)
	assert.Equal(t, []string{"42"}, c.payloads("orders"), "nothing after Unlisten")
}

// 50 channels × 200 notifications from another connection: every one
// delivered, in order per channel, over a single server backend.
func TestListenerManyChannelsInOrderOnOneBackend(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.ListenerQueueSize = 200 })
	l := p.Listener()
	c := newCollector()
	const channels, each = 50, 200
	for i := 0; i < channels; i++ {
		require.NoError(t, l.Listen(ctx, fmt.Sprintf("ch_%d", i), c.handle))
	}
	n, err := bed.Count(ctx, testbed.Filter{AppName: p.Config().AppName, QueryPrefix: "listen"})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "one backend for all channels")

	sender, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer sender.Close(ctx)
	for j := 0; j < each; j++ {
		b := &pgx.Batch{}
		for i := 0; i < channels; i++ {
			b.Queue("select pg_notify($1, $2)", fmt.Sprintf("ch_%d", i), strconv.Itoa(j))
		}
		require.NoError(t, sender.SendBatch(ctx, b).Close())
	}
	c.wait(t, channels*each, 60*time.Second)
	for i := 0; i < channels; i++ {
		got := c.payloads(fmt.Sprintf("ch_%d", i))
		require.Len(t, got, each)
		for j, s := range got {
			require.Equal(t, strconv.Itoa(j), s, "channel %d out of order", i)
		}
	}
	st := p.Stat().Listener
	assert.EqualValues(t, channels*each, st.Delivered)
	assert.Zero(t, st.Dropped)
	assert.EqualValues(t, channels, st.Channels)
	assert.True(t, st.Connected)
	assert.EqualValues(t, 1, p.Stat().Direct.TotalConns, "the listener's connection counts on the direct route")
}

// notifyUntil sends notifications until the collector sees one, and
// returns how long that took.
func notifyUntil(t *testing.T, ctx context.Context, url, channel string, c *collector) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		// The server may still be starting: failures here only mean
		// "try again".
		if conn, err := pgx.Connect(ctx, url); err == nil {
			_, _ = conn.Exec(ctx, "select pg_notify($1, 'ping')", channel)
			conn.Close(ctx)
		}
		select {
		case <-c.ch:
			return time.Since(start)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("listener did not resume within 20s")
	return 0
}

func TestListenerSurvivesTerminateAndRestart(t *testing.T) {
	noLeaks(t)
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 20, NoPooler: true})
	ctx := testCtx(t)
	var reconnects atomic.Int64
	p := newPool(t, bed, func(c *pool.Config) {
		c.OnListenerReconnect = func(context.Context) { reconnects.Add(1) }
	})
	c := newCollector()
	require.NoError(t, p.Listener().Listen(ctx, "jobs", c.handle))

	killed, err := bed.Terminate(ctx, testbed.Filter{AppName: p.Config().AppName, QueryPrefix: "listen"})
	require.NoError(t, err)
	require.Equal(t, 1, killed)
	d := notifyUntil(t, ctx, bed.DirectURL, "jobs", c)
	t.Logf("resumed %s after pg_terminate_backend", d.Round(time.Millisecond))
	assert.Eventually(t, func() bool { return reconnects.Load() == 1 }, 5*time.Second, 10*time.Millisecond, "one OnListenerReconnect per recovery (counted just after a notification delivered during the proof may be)")

	for _, mode := range []testbed.Shutdown{testbed.Fast, testbed.Immediate} {
		testbed.Fault(t, bed.StopPostgres(mode))
		time.Sleep(300 * time.Millisecond) // let the listener notice and start retrying
		testbed.Fault(t, bed.StartPostgres(ctx))
		d = notifyUntil(t, ctx, bed.DirectURL, "jobs", c)
		t.Logf("resumed %s after the server was back from a %s restart", d.Round(time.Millisecond), mode)
		// Liveness bound only: the design resumes within about a second
		// (backoff capped at 1s); the measured time is logged above.
		assert.Less(t, d, 10*time.Second)
	}
	// A notification can arrive while the new session is being proved,
	// and is delivered then, just before the recovery is counted: wait
	// for the count (CI saw 2 of 3 at the moment the ping arrived).
	assert.Eventually(t, func() bool { return reconnects.Load() == 3 && p.Stat().Listener.Reconnects == 3 }, 5*time.Second, 10*time.Millisecond, "one OnListenerReconnect per recovery")
	assert.EqualValues(t, 3, reconnects.Load(), "one OnListenerReconnect per recovery")
	assert.EqualValues(t, 3, p.Stat().Listener.Reconnects)
	n, err := bed.Count(ctx, testbed.Filter{AppName: p.Config().AppName})
	require.NoError(t, err)
	assert.Equal(t, 1, n, "old connections are gone, one listener backend remains")
}

func TestListenerSlowHandlerAndOverflow(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	var gapMu sync.Mutex
	gaps := map[string]int64{}
	p := newPool(t, bed, func(c *pool.Config) {
		c.ListenerQueueSize = 4
		c.OnListenerGap = func(_ context.Context, ch string, n int64) {
			gapMu.Lock()
			gaps[ch] += n
			gapMu.Unlock()
		}
	})
	l := p.Listener()
	release := make(chan struct{})
	var slowGot atomic.Int64
	require.NoError(t, l.Listen(ctx, "slow", func(ctx context.Context, n *pgconn.Notification) error {
		select {
		case <-release:
		case <-ctx.Done(): // the pool is closing: never hold Close up
			return ctx.Err()
		}
		slowGot.Add(1)
		return nil
	}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("listener stat at failure: %+v", p.Stat().Listener)
		}
	})
	fast := newCollector()
	require.NoError(t, l.Listen(ctx, "fast", fast.handle))

	for i := 0; i < 20; i++ {
		require.NoError(t, p.Notify(ctx, "slow", strconv.Itoa(i)))
	}
	// A blocked channel does not stall the others. One at a time, so that
	// the fast channel's own small queue never overflows on a loaded
	// machine (its goroutine may be scheduled late).
	for i := 0; i < 10; i++ {
		require.NoError(t, p.Notify(ctx, "fast", strconv.Itoa(i)))
		fast.wait(t, 1, 30*time.Second)
	}
	close(release)

	require.Eventually(t, func() bool {
		gapMu.Lock()
		defer gapMu.Unlock()
		return slowGot.Load()+gaps["slow"] == 20
	}, 10*time.Second, 10*time.Millisecond, "every notification is delivered or reported as a gap")
	gapMu.Lock()
	defer gapMu.Unlock()
	assert.Positive(t, gaps["slow"])
	assert.Zero(t, gaps["fast"])
	st := p.Stat().Listener
	assert.Equal(t, gaps["slow"], st.Dropped)
	assert.Equal(t, slowGot.Load()+10, st.Delivered)
}

func TestListenerHandlerErrorsAndPanicsAreCounted(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	core, logs := observer.New(zap.WarnLevel)
	p := newPool(t, bed, func(c *pool.Config) { c.Logger = zap.New(core) })
	c := newCollector()
	l := p.Listener()
	require.NoError(t, l.Listen(ctx, "bad", func(_ context.Context, n *pgconn.Notification) error {
		if n.Payload == "panic" {
			panic("boom")
		}
		return errors.New("handler failed")
	}))
	require.NoError(t, l.Listen(ctx, "good", c.handle))
	require.NoError(t, p.Notify(ctx, "bad", "error"))
	require.NoError(t, p.Notify(ctx, "bad", "panic"))
	require.NoError(t, p.Notify(ctx, "good", "still here"))
	c.wait(t, 1, 10*time.Second)
	require.Eventually(t, func() bool { return p.Stat().Listener.HandlerErrors == 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, logs.FilterMessage("supapool: listener handler failed").Len())
	assert.Equal(t, 1, logs.FilterMessage("supapool: listener handler panicked").Len())
}

func TestListenerChannelNamesAndPayloadLimit(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, nil)
	c := newCollector()
	names := []string{"with space", `quote"s`, "it's", "CamelCase", "ünïcødé ✓", `x"; drop table users; --`}
	for _, name := range names {
		require.NoError(t, p.Listener().Listen(ctx, name, c.handle), name)
	}
	for _, name := range names {
		require.NoError(t, p.Notify(ctx, name, "hi"), name)
	}
	c.wait(t, len(names), 10*time.Second)
	for _, name := range names {
		assert.Equal(t, []string{"hi"}, c.payloads(name), name)
	}

	require.NoError(t, p.Listener().Listen(ctx, "big", c.handle))
	require.NoError(t, p.Notify(ctx, "big", strings.Repeat("x", pool.MaxPayload)))
	c.wait(t, 1, 10*time.Second)
	err := p.Notify(ctx, "big", strings.Repeat("x", 8001))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "8001 bytes")
	assert.Error(t, p.Notify(ctx, strings.Repeat("c", 64), "x"), "channel names longer than 63 bytes")
	assert.Error(t, p.Listener().Listen(ctx, "", c.handle))
}

// With one direct connection, the listener holds it for good: direct work
// fails at once with a hint instead of waiting out its context.
func TestListenerWithOneDirectConnection(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	core, logs := observer.New(zap.WarnLevel)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 1; c.Logger = zap.New(core) })
	require.NoError(t, p.Listener().Listen(ctx, "one", func(context.Context, *pgconn.Notification) error { return nil }))
	assert.Equal(t, 1, logs.FilterMessageSnippet("MaxDirectConns 1").Len())
	_, err := p.Begin(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "held by the listener")
	assert.Contains(t, err.Error(), "DATABASE_MAX_DIRECT_CONNS")
}

// Commands queued while the listener waits for a connection are all
// carried out once it gets one; withdrawn ones are not.
func TestListenerCommandsQueuedWhileConnecting(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 2 })
	// Hold both direct connections: the listener cannot connect yet.
	var held []*pgxpool.Conn
	for i := 0; i < 2; i++ {
		c, err := p.Acquire(ctx, pool.Direct)
		require.NoError(t, err)
		held = append(held, c)
	}
	c := newCollector()
	l := p.Listener()
	errs := make(chan error, 3)
	for _, name := range []string{"q1", "q2", "q3"} {
		go func(name string) { errs <- l.Listen(ctx, name, c.handle) }(name)
	}
	// A Listen whose caller gives up before the connection comes is
	// withdrawn and never becomes active.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, l.Listen(short, "withdrawn", c.handle), context.DeadlineExceeded)
	assert.NoError(t, l.Unlisten(ctx, "never-listened"), "Unlisten needs no connection")

	held[0].Release()
	for i := 0; i < 3; i++ {
		require.NoError(t, <-errs)
	}
	held[1].Release()
	for _, name := range []string{"q1", "q2", "q3", "withdrawn"} {
		require.NoError(t, p.Notify(ctx, name, name))
	}
	c.wait(t, 3, 10*time.Second)
	select {
	case got := <-c.ch:
		t.Fatalf("a withdrawn Listen delivered on %q", got)
	case <-time.After(300 * time.Millisecond):
	}
	assert.EqualValues(t, 3, p.Stat().Listener.Channels)
	// Unlisten of an unknown channel on a live connection is harmless.
	require.NoError(t, l.Unlisten(ctx, "unknown"))
	assert.Error(t, l.Unlisten(ctx, ""), "empty names are refused before anything is sent")
	assert.Zero(t, p.Stat().Listener.Reconnects)
}

// OnListenerReconnect may use the listener; the listener reports Connected
// only once it has returned, and Close does not hang.
func TestListenerReconnectHookMayListen(t *testing.T) {
	noLeaks(t)
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 20, NoPooler: true})
	ctx := testCtx(t)
	c := newCollector()
	var p *pool.Pool
	hookDone := make(chan struct{}, 1)
	var sawConnected atomic.Bool
	p = newPool(t, bed, func(cfg *pool.Config) {
		cfg.OnListenerReconnect = func(ctx context.Context) {
			sawConnected.Store(p.Stat().Listener.Connected)
			if err := p.Listener().Listen(ctx, "after_reconnect", c.handle); err != nil {
				t.Errorf("Listen from the hook: %v", err)
			}
			hookDone <- struct{}{}
		}
	})
	require.NoError(t, p.Listener().Listen(ctx, "before", c.handle))
	_, err := bed.Terminate(ctx, testbed.Filter{AppName: p.Config().AppName, QueryPrefix: "listen"})
	require.NoError(t, err)
	select {
	case <-hookDone:
	case <-time.After(20 * time.Second):
		t.Fatal("hook not called")
	}
	assert.False(t, sawConnected.Load(), "not Connected before the resync hook returned")
	require.Eventually(t, func() bool { return p.Stat().Listener.Connected }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Notify(ctx, "after_reconnect", "x"))
	c.wait(t, 1, 10*time.Second)
	p.Close()
}
