package integrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// For most services p.Listener() is the better listener: one direct
// connection for all channels, reconnects with OnListenerReconnect, a
// heartbeat that proves the session, bounded queues that report drops,
// all inside MaxDirectConns. The two tests below are for code that
// already uses pgxlisten or pgx's WaitForNotification.

// pgxlisten wants a *pgx.Conn it owns and closes. Acquire(ctx,
// pool.Direct) borrows one from the direct route (LISTEN needs a session,
// which a transaction pooler cannot give) and Hijack takes it out of the
// pool for good.
//
// A hijacked connection leaves pgxpool's count: the route no longer sees
// it in Stat or against MaxDirectConns, so it can open another one beside
// it, and each reconnect of pgxlisten hijacks one more (it closes the old
// one first). Count it yourself in the app's budget.
func TestPgxlisten(t *testing.T) {
	const app, channel = "integ-pgxlisten", "integ_pgxlisten_jobs"
	p, bed := newPool(t, app, nil)
	ctx := testCtx(t)

	listenCtx, stop := context.WithCancel(ctx)
	listener := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			c, err := p.Acquire(ctx, pool.Direct)
			if err != nil {
				return nil, err
			}
			return c.Hijack(), nil
		},
		LogError: func(_ context.Context, err error) {
			if listenCtx.Err() == nil { // not the error Listen ends with
				t.Logf("pgxlisten: %v", err)
			}
		},
		ReconnectDelay: 100 * time.Millisecond,
	}
	h := &jobHandler{ready: make(chan struct{}, 1), got: make(chan string, 1)}
	listener.Handle(channel, h)

	done := make(chan error, 1)
	go func() { done <- listener.Listen(listenCtx) }()
	stopped := false
	defer func() {
		if !stopped {
			stop()
			<-done
		}
	}()

	select {
	case <-h.ready: // pgxlisten calls HandleBacklog after its LISTEN
	case <-ctx.Done():
		t.Fatal("pgxlisten never listened")
	}
	// The listening backend is the app's, and pgxpool no longer counts it.
	n, err := bed.Count(ctx, testbed.Filter{AppName: app, QueryPrefix: "listen"})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, int32(0), p.Stat().Direct.TotalConns, "a hijacked connection is not the route's any more")

	// NOTIFY works through the transaction pooler: p.Notify uses the
	// pooled route.
	require.NoError(t, p.Notify(ctx, channel, "job 7"))
	select {
	case payload := <-h.got:
		assert.Equal(t, "job 7", payload)
	case <-ctx.Done():
		t.Fatal("no notification")
	}

	// pgxlisten closes the connection it was given when Listen returns.
	stop()
	stopped = true
	assert.ErrorIs(t, <-done, context.Canceled)
	assert.Eventually(t, func() bool {
		n, err := bed.Count(ctx, testbed.Filter{AppName: app, QueryPrefix: "listen"})
		return err == nil && n == 0
	}, 10*time.Second, 50*time.Millisecond, "the hijacked connection was closed")
}

// jobHandler is a pgxlisten.Handler and BacklogHandler: HandleBacklog runs
// right after LISTEN, when notifications start to arrive, which is where a
// service would catch up on what it missed while it was not listening.
type jobHandler struct {
	ready chan struct{}
	got   chan string
}

func (h *jobHandler) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	h.got <- n.Payload
	return nil
}

func (h *jobHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	select {
	case h.ready <- struct{}{}:
	default:
	}
	return nil
}

// Without pgxlisten: LISTEN on an acquired direct connection and wait on
// it. The connection goes back to the pool on Release still listening
// unless told otherwise, so UNLISTEN * first (or Hijack and Close it).
func TestWaitForNotification(t *testing.T) {
	const channel = "integ_wait_jobs"
	p, _ := newPool(t, "integ-waitfornotification", nil)
	ctx := testCtx(t)

	c, err := p.Acquire(ctx, pool.Direct)
	require.NoError(t, err)
	defer c.Release()
	_, err = c.Exec(ctx, "listen "+pgx.Identifier{channel}.Sanitize())
	require.NoError(t, err)

	require.NoError(t, p.Notify(ctx, channel, "job 8"))
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := c.Conn().WaitForNotification(wait)
	require.NoError(t, err)
	assert.Equal(t, channel, n.Channel)
	assert.Equal(t, "job 8", n.Payload)

	_, err = c.Exec(ctx, "unlisten *")
	require.NoError(t, err)
}

// The same delivery through supapool's own listener, which is what most
// services should use.
func TestListenerInstead(t *testing.T) {
	const channel = "integ_listener_jobs"
	p, _ := newPool(t, "integ-listener", nil)
	ctx := testCtx(t)

	got := make(chan string, 1)
	require.NoError(t, p.Listener().Listen(ctx, channel, func(_ context.Context, n *pgconn.Notification) error {
		got <- n.Payload
		return nil
	}))
	// Listen returns once the LISTEN is in effect.
	require.NoError(t, p.Notify(ctx, channel, "job 9"))
	select {
	case payload := <-got:
		assert.Equal(t, "job 9", payload)
	case <-ctx.Done():
		t.Fatal("no notification")
	}
}
