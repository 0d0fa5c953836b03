package pool_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// TestExecModeReadyLog reads the "pool ready" line's exec mode: the mode
// the pooled route uses and who chose it; where the probe decides, the
// decision follows on its own line once the first connection answered,
// naming the mode, the one before and the probe's reason.
func TestExecModeReadyLog(t *testing.T) {
	bed := testbed.Start(t)
	capable := testbed.TrixieBouncerT(t, bed, 200)
	for _, tc := range []struct {
		name         string
		mod          func(*pool.Config)
		ready, by    string
		chosen       string // "" when no decision line is expected
		chosenReason string
	}{
		{"probe on the capable pooler", func(c *pool.Config) { c.PooledURL = capable.URL }, "cache_describe", "probe pending", "cache_statement", "the pooler renames prepared statements"},
		{"probe on PgBouncer 1.18", nil, "cache_describe", "probe pending", "cache_describe", "the server sees each client's statement names"},
		{"set by the user", func(c *pool.Config) { c.ExecMode = pgx.QueryExecModeExec }, "exec", "the user", "", ""},
		{"no pooler", func(c *pool.Config) { c.PooledURL = "" }, "cache_statement", "not a transaction pooler", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			p := newPool(t, bed, func(c *pool.Config) {
				c.Logger = zap.New(core)
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			ready := logs.FilterMessage("supapool: pool ready").All()
			require.Len(t, ready, 1)
			require.Equal(t, tc.ready, ready[0].ContextMap()["exec_mode"])
			require.Contains(t, ready[0].ContextMap()["exec_mode_by"], tc.by)
			require.Zero(t, logs.FilterMessage("supapool: pooled exec mode chosen").Len(), "nothing is decided before a connection")

			var n int
			require.NoError(t, p.QueryRow(testCtx(t), "select $1::int", 1).Scan(&n))
			chosen := logs.FilterMessage("supapool: pooled exec mode chosen").All()
			if tc.chosen == "" {
				require.Empty(t, chosen)
				return
			}
			require.Len(t, chosen, 1)
			m := chosen[0].ContextMap()
			require.Equal(t, tc.chosen, m["exec_mode"])
			require.Equal(t, "cache_describe", m["was"])
			require.Contains(t, m["reason"], tc.chosenReason)
			require.Equal(t, tc.chosen, strings.ReplaceAll(p.Stat().Pooled.ExecMode.Mode.String(), " ", "_"))
		})
	}
}
