package pool_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// fillServer opens direct connections (the app's, then the superuser's
// reserved ones) until PostgreSQL refuses even the superuser, and returns
// them for the caller to close.
func fillServer(t *testing.T, ctx context.Context, bed *testbed.Bed) []*pgx.Conn {
	t.Helper()
	var fill []*pgx.Conn
	for _, u := range []string{bed.DirectURL, bed.AdminURL} {
		for {
			c, err := pgx.Connect(ctx, u)
			if err != nil {
				break
			}
			fill = append(fill, c)
		}
	}
	require.NotEmpty(t, fill)
	t.Cleanup(func() {
		for _, c := range fill {
			c.Close(context.Background())
		}
	})
	return fill
}

// PgBouncer relays PostgreSQL's "too many clients" to its client as
// FATAL 08P01 with PostgreSQL's text when it has to open a server
// connection for a login. supapool waits for it like for 53300.
func TestPgBouncerRelaysServerFull(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 8, PoolSize: 20})
	ctx := testCtx(t)
	// A database the pooler has no server connection for yet, so the
	// first client's login needs a new one.
	pooled := strings.Replace(bed.PooledURL, "/"+testbed.Database+"?", "/postgres?", 1)
	require.NotEqual(t, bed.PooledURL, pooled)
	p := newPool(t, bed, func(c *pool.Config) { c.PooledURL = pooled })
	fill := fillServer(t, ctx, bed)

	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := p.Exec(short, "select 1")
	require.ErrorIs(t, err, pool.ErrServerFull)
	var full *pool.ServerFullError
	require.ErrorAs(t, err, &full)
	assert.Equal(t, "08P01", full.Code, "PgBouncer's relay of the server's refusal")
	assert.Contains(t, full.Message, "too many clients")

	done := make(chan error, 1)
	go func() {
		_, err := p.Exec(ctx, "select 1")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	for _, c := range fill {
		c.Close(ctx)
	}
	require.NoError(t, <-done, "a waiting caller gets through once the server has room")
}

// After PostgreSQL was down, PgBouncer answers "server login has been
// failing, try again later" for server_login_retry (1s in the bed); a
// caller waits through it within its context.
func TestPgBouncerLoginRetryIsWaitedFor(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{})
	ctx := testCtx(t)
	p := newPool(t, bed, nil)

	testbed.Fault(t, bed.StopPostgres(testbed.Fast))
	// A login while the server is down puts PgBouncer's pool into its
	// login-retry state.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if c, err := pgx.Connect(short, bed.PooledURL); err == nil {
		_, _ = c.Exec(short, "select 1")
		c.Close(ctx)
	}
	testbed.Fault(t, bed.StartPostgres(ctx))
	_, err := p.Exec(ctx, "select 1")
	require.NoError(t, err)
	t.Logf("attempts refused while PgBouncer retried its login: %d", p.Stat().Pooled.Retried)
}
