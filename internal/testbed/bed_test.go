package testbed_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestServersAreRealAndAuthenticated(t *testing.T) {
	bed := testbed.Start(t)
	ctx := ctxT(t)
	for name, u := range map[string]string{"direct": bed.DirectURL, "pooled": bed.PooledURL, "session": bed.SessionURL} {
		t.Run(name, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, u)
			require.NoError(t, err)
			defer conn.Close(ctx)
			var user, method string
			require.NoError(t, conn.QueryRow(ctx, "select current_user, current_setting('password_encryption')").Scan(&user, &method))
			assert.Equal(t, testbed.AppUser, user)
			assert.Equal(t, "scram-sha-256", method)

			cfg, err := pgx.ParseConfig(u)
			require.NoError(t, err)
			cfg.Password = "wrong"
			_, err = pgx.ConnectConfig(ctx, cfg)
			require.Error(t, err, "a wrong password must be refused")
		})
	}
	conn, err := pgx.Connect(ctx, bed.AdminURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var max int
	require.NoError(t, conn.QueryRow(ctx, "select current_setting('max_connections')::int").Scan(&max))
	assert.Equal(t, testbed.DefaultMaxConnections, max)
}

// The reason supapool exists: pgx's default statement cache collides on a
// transaction-mode pooler's shared server connections.
func TestPgxDefaultCacheFailsThroughTransactionPooler(t *testing.T) {
	bed := testbed.Start(t)
	ctx := ctxT(t)

	run := func(url string) (errs int, codes map[string]int) {
		cfg, err := pgxpool.ParseConfig(url)
		require.NoError(t, err)
		cfg.MaxConns = 40
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		defer p.Close()
		codes = map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for g := 0; g < 40; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					var n int
					err := p.QueryRow(ctx, "select $1::int + 0*length($2::text)", i, "x").Scan(&n)
					if err != nil {
						mu.Lock()
						errs++
						var pgErr *pgconn.PgError
						if errors.As(err, &pgErr) {
							codes[pgErr.Code]++
						} else {
							codes["other"]++
						}
						mu.Unlock()
					}
				}
			}(g)
		}
		wg.Wait()
		return errs, codes
	}

	errs, codes := run(bed.PooledURL)
	t.Logf("through the transaction pooler: %d of 2000 queries failed: %v", errs, codes)
	assert.Positive(t, codes["42P05"]+codes["26000"], "expected prepared-statement collisions (42P05/26000) through PgBouncer in transaction mode")

	errs, codes = run(bed.DirectURL)
	assert.Zero(t, errs, "direct: %v", codes)
}

func TestListenThroughTransactionPoolerNeverDelivers(t *testing.T) {
	bed := testbed.Start(t)
	ctx := ctxT(t)

	listen := func(url, channel string) (*pgx.Conn, func(time.Duration) error) {
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close(context.Background()) })
		_, err = conn.Exec(ctx, "listen "+pgx.Identifier{channel}.Sanitize())
		require.NoError(t, err, "LISTEN itself is accepted; the failure is silent")
		return conn, func(d time.Duration) error {
			wctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			_, err := conn.WaitForNotification(wctx)
			return err
		}
	}
	notify := func(channel string) {
		conn, err := pgx.Connect(ctx, bed.DirectURL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "select pg_notify($1, 'hello')", channel)
		require.NoError(t, err)
	}

	_, waitPooled := listen(bed.PooledURL, "via_pooler")
	notify("via_pooler")
	err := waitPooled(2 * time.Second)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a LISTEN through a transaction pooler must not deliver")

	_, waitDirect := listen(bed.DirectURL, "direct")
	notify("direct")
	assert.NoError(t, waitDirect(5*time.Second))
}

func TestTooManyClientsDirect(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 10, NoPooler: true})
	ctx := ctxT(t)
	var conns []*pgx.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	})
	var lastErr error
	for i := 0; i < 12; i++ {
		c, err := pgx.Connect(ctx, bed.DirectURL)
		if err != nil {
			lastErr = err
			break
		}
		conns = append(conns, c)
	}
	require.Error(t, lastErr)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, lastErr, &pgErr)
	assert.Equal(t, "53300", pgErr.Code)
	// 10 slots minus 3 reserved for superusers.
	assert.Len(t, conns, 7)
}

func TestFaultControls(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 20})
	ctx := ctxT(t)

	cfg, err := pgx.ParseConfig(bed.DirectURL)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = "victim"
	var victims []*pgx.Conn
	for i := 0; i < 3; i++ {
		c, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		victims = append(victims, c)
	}
	tx, err := victims[2].Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "select 1")
	require.NoError(t, err)

	byApp, err := bed.CountByApp(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"idle": 2, "idle in transaction": 1}, byApp["victim"])
	n, err := bed.Count(ctx, testbed.Filter{AppName: "victim", State: "idle in transaction"})
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	killed, err := bed.Terminate(ctx, testbed.Filter{AppName: "victim", QueryPrefix: "select 1"})
	require.NoError(t, err)
	assert.Equal(t, 1, killed)
	_, err = tx.Exec(ctx, "select 2")
	assert.Error(t, err, "the terminated backend's client must see its connection gone")

	t.Run("restart postgres", func(t *testing.T) {
		for _, mode := range []testbed.Shutdown{testbed.Fast, testbed.Immediate} {
			testbed.Fault(t, bed.RestartPostgres(ctx, mode))
			require.Error(t, victims[0].Ping(ctx), "%s restart must drop old connections", mode)
			c, err := pgx.Connect(ctx, bed.DirectURL)
			require.NoError(t, err, "after %s restart", mode)
			c.Close(ctx)
		}
	})

	t.Run("stop and start pooler", func(t *testing.T) {
		c, err := pgx.Connect(ctx, bed.PooledURL)
		require.NoError(t, err)
		defer c.Close(ctx)
		testbed.Fault(t, bed.StopPooler())
		assert.Error(t, c.Ping(ctx))
		_, err = pgx.Connect(ctx, bed.PooledURL)
		assert.Error(t, err)
		testbed.Fault(t, bed.StartPooler(ctx))
		c2, err := pgx.Connect(ctx, bed.PooledURL)
		require.NoError(t, err)
		c2.Close(ctx)
	})
}

func TestCloseLeavesNothing(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 10})
	dir := bed.Dir()
	bed.Close()
	_, err := exec.Command("test", "-e", dir).CombinedOutput()
	assert.Error(t, err, "bed directory %s must be removed", dir)
	ctx := ctxT(t)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = pgx.Connect(cctx, bed.DirectURL)
	assert.Error(t, err, "postgres must be stopped")
	_, err = pgx.Connect(cctx, bed.PooledURL)
	assert.Error(t, err, "pgbouncer must be stopped")
	bed.Close() // idempotent
}

func TestErrorsDoNotLeakPasswords(t *testing.T) {
	bed := testbed.Start(t)
	cfg, err := pgx.ParseConfig(bed.DirectURL)
	require.NoError(t, err)
	assert.NotContains(t, fmt.Sprint(testbed.ErrNoProcessControl), cfg.Password)
	assert.True(t, strings.HasPrefix(cfg.Password, "pw:"), "passwords contain a URL-reserved character on purpose")
}
