package pool_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// DirectDB's connections are the direct route's: the backend that answers
// serves this very socket (not PgBouncer's), and more concurrent users
// than MaxDirectConns never show more backends than the cap.
func TestDirectDB(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 2 })
	db := p.DirectDB()
	defer db.Close()

	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	var local, client int
	require.NoError(t, conn.Raw(func(dc any) error {
		pc := dc.(interface{ Conn() *pgx.Conn }).Conn()
		local = pc.PgConn().Conn().LocalAddr().(*net.TCPAddr).Port
		return nil
	}))
	require.NoError(t, conn.QueryRowContext(ctx, "select inet_client_port()").Scan(&client))
	assert.Equal(t, local, client, "DirectDB must be served by a backend connected to this socket: the direct route")
	require.NoError(t, conn.Close())

	stop := sampleBackends(ctx, bed, testbed.Filter{AppName: p.Config().AppName})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.ExecContext(ctx, "select pg_sleep(0.05)")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	most, samples := stop()
	for err := range errs {
		require.NoError(t, err)
	}
	require.Positive(t, samples)
	assert.LessOrEqual(t, most, int64(2), "DirectDB shares MaxDirectConns")
	assert.Positive(t, most)
	assert.Zero(t, p.Stat().Direct.AcquiredConns, "database/sql keeps no connection idle")
}

// Migration tools close the *sql.DB they are given; DirectDB must keep
// working after that.
func TestDirectDBSurvivesAToolsClose(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, nil)
	first := p.DirectDB()
	require.NoError(t, first.PingContext(ctx))
	require.NoError(t, first.Close())
	var one int
	require.NoError(t, p.DirectDB().QueryRowContext(ctx, "select 1").Scan(&one))
	assert.Equal(t, 1, one)
}

// On a full server database/sql users wait like every other caller, and
// get ErrServerFull (not 53300) if their context ends first.
func TestDirectDBWaitsOnAFullServer(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 8, NoPooler: true})
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.PooledURL = "" })
	var fill []*pgx.Conn
	for {
		c, err := pgx.Connect(ctx, bed.DirectURL)
		if err != nil {
			break
		}
		fill = append(fill, c)
	}
	require.NotEmpty(t, fill)
	defer func() {
		for _, c := range fill {
			c.Close(ctx)
		}
	}()
	db := p.DirectDB()
	defer db.Close()

	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err := db.PingContext(short)
	require.ErrorIs(t, err, pool.ErrServerFull)

	// Free one slot while a caller waits: it gets through.
	done := make(chan error, 1)
	go func() {
		var one int
		done <- db.QueryRowContext(ctx, "select 1").Scan(&one)
	}()
	time.Sleep(200 * time.Millisecond)
	fill[0].Close(ctx)
	fill = fill[1:]
	require.NoError(t, <-done)
}
