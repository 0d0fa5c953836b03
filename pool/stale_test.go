package pool_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// After a column is added behind "select *", pgx's cached description on
// every warm connection is stale and the first run of the statement on
// each connection fails. supapool retries once and retires the stale
// connections, so callers see no error.
func TestSchemaChangeDoesNotFailCallers(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	for i, route := range []struct {
		name   string
		pooled string
	}{{"through the transaction pooler", bed.PooledURL}, {"direct with pgx's default mode", ""}} {
		t.Run(route.name, func(t *testing.T) {
			p := newPool(t, bed, func(c *pool.Config) { c.PooledURL = route.pooled; c.MaxConns = 4 })
			table := fmt.Sprintf("stale_%d_%d", i, time.Now().UnixNano())
			_, err := p.Exec(ctx, "create table "+table+" (id int, v int); insert into "+table+" values (1, 2)")
			require.NoError(t, err)
			queries := map[string]string{
				"query":    "select * from " + table + " where id = $1",
				"queryrow": "select * from " + table + " where id = $1 and true",
				"exec":     "update " + table + " set v = v where id = $1 returning *",
			}
			// Warm the cache on all four connections at once.
			var conns []*pgxpool.Conn
			for i := 0; i < 4; i++ {
				c, err := p.Acquire(ctx, pool.Pooled)
				require.NoError(t, err)
				conns = append(conns, c)
			}
			for _, c := range conns {
				for _, q := range queries {
					rows, err := c.Query(ctx, q, 1)
					require.NoError(t, err)
					rows.Close()
					require.NoError(t, rows.Err())
				}
				c.Release()
			}

			_, err = p.Exec(ctx, "alter table "+table+" add column w text default 'x'")
			require.NoError(t, err)

			for i := 0; i < 12; i++ {
				rows, err := p.Query(ctx, queries["query"], 1)
				require.NoError(t, err)
				n := 0
				for rows.Next() {
					vals, err := rows.Values()
					require.NoError(t, err)
					assert.Len(t, vals, 3)
					n++
				}
				require.NoError(t, rows.Err(), "Query, run %d", i)
				assert.Equal(t, 1, n)

				var id, v int
				var w string
				require.NoError(t, p.QueryRow(ctx, queries["queryrow"], 1).Scan(&id, &v, &w), "QueryRow, run %d", i)
				assert.Equal(t, "x", w)

				_, err = p.Exec(ctx, queries["exec"], 1)
				require.NoError(t, err, "Exec, run %d", i)
			}
			assert.Positive(t, p.Stat().Pooled.StaleRetries)
		})
	}
}

// The stale retry runs a statement again only when PostgreSQL's protocol
// step failed before it ran. User code raising the same SQLSTATE and text
// ran once and is never run again.
func TestStaleRetryIgnoresUserRaisedErrors(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, nil)
	table := fmt.Sprintf("raise_%d", time.Now().UnixNano())
	// A sequence counts the runs: nextval is not rolled back with the
	// failed statement.
	_, err := p.Exec(ctx, "create sequence "+table)
	require.NoError(t, err)
	fn := table + "_f"
	_, err = p.Exec(ctx, `create function `+fn+`(code text, msg text) returns int language plpgsql as $$
		begin perform nextval('`+table+`'); raise exception using errcode = code, message = msg; end $$`)
	require.NoError(t, err)
	for _, tc := range []struct{ code, msg string }{
		{"08P01", "bind message has 2 result formats but query has 3 columns"},
		{"0A000", "cached plan must not change result type"},
	} {
		for name, call := range map[string]func() error{
			"Exec":     func() error { _, err := p.Exec(ctx, "select "+fn+"($1, $2)", tc.code, tc.msg); return err },
			"QueryRow": func() error { return p.QueryRow(ctx, "select "+fn+"($1, $2)", tc.code, tc.msg).Scan(new(int)) },
			"Query": func() error {
				rows, _ := p.Query(ctx, "select "+fn+"($1, $2)", tc.code, tc.msg)
				for rows.Next() {
				}
				return rows.Err()
			},
		} {
			t.Run(tc.code+" "+name, func(t *testing.T) {
				var before, after int64
				require.NoError(t, p.QueryRow(ctx, "select nextval('"+table+"')").Scan(&before))
				require.Error(t, call())
				require.NoError(t, p.QueryRow(ctx, "select nextval('"+table+"')").Scan(&after))
				assert.Equal(t, int64(2), after-before, "the statement ran exactly once")
				assert.Zero(t, p.Stat().Pooled.StaleRetries, "user code's error is not a stale description")
			})
		}
	}
}
