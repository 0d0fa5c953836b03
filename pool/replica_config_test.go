package pool

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplicaConfigFromLookup(t *testing.T) {
	env := func(kv ...string) map[string]string {
		m := map[string]string{EnvDirectURL: "postgres://postgres:" + secret + "@db.ref.supabase.co:5432/postgres", EnvAppName: "web"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := ConfigFromLookup(lookupFrom(env(EnvReplicaURL, " postgres://u:"+secret+"@r1:5432/db , postgres://u:"+secret+"@r2:6543/db?pgbouncer=true", EnvMaxReplicaLag, "2s")))
	require.NoError(t, err)
	require.Len(t, c.ReplicaURLs, 2)
	assert.Equal(t, 2*time.Second, c.MaxReplicaLag)
	r, err := c.resolve()
	require.NoError(t, err)
	assert.Equal(t, NoPooler, r.replicas[0].mode)
	assert.Equal(t, TransactionPooler, r.replicas[1].mode)
	for _, s := range []string{c.String(), fmt.Sprintf("%#v", c), fmt.Sprint(c)} {
		assert.NotContains(t, s, secret)
		assert.Contains(t, s, "r2:6543")
	}

	d, err := Config{DirectURL: env()[EnvDirectURL]}.resolve()
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, d.MaxReplicaLag)

	for _, bad := range []struct{ k, v, want string }{
		{EnvReplicaURL, "postgres://u:" + secret + "@r1/db,,", "DATABASE_REPLICA_URL: URL 2 of the comma-separated list is empty"},
		{EnvMaxReplicaLag, "5", `DATABASE_MAX_REPLICA_LAG="5", expected a positive duration`},
	} {
		_, err := ConfigFromLookup(lookupFrom(env(bad.k, bad.v)))
		require.ErrorContains(t, err, bad.want)
		assert.NotContains(t, err.Error(), secret)
	}
	_, err = Config{DirectURL: env()[EnvDirectURL], ReplicaURLs: []string{"mysql://u:" + secret + "@h/db"}}.resolve()
	require.ErrorContains(t, err, "ReplicaURLs[0] (DATABASE_REPLICA_URL)")
	assert.NotContains(t, err.Error(), secret)
}
