package pool_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// listenWithin runs Listen and fails the test if it has not returned
// within d (Listen's own context is longer, so that waiting it out shows).
func listenWithin(t *testing.T, l *pool.Listener, ctx context.Context, channel string, d time.Duration) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		errc <- l.Listen(ctx, channel, func(context.Context, *pgconn.Notification) error { return nil })
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		t.Fatalf("Listen did not return within %s", d)
		return nil
	}
}

// A configuration error in DATABASE_URL reaches the caller of Listen at
// once, with the routes' hint, and is logged at Error; no password shows
// anywhere.
func TestListenerConfigErrorsReachListen(t *testing.T) {
	bed := testbed.Start(t)
	realPW := password(t, bed.DirectURL)
	const wrongPW = "wrong-Secret-4711"
	cases := []struct {
		name string
		edit func(u *url.URL)
		hint string
	}{
		{"wrong password", func(u *url.URL) { u.User = url.UserPassword(u.User.Username(), wrongPW) }, "check the password in DATABASE_URL"},
		{"unknown host", func(u *url.URL) { u.Host = "supapool-no-such-host.invalid:5432" }, "check the host in DATABASE_URL"},
		{"unknown database", func(u *url.URL) { u.Path = "/no_such_database" }, "the database in DATABASE_URL does not exist"},
		{"TLS refused", func(u *url.URL) { u.RawQuery = "sslmode=require" }, "check sslmode (and sslrootcert) in DATABASE_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			core, logs := observer.New(zap.DebugLevel)
			p := newPool(t, bed, func(c *pool.Config) {
				c.DirectURL = editURL(t, bed.DirectURL, tc.edit)
				c.Logger = zap.New(core)
			})
			l := p.Listener()
			// Listen's context outlasts the bound: an error that only
			// comes when the context ends fails the test.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, ch := range []string{"first", "second"} { // a later Listen hears it at once too
				err := listenWithin(t, l, ctx, ch, 15*time.Second)
				require.Error(t, err)
				assert.False(t, errors.Is(err, context.DeadlineExceeded), "the error, not the context's end: %v", err)
				assert.Contains(t, err.Error(), tc.hint)
				assert.Contains(t, err.Error(), ch)
				assert.NotContains(t, err.Error(), realPW)
				assert.NotContains(t, err.Error(), wrongPW)
			}
			assert.False(t, l.Stat().Connected)
			assert.Zero(t, l.Stat().Channels)
			errs := logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("listener cannot connect")
			assert.Positive(t, errs.Len(), "logged at Error")
			requireNoSecret(t, logs, realPW, wrongPW)
			p.Close()
		})
	}
}

// While the server is down, Listen waits within its context as the
// listener retries, the failures reach Warn after the first attempts (and
// never Error), and the Listen after the server is back works.
func TestListenerServerDownWaitsAndWarns(t *testing.T) {
	noLeaks(t)
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 20, NoPooler: true})
	core, logs := observer.New(zap.DebugLevel)
	p := newPool(t, bed, func(c *pool.Config) { c.Logger = zap.New(core) })
	ctx := testCtx(t)
	testbed.Fault(t, bed.StopPostgres(testbed.Fast))

	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := listenWithin(t, p.Listener(), short, "down", 15*time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "last attempt", "the caller learns why: %v", err)
	assert.Positive(t, logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("listener cannot connect").Len(), "transient failures reach Warn")
	assert.Zero(t, logs.FilterLevelExact(zapcore.ErrorLevel).Len(), "a server that is down is no configuration error")
	requireNoSecret(t, logs, password(t, bed.DirectURL))

	testbed.Fault(t, bed.StartPostgres(ctx))
	c := newCollector()
	require.NoError(t, p.Listener().Listen(ctx, "down", c.handle))
	require.NoError(t, p.Notify(ctx, "down", "up"))
	c.wait(t, 1, 10*time.Second)
	assert.True(t, p.Stat().Listener.Connected)
}

// A server that accepts TCP connections and never answers: Listen with a
// 2s context returns an error (not nil, not ErrClosed), Close returns
// promptly, and no goroutine is left.
func TestListenerHungServer(t *testing.T) {
	noLeaks(t)
	m := newMute(t)
	url := "postgres://app:hung-secret@" + m.ln.Addr().String() + "/supapool?sslmode=disable"
	core, logs := observer.New(zap.DebugLevel)
	p, err := pool.New(testCtx(t), pool.Config{AppName: appName(t), DirectURL: url, Logger: zap.New(core)})
	require.NoError(t, err)
	defer p.Close()
	l := p.Listener()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = listenWithin(t, l, ctx, "hung", 15*time.Second)
	require.Error(t, err)
	assert.NotErrorIs(t, err, pool.ErrClosed)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	t.Logf("Listen: %v", err)
	assert.Positive(t, m.accepted(), "the listener did reach the hung server")
	// Unlisten needs no connection, but run may be in the middle of a
	// (bounded) connection attempt: it returns within its context.
	uctx, ucancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ucancel()
	uerr := make(chan error, 1)
	go func() { uerr <- l.Unlisten(uctx, "hung") }()
	select {
	case err := <-uerr:
		assert.NotErrorIs(t, err, pool.ErrClosed)
	case <-time.After(15 * time.Second):
		t.Fatal("Unlisten did not return within 15s with a hung server")
	}

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s with a hung server")
	}
	assert.ErrorIs(t, l.Listen(context.Background(), "after", func(context.Context, *pgconn.Notification) error { return nil }), pool.ErrClosed)
	requireNoSecret(t, logs, "hung-secret")
}
