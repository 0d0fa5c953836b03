package monitor_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/pgstat"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/monitor"
)

// The monitor's snapshot and the pool's load query (pgstat.LoadQuery, the
// pool's loadQuery) agree on the client backends and the usable slots,
// seen by a superuser and by a role that other roles' sessions are hidden
// from. Both run in one transaction, which reads pg_stat_activity once, so
// they look at the same backends.
func TestSnapshotAgreesWithPoolLoad(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{NoPooler: true})
	const idle, superusers = 5, 3
	open(t, bed.DirectURL, "agree-idle", idle)
	open(t, bed.AdminURL, "agree-superuser", superusers)
	for _, tc := range []struct {
		name, url  string
		wantHidden int
	}{
		{"superuser", bed.AdminURL, 0},
		{"app role", bed.DirectURL, superusers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			c := open(t, tc.url, "agree-asker", 1)[0]
			tx, err := c.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			var clients, usable int
			require.NoError(t, tx.QueryRow(ctx, pgstat.LoadQuery, pgx.QueryExecModeSimpleProtocol).Scan(&clients, &usable))

			m := newMonitor(t, monitor.Config{DB: tx})
			s, err := m.Poll(ctx)
			require.NoError(t, err)

			assert.Equal(t, clients, s.Total, "client backends")
			assert.Equal(t, usable, s.MaxConnections-s.Reserved, "usable slots")
			assert.Equal(t, 57, usable, "60 less 3 for superusers")
			assert.GreaterOrEqual(t, s.Total, idle+superusers+1, "ours are all counted")
			assert.Equal(t, idle, appGroups(s, "agree-idle")[monitor.StateIdle].Count, "the app role's own sessions stay visible")
			assert.Equal(t, tc.wantHidden, appGroups(s, "agree-superuser")[monitor.StateHidden].Count)
			if tc.wantHidden == 0 {
				assert.Zero(t, s.Hidden)
			}
		})
	}
}
