package pool_test

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// A transaction pooler with no marker in DATABASE_URL (PgBouncer on
// 127.0.0.1 is taken as direct) accepts LISTEN and never delivers: the
// listener proves its session and refuses it with a clear error.
func TestListenerRefusesTransactionPoolerInDirectURL(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	core, logs := observer.New(zap.DebugLevel)
	p := newPool(t, bed, func(c *pool.Config) {
		c.DirectURL = bed.PooledURL
		c.Logger = zap.New(core)
	})
	require.Equal(t, pool.NoPooler, p.Stat().Direct.Mode, "the bed's PgBouncer carries no marker")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err := listenWithin(t, p.Listener(), ctx, "orders", 30*time.Second)
	t.Logf("Listen through PgBouncer returned after %s: %v", time.Since(start).Round(time.Millisecond), err)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DATABASE_URL may point at a transaction pooler")
	assert.Contains(t, err.Error(), "LISTEN needs the direct URL")
	assert.NotContains(t, err.Error(), password(t, bed.PooledURL))
	assert.Zero(t, p.Stat().Listener.Channels)
	assert.Positive(t, logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("listener cannot connect").Len())
	requireNoSecret(t, logs, password(t, bed.PooledURL))
}

// A session pooler keeps the session: the probe passes through it and
// notifications are delivered.
func TestListenerThroughSessionPooler(t *testing.T) {
	noLeaks(t)
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 20, SessionPooler: true})
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) {
		c.DirectURL = bed.SessionURL
		c.ListenerHeartbeat = 100 * time.Millisecond
	})
	c := newCollector()
	require.NoError(t, p.Listener().Listen(ctx, "via_session", c.handle))
	time.Sleep(time.Second) // several heartbeats pass
	require.NoError(t, p.Notify(ctx, "via_session", "hi"))
	c.wait(t, 1, 10*time.Second)
	st := p.Stat().Listener
	assert.Zero(t, st.Reconnects, "heartbeats through a session pooler pass")
	assert.EqualValues(t, 1, st.Delivered, "probes are never delivered")
}

// A listener connection that goes silent (the proxy stops forwarding but
// keeps the sockets open) is found by the heartbeat, replaced, and
// OnListenerReconnect is called; notifications sent afterwards arrive, and
// no probe reaches a handler or the Delivered count.
func TestListenerHeartbeatReplacesFrozenConnection(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	proxy := newFreezeProxy(t, hostPort(t, bed.DirectURL))
	var reconnects atomic.Int64
	reconnected := make(chan struct{}, 10)
	p := newPool(t, bed, func(c *pool.Config) {
		c.DirectURL = editURL(t, bed.DirectURL, func(u *url.URL) { u.Host = proxy.addr() })
		c.ListenerHeartbeat = 200 * time.Millisecond
		c.OnListenerReconnect = func(context.Context) {
			reconnects.Add(1)
			reconnected <- struct{}{}
		}
	})
	c := newCollector()
	l := p.Listener()
	require.NoError(t, l.Listen(ctx, "hb", c.handle))
	require.NoError(t, p.Notify(ctx, "hb", "before"))
	c.wait(t, 1, 10*time.Second)
	time.Sleep(time.Second) // heartbeats pass on a healthy connection
	require.Zero(t, reconnects.Load(), "a healthy connection is kept")

	require.Equal(t, 1, proxy.freeze(), "the listener's connection is the proxy's only one")
	select {
	case <-reconnected:
	case <-time.After(15 * time.Second): // heartbeat 200ms + its 1s wait, with room
		t.Fatalf("frozen listener connection not replaced within 15s (stat %+v)", l.Stat())
	}
	require.Eventually(t, func() bool { return l.Stat().Connected }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Notify(ctx, "hb", "after"))
	c.wait(t, 1, 10*time.Second)

	assert.Equal(t, []string{"before", "after"}, c.payloads("hb"))
	c.mu.Lock()
	for ch := range c.got {
		assert.False(t, strings.HasPrefix(ch, "supapool_probe"), "a probe reached a handler: %q", ch)
	}
	c.mu.Unlock()
	st := l.Stat()
	assert.EqualValues(t, 2, st.Delivered, "probes are not counted")
	assert.EqualValues(t, 1, st.Reconnects)
	assert.EqualValues(t, 1, st.Channels)
}
