package pool_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// The exec-mode tests' fixtures: their query, their loads, the reload
// under load and the schema-change bed.

// catalogJoin is cheap to run and costly to plan: what named statements
// speed up.
const catalogJoin = `select c.relname, count(a.attname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid
where n.nspname = 'pg_catalog' and c.relname = $1
group by c.relname`

// fanOut runs n goroutines, each calling f(g, i) for i below calls until
// it fails, and returns the first error.
func fanOut(n, calls int, f func(g, i int) error) error {
	var wg sync.WaitGroup
	var first atomic.Pointer[error]
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if err := f(g, i); err != nil {
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

// execLoad runs n goroutines, each making calls rounds of QueryRow, Exec
// and Query with the catalog join, and returns the first error.
func execLoad(ctx context.Context, p *pool.Pool, n, calls int) error {
	return fanOut(n, calls, func(g, i int) error {
		rel := []string{"pg_class", "pg_type", "pg_proc", "pg_attribute"}[(g+i)%4]
		var name string
		var cols int64
		if err := p.QueryRow(ctx, catalogJoin, rel).Scan(&name, &cols); err != nil {
			return fmt.Errorf("QueryRow: %w", err)
		}
		if _, err := p.Exec(ctx, "select $1::int + 1", i); err != nil {
			return fmt.Errorf("Exec: %w", err)
		}
		rows, err := p.Query(ctx, catalogJoin, rel)
		if err != nil {
			return fmt.Errorf("Query: %w", err)
		}
		for rows.Next() {
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("Query rows: %w", err)
		}
		return nil
	})
}

// batchLoad runs n goroutines, each sending calls batches of the catalog
// join and a trivial query, read every way a caller reads a batch (Exec,
// QueryRow, Query, or Close alone), and returns the first error.
func batchLoad(ctx context.Context, p *pool.Pool, n, calls int) error {
	return fanOut(n, calls, func(g, i int) error { return oneBatch(ctx, p, catalogJoin, 2, (g+i)%4, i) })
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

// reloadUnderLoad warms p on the capable pooler (the route picks
// cache_statement), then turns the pooler's named statement support off
// and reloads it while load(16, 5) runs in a loop. It keeps going until
// the route fell back (the load's statements are cached on every client
// connection, so the next call of each fails with 26000 or 42P05 once the
// pooler passes names through), then a little longer, and fails the test
// on any error a caller saw. It returns the route's exec-mode figures and
// the calls made during the reload.
func reloadUnderLoad(t *testing.T, ctx context.Context, p *pool.Pool, capable *testbed.TrixieBouncer, load func(n, calls int) error) (pool.ExecModeStat, int64) {
	t.Helper()
	require.NoError(t, load(16, 20))
	require.Equal(t, pgx.QueryExecModeCacheStatement, p.Stat().Pooled.ExecMode.Mode)

	stop := make(chan struct{})
	errs := make(chan error, 1)
	var calls atomic.Int64
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := load(16, 5); err != nil {
				errs <- err
				return
			}
			calls.Add(16 * 5)
		}
	}()
	require.NoError(t, capable.SetMaxPreparedStatements(ctx, 0))
	for p.Stat().Pooled.ExecMode.Fallbacks == 0 {
		select {
		case err := <-errs:
			close(stop)
			t.Fatalf("a call failed: %v", err)
		case <-ctx.Done():
			close(stop)
			t.Fatal("no fallback before the test's deadline")
		default:
		}
		require.NoError(t, load(4, 5))
	}
	require.NoError(t, load(16, 20))
	close(stop)
	require.NoError(t, <-errs)
	st := p.Stat().Pooled.ExecMode
	require.Equal(t, pgx.QueryExecModeCacheDescribe, st.Mode, st.Reason)
	require.Positive(t, st.Fallbacks)
	return st, calls.Load()
}

// schemaFixture is the schema-change tests' bed: PostgreSQL behind the
// capable pooler with 4 server connections, a table of that name with
// column a = 1, an admin connection to alter it, and a Pool (MaxConns 16)
// whose pooled route goes through the capable pooler.
func schemaFixture(t *testing.T, table string) (context.Context, *pool.Pool, *testbed.TrixieBouncer, *pgx.Conn) {
	t.Helper()
	bed := testbed.NewT(t, testbed.Options{PoolSize: 4})
	capable := testbed.TrixieBouncerT(t, bed, 200)
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close(context.Background()) })
	_, err = admin.Exec(ctx, "create table "+table+" (a int); insert into "+table+" values (1)")
	require.NoError(t, err)
	p := newPool(t, bed, func(c *pool.Config) {
		c.PooledURL = capable.URL
		c.MaxConns = 16
	})
	return ctx, p, capable, admin
}

// serversPrepared counts the trixie pooler's server connections that hold
// at least one prepared statement (SHOW SERVERS, prepared_statements).
func serversPrepared(t *testing.T, ctx context.Context, tb *testbed.TrixieBouncer) int {
	t.Helper()
	n := 0
	require.NoError(t, tb.AdminRows(ctx, "SHOW SERVERS", func(row map[string]string) {
		if v := row["prepared_statements"]; v != "" && v != "0" {
			n++
		}
	}))
	return n
}

// warmEvery runs warm until each of the capable pooler's 4 server
// connections holds a prepared statement (serversPrepared), at most 20
// times, and returns how many hold one: which server connections one run
// reaches depends on scheduling (CI once saw 3 of 4 after a run), and the
// schema-change tests need the statement warm on all of them.
func warmEvery(t *testing.T, ctx context.Context, tb *testbed.TrixieBouncer, warm func() error) int {
	t.Helper()
	n := 0
	for range 20 {
		require.NoError(t, warm())
		if n = serversPrepared(t, ctx, tb); n == 4 {
			break
		}
	}
	return n
}
