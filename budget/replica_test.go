package budget

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replicaSpec is the seed's primary with two read replicas of their own
// sizes.
func replicaSpec() Spec {
	s := Spec{
		Limit: 60, Reserved: 10, Pooler: &Pooler{ServerConns: 15, MaxClients: 200},
		Apps: []App{
			{Name: "web", Instances: 3, Direct: 1, Replica: 5},
			{Name: "reports", Instances: 2, Direct: 0, Replica: 10},
			{Name: "worker", Instances: 2, Direct: 2},
		},
		Replicas: []ReplicaServer{{Name: "r1", Limit: 60, Reserved: 5}, {Name: "eu", Limit: 90, Reserved: 10}},
	}
	return s
}

// Replicas are servers of their own: each is checked against its own
// limit, replica conns are granted as asked, and the primary's plan is
// the one it would be without them.
func TestPlanReplicas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		spec     func(*Spec)
		want     map[string]int32 // MaxReplicaConns
		replicas []ReplicaShare
		err      string // whole error text when the spec does not fit
		over     []string
	}{
		{
			name:     "both replicas fit",
			want:     map[string]int32{"web": 5, "reports": 10, "worker": 0},
			replicas: []ReplicaShare{{Name: "r1", Limit: 60, Reserved: 5, ServerConns: 5 + 15 + 20}, {Name: "eu", Limit: 90, Reserved: 10, ServerConns: 10 + 15 + 20}},
		},
		{
			name: "one replica overflows: the error names it and its culprits",
			spec: func(s *Spec) { s.Replicas[0].Limit = 30 },
			err: `budget: replica "r1": needs 40 server connections, limit 30 (reserved 5): ` +
				`reports 2 instances × 10 replica = 20, web 3 instances × 5 replica = 15; ` +
				`lower instances or replica conns, or raise replica "r1"'s limit`,
			over: []string{"r1"},
		},
		{
			name: "exactly full fits",
			spec: func(s *Spec) { s.Replicas[0].Limit = 40 },
			want: map[string]int32{"web": 5, "reports": 10, "worker": 0},
			replicas: []ReplicaShare{{Name: "r1", Limit: 40, Reserved: 5, ServerConns: 40},
				{Name: "eu", Limit: 90, Reserved: 10, ServerConns: 45}},
		},
		{
			name: "both replicas overflow: one error each, in spec order",
			spec: func(s *Spec) { s.Apps[1].Replica = 40 },
			over: []string{"r1", "eu"},
		},
		{
			name: "the primary and a replica overflow: the primary's error first",
			spec: func(s *Spec) { s.Apps[2].Direct = 20; s.Replicas[1].Limit = 20 },
			over: []string{"", "eu"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := replicaSpec()
			if tt.spec != nil {
				tt.spec(&s)
			}
			p, err := Plan(s)
			if tt.over != nil {
				require.Error(t, err)
				if tt.err != "" {
					assert.EqualError(t, err, tt.err)
				}
				var names []string
				collect(err, func(ie *InfeasibleError) {
					names = append(names, ie.Replica)
					assert.Greater(t, ie.Need, ie.Limit)
				})
				assert.Equal(t, tt.over, names)
				var first *InfeasibleError
				require.True(t, errors.As(err, &first))
				assert.Equal(t, tt.over[0], first.Replica)
				return
			}
			require.NoError(t, err)
			for app, n := range tt.want {
				assert.Equal(t, n, p.For(app).MaxReplicaConns, app)
			}
			assert.Equal(t, tt.replicas, p.Replicas())
			// The primary's plan does not see the replicas.
			bare := s.clone()
			bare.Replicas = nil
			for i := range bare.Apps {
				bare.Apps[i].Replica = 0
			}
			pb, err := Plan(bare)
			require.NoError(t, err)
			assert.Equal(t, pb.ServerConns(), p.ServerConns())
			assert.Equal(t, pb.PoolerClients(), p.PoolerClients())
			for _, sh := range p.Apps() {
				assert.Equal(t, sh.Instances*int(sh.Alloc.MaxReplicaConns), sh.ReplicaConns)
				assert.Equal(t, sh.Instances*int(sh.Alloc.MaxConns+sh.Alloc.MaxDirectConns+sh.Alloc.MaxHeavyConns), sh.Conns, "replica conns are not the primary's")
			}
		})
	}
}

