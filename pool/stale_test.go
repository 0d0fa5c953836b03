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
