package budget

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Heavy lanes are granted as asked and counted where pooled connections
// go: against the server without a pooler, against the pooler's clients
// with one.
func TestPlanCountsHeavy(t *testing.T) {
	t.Run("no pooler", func(t *testing.T) {
		p, err := Plan(Spec{Limit: 60, Reserved: 10, Apps: []App{{Name: "web", Instances: 2, Direct: 1, Heavy: 2}}})
		require.NoError(t, err)
		// 50 left - 2×1 direct - 2×2 heavy = 44, 22 pooled per instance.
		assert.Equal(t, Alloc{MaxConns: 22, MaxDirectConns: 1, MaxHeavyConns: 2}, p.For("web"))
		assert.Equal(t, 60, p.ServerConns())
		assert.Equal(t, 2*(22+1+2), p.Apps()[0].Conns)
	})
	t.Run("pooler", func(t *testing.T) {
		p, err := Plan(Spec{Limit: 60, Reserved: 10, Pooler: &Pooler{ServerConns: 15, MaxClients: 100},
			Apps: []App{{Name: "web", Instances: 4, Direct: 1, Heavy: 1}}})
		require.NoError(t, err)
		assert.Equal(t, Alloc{MaxConns: 24, MaxDirectConns: 1, MaxHeavyConns: 1}, p.For("web"))
		assert.Equal(t, 100, p.PoolerClients())
		assert.Equal(t, 10+15+4, p.ServerConns())
	})
	t.Run("heavy that does not fit", func(t *testing.T) {
		_, err := Plan(Spec{Limit: 19, Apps: []App{{Name: "web", Instances: 5, Heavy: 3}}})
		var ie *InfeasibleError
		require.True(t, errors.As(err, &ie), "%v", err)
		assert.Equal(t, 5*(1+3), ie.Need)
		assert.Contains(t, err.Error(), "web 5 instances × (0 direct + 1 pooled + 3 heavy) = 20")
	})
	t.Run("file", func(t *testing.T) {
		s, err := ParseSpec([]byte("limit: 60\napps:\n  - {name: web, instances: 1, heavy: 2}\n  - {name: api, instances: 1}\n"))
		require.NoError(t, err)
		assert.Equal(t, 2, s.Apps[0].Heavy)
		assert.Equal(t, 0, s.Apps[1].Heavy, "heavy left out is none")
	})
	t.Run("negative", func(t *testing.T) {
		err := Spec{Limit: 60, Apps: []App{{Name: "web", Instances: 1, Heavy: -1}}}.Validate()
		assert.ErrorContains(t, err, `app "web": heavy must not be negative, got -1`)
	})
}
