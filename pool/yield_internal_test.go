package pool

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadFull(t *testing.T) {
	for _, tc := range []struct {
		clients, usable int
		want            bool
	}{
		{57, 57, true},
		{56, 57, false}, // a budget that fits leaves a slot or a few
		{60, 57, true},  // superusers in reserved slots
		{0, 0, true},
	} {
		t.Run(fmt.Sprintf("%d of %d", tc.clients, tc.usable), func(t *testing.T) {
			assert.Equal(t, tc.want, load{clients: tc.clients, usable: tc.usable}.full())
		})
	}
}

// Closing a client connection to a pooler frees no server slot, so only a
// route to the server itself yields.
func TestOnlyRoutesToTheServerYield(t *testing.T) {
	for _, tc := range []struct {
		pooled     string
		wantPooled bool
	}{
		{"postgres://u:pw@127.0.0.1:2/db?pgbouncer=true", false},
		{"postgres://u:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres", false},
		{"postgres://u:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres", false},
		{"", true},
	} {
		t.Run(tc.pooled, func(t *testing.T) {
			p, err := New(context.Background(), Config{DirectURL: "postgres://u:pw@127.0.0.1:1/db", PooledURL: tc.pooled})
			require.NoError(t, err)
			defer p.Close()
			assert.Equal(t, tc.wantPooled, p.pooled.yield.after > 0)
			require.NotNil(t, p.direct)
			assert.Equal(t, defaultYieldAfter, p.direct.yield.after)
		})
	}
}
