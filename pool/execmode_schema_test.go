package pool_test

import (
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestExecModeSchemaChange adds a column behind "select *" while callers
// run it through the capable pooler with its statement warm on every
// server connection. PgBouncer shares server-side statements by text, so
// without supapool's generation marker every later call fails with 0A000
// ("cached plan must not change result type") until the pooler's server
// connections are recycled; with it, no caller sees an error.
func TestExecModeSchemaChange(t *testing.T) {
	ctx, p, capable, admin := schemaFixture(t, "execmode_schema")
	const query = "select * from execmode_schema"
	var calls, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	run := func(goroutines, rounds int) {
		_ = fanOut(goroutines, rounds, func(int, int) error {
			calls.Add(1)
			rows, err := p.Query(ctx, query)
			if err == nil {
				for rows.Next() {
				}
				rows.Close()
				err = rows.Err()
			}
			if err != nil {
				// Counted, not returned: the test reports every failure.
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
			return nil
		})
	}
	// Warm: 16 client connections over 4 server connections, until each
	// server connection prepared the statement.
	warm := warmEvery(t, ctx, capable, func() error { run(16, 50); return nil })
	require.Equal(t, pgx.QueryExecModeCacheStatement, p.Stat().Pooled.ExecMode.Mode)
	if e := firstErr.Load(); e != nil {
		t.Fatalf("warming: %d calls failed; first: %v", failed.Load(), *e)
	}
	require.Equal(t, 4, warm, "the statement is prepared on every server connection")

	_, err := admin.Exec(ctx, "alter table execmode_schema add column b int default 2")
	require.NoError(t, err)
	for range 3 {
		run(16, 20)
	}
	if e := firstErr.Load(); e != nil {
		t.Errorf("%d of %d calls failed; first: %v", failed.Load(), calls.Load(), *e)
	}
	var a, b int
	require.NoError(t, p.QueryRow(ctx, query).Scan(&a, &b))
	require.Equal(t, [2]int{1, 2}, [2]int{a, b})
	t.Logf("%d calls, stale retries %d", calls.Load(), p.Stat().Pooled.StaleRetries)
}