// collect calls f on every *InfeasibleError in err's tree, in order.
func collect(err error, f func(*InfeasibleError)) {
	if ie, ok := err.(*InfeasibleError); ok {
		f(ie)
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			collect(e, f)
		}
	}
}

func TestValidateReplicas(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		spec func(*Spec)
		want string
	}{
		{"replica conns without replica servers", func(s *Spec) { s.Replicas = nil },
			`budget: app "web": replica is 5 but the spec names no replica servers (replicas: [{name, limit, reserved}])`},
		{"negative replica conns", func(s *Spec) { s.Apps[2].Replica = -1 }, `budget: app "worker": replica must not be negative, got -1`},
		{"unnamed replica", func(s *Spec) { s.Replicas[1].Name = "" }, `budget: replicas[1]: name is empty`},
		{"duplicate replica", func(s *Spec) { s.Replicas[1].Name = "r1" }, `budget: replicas[1]: name "r1" is already used by replicas[0]`},
		{"replica without a limit", func(s *Spec) { s.Replicas[0].Limit = 0 }, `budget: replica "r1": limit must be at least 1, got 0`},
		{"replica reserved at its limit", func(s *Spec) { s.Replicas[0].Reserved = 60 }, `budget: replica "r1": limit 60 must be above reserved 60`},
		{"replica reserved negative", func(s *Spec) { s.Replicas[0].Reserved = -2 }, `budget: replica "r1": reserved must not be negative, got -2`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := replicaSpec()
			tt.spec(&s)
			_, err := Plan(s)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	// Replica servers with no app reading from them are valid.
	s := replicaSpec()
	for i := range s.Apps {
		s.Apps[i].Replica = 0
	}
	p, err := Plan(s)
	require.NoError(t, err)
	assert.Equal(t, 5, p.Replicas()[0].ServerConns)
}

func TestParseSpecReplicas(t *testing.T) {
	t.Parallel()
	s, err := ParseSpec([]byte(`
limit: 60
reserved: 10
replicas:
  - {name: r1, limit: 60, reserved: 5}
  - name: eu
    limit: 90
apps:
  - {name: web, instances: 2, replica: 3}
  - {name: api, instances: 1}
`))
	require.NoError(t, err)
	assert.Equal(t, []ReplicaServer{{Name: "r1", Limit: 60, Reserved: 5}, {Name: "eu", Limit: 90}}, s.Replicas)
	assert.Equal(t, 3, s.Apps[0].Replica)
	assert.Equal(t, 0, s.Apps[1].Replica, "replica left out is none")
	p, err := Plan(s)
	require.NoError(t, err)
	assert.Equal(t, int32(3), p.For("web").MaxReplicaConns)

	for _, tt := range []struct{ in, want string }{
		{"replicas: [{name: r1, limit: 60, reservd: 1}]", `budget: replica "r1": unknown field "reservd" (known: name, limit, reserved)`},
		{"replicas: [{limt: 60}]", `budget: replicas[0]: unknown field "limt" (known: name, limit, reserved)`},
		{"replicas: {name: r1}", `budget: replicas: want a list, got a mapping`},
		{"replicas: [r1]", `budget: replicas[0]: want a mapping of fields, got "r1"`},
		{"replicas: [{name: r1, limit: many}]", `budget: replica "r1": limit: want a whole number, got "many"`},
		{"apps: [{name: web, replicas: 2}]", `budget: app "web": unknown field "replicas" (known: name, instances, weight, min, max, direct, heavy, replica)`},
	} {
		_, err := ParseSpec([]byte(tt.in))
		assert.EqualError(t, err, tt.want, tt.in)
	}
}
