package pool_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// batchLoad runs n goroutines, each sending calls batches of the catalog
// join and a trivial query, read every way a caller reads a batch (Exec,
// QueryRow, Query, or Close alone), and returns the first error.
func batchLoad(ctx context.Context, p *pool.Pool, n, calls int) error {
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if err := oneBatch(ctx, p, catalogJoin, 2, (g+i)%4, i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

// oneBatch sends [query, select $1::int + 1, query] and reads it the way
// picked by i (mod 4); query returns cols columns.
func oneBatch(ctx context.Context, p *pool.Pool, query string, cols, rel, i int) error {
	relname := []string{"pg_class", "pg_type", "pg_proc", "pg_attribute"}[rel]
	b := &pgx.Batch{}
	b.Queue(query, relname)
	b.Queue("select $1::int + 1", i)
	b.Queue(query, relname)
	br := p.SendBatch(ctx, b)
	var err error
	switch i % 4 {
	case 0:
		_, err = br.Exec()
	case 1:
		dest := make([]any, cols)
		for k := range dest {
			dest[k] = new(any)
		}
		err = br.QueryRow().Scan(dest...)
	case 2:
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			for rows.Next() {
			}
			rows.Close()
			err = rows.Err()
		}
	}
	if err == nil && i%4 != 3 {
		var n int
		err = br.QueryRow().Scan(&n)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("batch read %d: %w", i%4, err)
	}
	return nil
}

// TestExecModeBatchFallback is TestExecModeFallback with batches: start
// on the capable pooler, turn named statements off and RELOAD it under a
// batch load. A batch's first result fails (26000) before anything of the
// batch ran, so the batch is sent again: no caller sees an error.
func TestExecModeBatchFallback(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = capable.URL
		c.MaxConns = 8
	})
	ctx := testCtx(t)
	require.NoError(t, batchLoad(ctx, p, 16, 20))
	require.Equal(t, pgx.QueryExecModeCacheStatement, p.Stat().Pooled.ExecMode.Mode)

	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := batchLoad(ctx, p, 16, 5); err != nil {
				errs <- err
				return
			}
		}
	}()
	require.NoError(t, capable.SetMaxPreparedStatements(ctx, 0))
	for p.Stat().Pooled.ExecMode.Fallbacks == 0 {
		select {
		case err := <-errs:
			t.Fatalf("a batch failed: %v", err)
		case <-ctx.Done():
			t.Fatal("no fallback before the test's deadline")
		default:
		}
		require.NoError(t, batchLoad(ctx, p, 4, 5))
	}
	require.NoError(t, batchLoad(ctx, p, 16, 20))
	close(stop)
	require.NoError(t, <-errs)
	st := p.Stat().Pooled.ExecMode
	require.Equal(t, pgx.QueryExecModeCacheDescribe, st.Mode, st.Reason)
	require.Positive(t, st.Fallbacks)
	require.Zero(t, st.Unretried, "every failure came at a batch's first result")
	t.Logf("fallbacks %d", st.Fallbacks)
}

// TestExecModeBatchSchemaChange adds a column behind "select *" while
// batches run it through the capable pooler, warm on every server
// connection: the batch whose first result fails with 0A000 is sent
// again with the generation's marker, and no caller sees an error.
func TestExecModeBatchSchemaChange(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{PoolSize: 4})
	capable := testbed.TrixieBouncerT(t, bed, 200)
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	_, err = admin.Exec(ctx, `create table execmode_batch (a int); insert into execmode_batch values (1)`)
	require.NoError(t, err)
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = capable.URL
		c.MaxConns = 16
	})
	// $1 only gives the query an argument, so that it is a named
	// statement like the rest.
	const query = "select * from execmode_batch where $1::text is not null"
	cols := 1
	run := func() error {
		var wg sync.WaitGroup
		var first atomic.Pointer[error]
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					if err := oneBatch(ctx, p, query, cols, g%4, i); err != nil {
						first.CompareAndSwap(nil, &err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if e := first.Load(); e != nil {
			return *e
		}
		return nil
	}
	require.NoError(t, run())
	require.Equal(t, pgx.QueryExecModeCacheStatement, p.Stat().Pooled.ExecMode.Mode)
	require.Equal(t, 4, serversPrepared(t, ctx, capable), "the statement is prepared on every server connection")

	_, err = admin.Exec(ctx, "alter table execmode_batch add column b int default 2")
	require.NoError(t, err)
	cols = 2
	for range 3 {
		require.NoError(t, run())
	}
	require.Positive(t, p.Stat().Pooled.StaleRetries)
	b := &pgx.Batch{}
	b.Queue(query, "x")
	var a, c int
	br := p.SendBatch(ctx, b)
	require.NoError(t, br.QueryRow().Scan(&a, &c))
	require.NoError(t, br.Close())
	require.Equal(t, [2]int{1, 2}, [2]int{a, c})
}

// TestExecModeTxNotRetried runs transactions on the pooled route
// (TxRoute Pooled) through the capable pooler, then turns named
// statements off. A statement inside a transaction is never run again
// (what ran before it in the transaction is gone with the error): the
// caller gets 26000 or 42P05, Stat counts it as unretried, and the route
// falls back, so the transactions after it succeed.
func TestExecModeTxNotRetried(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = capable.URL
		c.MaxConns = 4
		c.TxRoute = pool.Pooled
	})
	ctx := testCtx(t)
	tx := func(i int) error {
		return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, "select $1::int + 1", i).Scan(&n); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "select $1::int * 2", i)
			return err
		})
	}
	for i := range 20 {
		require.NoError(t, tx(i))
	}
	require.Equal(t, pgx.QueryExecModeCacheStatement, p.Stat().Pooled.ExecMode.Mode)
	require.NoError(t, capable.SetMaxPreparedStatements(ctx, 0))
	failed := 0
	for i := range 20 {
		if err := tx(i); err != nil {
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Contains(t, []string{"26000", "42P05"}, pgErr.Code, err.Error())
			failed++
		}
	}
	st := p.Stat().Pooled.ExecMode
	require.Equal(t, pgx.QueryExecModeCacheDescribe, st.Mode, st.Reason)
	require.Positive(t, failed, "a transaction on a connection still naming its statements fails")
	require.LessOrEqual(t, failed, 4, "at most one per connection the route held (MaxConns)")
	require.Equal(t, int64(failed), st.Unretried)
	for i := range 20 {
		require.NoError(t, tx(i), "after the fallback")
	}
}
