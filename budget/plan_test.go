package budget

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seedSpec is examples/budget/seed-free.yaml: seven apps on Supabase Free.
func seedSpec() Spec {
	return Spec{
		Limit:    60,
		Reserved: 10,
		Pooler:   &Pooler{ServerConns: 15, MaxClients: 200},
		Apps: []App{
			{Name: "web", Instances: 3, Weight: 3, Direct: 1},
			{Name: "api", Instances: 3, Weight: 3, Direct: defaultDirect},
			{Name: "worker", Instances: 2, Weight: 2, Direct: 2},
			{Name: "notifier", Instances: 1, Max: 5, Direct: 2},
			{Name: "scheduler", Instances: 1, Max: 2, Direct: 1},
			{Name: "admin", Instances: 1, Min: 2, Max: 5, Direct: defaultDirect},
			{Name: "reports", Instances: 2, Min: 2, Max: 8, Direct: 0},
		},
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    Spec
		want    map[string]Alloc
		server  int
		clients int
	}{
		{
			name: "seed: seven apps on Supabase Free through Supavisor",
			spec: seedSpec(),
			want: map[string]Alloc{
				"web": {24, 1, 0, 0}, "api": {24, 1, 0, 0}, "worker": {15, 2, 0, 0}, "notifier": {5, 2, 0, 0},
				"scheduler": {2, 1, 0, 0}, "admin": {5, 1, 0, 0}, "reports": {7, 0, 0, 0},
			},
			server:  10 + 15 + 3 + 3 + 4 + 2 + 1 + 1,
			clients: 200,
		},
		{
			name:   "one app without a pooler takes everything left",
			spec:   Spec{Limit: 60, Reserved: 10, Apps: []App{{Name: "web", Instances: 1}}},
			want:   map[string]Alloc{"web": {50, 0, 0, 0}},
			server: 60,
		},
		{
			name:   "one app, three instances: leftovers that do not divide stay unused",
			spec:   Spec{Limit: 60, Reserved: 10, Apps: []App{{Name: "web", Instances: 3, Direct: 1}}},
			want:   map[string]Alloc{"web": {15, 1, 0, 0}},
			server: 10 + 3*16,
		},
		{
			name: "weights share per instance",
			spec: Spec{Limit: 100, Apps: []App{
				{Name: "a", Instances: 1, Weight: 3},
				{Name: "b", Instances: 1, Weight: 1},
			}},
			want:   map[string]Alloc{"a": {75, 0, 0, 0}, "b": {25, 0, 0, 0}},
			server: 100,
		},
		{
			name: "weight 0 counts as 1, and an app with more instances gets more in total",
			spec: Spec{Limit: 90, Apps: []App{
				{Name: "a", Instances: 2},
				{Name: "b", Instances: 1, Weight: 1},
			}},
			want:   map[string]Alloc{"a": {30, 0, 0, 0}, "b": {30, 0, 0, 0}},
			server: 90,
		},
		{
			name: "ties go to the app listed first",
			spec: Spec{Limit: 5, Apps: []App{
				{Name: "a", Instances: 1},
				{Name: "b", Instances: 1},
			}},
			want:   map[string]Alloc{"a": {3, 0, 0, 0}, "b": {2, 0, 0, 0}},
			server: 5,
		},
		{
			name: "max caps an app and the rest goes to the others",
			spec: Spec{Limit: 50, Apps: []App{
				{Name: "a", Instances: 2, Weight: 5, Max: 4},
				{Name: "b", Instances: 1},
			}},
			want:   map[string]Alloc{"a": {4, 0, 0, 0}, "b": {42, 0, 0, 0}},
			server: 50,
		},
		{
			name: "every app capped leaves the rest unused",
			spec: Spec{Limit: 50, Pooler: &Pooler{ServerConns: 5, MaxClients: 100}, Apps: []App{
				{Name: "a", Instances: 2, Max: 4, Direct: 1},
				{Name: "b", Instances: 1, Max: 3},
			}},
			want:    map[string]Alloc{"a": {4, 1, 0, 0}, "b": {3, 0, 0, 0}},
			server:  5 + 2,
			clients: 11,
		},
		{
			name: "min above the weighted share is kept",
			spec: Spec{Limit: 20, Apps: []App{
				{Name: "a", Instances: 1, Weight: 10},
				{Name: "b", Instances: 1, Min: 8},
			}},
			want:   map[string]Alloc{"a": {12, 0, 0, 0}, "b": {8, 0, 0, 0}},
			server: 20,
		},
		{
			name: "mins exactly fill the server without a pooler",
			spec: Spec{Limit: 22, Reserved: 4, Apps: []App{
				{Name: "a", Instances: 3, Min: 2, Direct: 1},
				{Name: "b", Instances: 2, Min: 4},
				{Name: "c", Instances: 1},
			}},
			want:   map[string]Alloc{"a": {2, 1, 0, 0}, "b": {4, 0, 0, 0}, "c": {1, 0, 0, 0}},
			server: 22,
		},
		{
			name: "direct conns exactly fill the server with a pooler",
			spec: Spec{Limit: 30, Reserved: 5, Pooler: &Pooler{ServerConns: 15, MaxClients: 6}, Apps: []App{
				{Name: "a", Instances: 2, Direct: 3},
				{Name: "b", Instances: 4, Direct: 1},
			}},
			want:    map[string]Alloc{"a": {1, 3, 0, 0}, "b": {1, 1, 0, 0}},
			server:  30,
			clients: 6,
		},
		{
			name: "mins exactly fill the pooler's clients",
			spec: Spec{Limit: 30, Pooler: &Pooler{ServerConns: 15, MaxClients: 10}, Apps: []App{
				{Name: "a", Instances: 2, Min: 3},
				{Name: "b", Instances: 4},
			}},
			want:    map[string]Alloc{"a": {3, 0, 0, 0}, "b": {1, 0, 0, 0}},
			server:  15,
			clients: 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, err := Plan(tt.spec)
			require.NoError(t, err)
			got := map[string]Alloc{}
			for _, a := range tt.spec.Apps {
				got[a.Name] = plan.For(a.Name)
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.server, plan.ServerConns(), "server conns")
			assert.Equal(t, tt.clients, plan.PoolerClients(), "pooler clients")
			assert.LessOrEqual(t, plan.ServerConns(), tt.spec.Limit)
		})
	}
}

func TestPlanInfeasible(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec Spec
		want InfeasibleError
		msg  string
	}{
		{
			name: "no pooler, one short of the mins",
			spec: Spec{Limit: 21, Reserved: 4, Apps: []App{
				{Name: "a", Instances: 3, Min: 2, Direct: 1},
				{Name: "b", Instances: 2, Min: 4},
				{Name: "c", Instances: 1},
			}},
			want: InfeasibleError{
				Resource: ResourceServerConns, Need: 22, Limit: 21, Reserved: 4,
				Uses: []Use{
					{App: "a", Instances: 3, Direct: 1, Pooled: 2, Total: 9},
					{App: "b", Instances: 2, Pooled: 4, Total: 8},
					{App: "c", Instances: 1, Pooled: 1, Total: 1},
				},
			},
			msg: "budget: needs 22 server connections, limit 21 (reserved 4): " +
				"a 3 instances × (1 direct + 2 pooled) = 9, b 2 instances × 4 pooled = 8, " +
				"c 1 instance × 1 pooled = 1; lower instances, direct or min conns, add a pooler, or raise the limit",
		},
		{
			name: "pooler, direct conns one over the server",
			spec: Spec{Limit: 29, Reserved: 5, Pooler: &Pooler{ServerConns: 15, MaxClients: 100}, Apps: []App{
				{Name: "a", Instances: 2, Direct: 3},
				{Name: "b", Instances: 4, Direct: 1},
				{Name: "c", Instances: 9},
			}},
			want: InfeasibleError{
				Resource: ResourceServerConns, Need: 30, Limit: 29, Reserved: 5, PoolerServerConns: 15,
				Uses: []Use{
					{App: "a", Instances: 2, Direct: 3, Total: 6},
					{App: "b", Instances: 4, Direct: 1, Total: 4},
				},
			},
			msg: "budget: needs 30 server connections, limit 29 (reserved 5, pooler 15): " +
				"a 2 instances × 3 direct = 6, b 4 instances × 1 direct = 4; " +
				"lower instances or direct conns, or raise the limit",
		},
		{
			name: "pooler clients one short of the mins",
			spec: Spec{Limit: 30, Pooler: &Pooler{ServerConns: 15, MaxClients: 9}, Apps: []App{
				{Name: "a", Instances: 2, Min: 3, Direct: 1},
				{Name: "b", Instances: 4},
			}},
			want: InfeasibleError{
				Resource: ResourcePoolerClients, Need: 10, Limit: 9,
				Uses: []Use{
					{App: "a", Instances: 2, Pooled: 3, Total: 6},
					{App: "b", Instances: 4, Pooled: 1, Total: 4},
				},
			},
			msg: "budget: needs 10 pooler clients, limit 9: a 2 instances × 3 pooled = 6, " +
				"b 4 instances × 1 pooled = 4; lower instances or min conns, or raise the pooler's client limit",
		},
		{
			name: "seed apps with naive pools and no pooler",
			spec: func() Spec {
				s := seedSpec()
				s.Pooler = nil
				for i := range s.Apps {
					s.Apps[i] = App{Name: s.Apps[i].Name, Instances: s.Apps[i].Instances, Min: 4, Max: 4}
				}
				return s
			}(),
			want: InfeasibleError{
				Resource: ResourceServerConns, Need: 62, Limit: 60, Reserved: 10,
				Uses: []Use{
					{App: "web", Instances: 3, Pooled: 4, Total: 12},
					{App: "api", Instances: 3, Pooled: 4, Total: 12},
					{App: "worker", Instances: 2, Pooled: 4, Total: 8},
					{App: "reports", Instances: 2, Pooled: 4, Total: 8},
					{App: "notifier", Instances: 1, Pooled: 4, Total: 4},
					{App: "scheduler", Instances: 1, Pooled: 4, Total: 4},
					{App: "admin", Instances: 1, Pooled: 4, Total: 4},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, err := Plan(tt.spec)
			require.Error(t, err)
			assert.Nil(t, plan)
			var ie *InfeasibleError
			require.ErrorAs(t, err, &ie)
			assert.Equal(t, tt.want, *ie)
			assert.Equal(t, tt.want.Need-tt.want.Limit, ie.Over())
			if tt.msg != "" {
				assert.Equal(t, tt.msg, err.Error())
			}
		})
	}
}

func TestPlanInfeasibleBoth(t *testing.T) {
	t.Parallel()
	_, err := Plan(Spec{Limit: 20, Reserved: 5, Pooler: &Pooler{ServerConns: 15, MaxClients: 3}, Apps: []App{
		{Name: "a", Instances: 4, Direct: 1},
	}})
	require.Error(t, err)
	var ie *InfeasibleError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, ResourceServerConns, ie.Resource, "errors.As finds the server shortfall first")
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], "needs 24 server connections, limit 20")
	assert.Contains(t, lines[1], "needs 4 pooler clients, limit 3")
}

func TestPlanInvalid(t *testing.T) {
	t.Parallel()
	app := App{Name: "web", Instances: 1}
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"no limit", Spec{Apps: []App{app}}, []string{"budget: limit must be at least 1, got 0"}},
		{"limit too large", Spec{Limit: 2_000_000, Apps: []App{app}}, []string{"budget: limit 2000000 is above the most supported (1000000)"}},
		{"negative reserved", Spec{Limit: 60, Reserved: -1, Apps: []App{app}}, []string{"budget: reserved must not be negative, got -1"}},
		{"reserved takes all", Spec{Limit: 10, Reserved: 10, Apps: []App{app}}, []string{"budget: limit 10 must be above reserved 10"}},
		{"no apps", Spec{Limit: 60}, []string{"budget: apps: none listed"}},
		{"pooler without figures", Spec{Limit: 60, Pooler: &Pooler{}, Apps: []App{app}}, []string{
			"budget: pooler.server_conns must be at least 1, got 0",
			"budget: pooler.max_clients must be at least 1, got 0",
		}},
		{"empty name", Spec{Limit: 60, Apps: []App{app, {Instances: 1}}}, []string{"budget: apps[1]: name is empty"}},
		{"duplicate name", Spec{Limit: 60, Apps: []App{app, {Name: "api", Instances: 1}, app}}, []string{
			`budget: apps[2]: name "web" is already used by apps[0]`,
		}},
		{"zero instances", Spec{Limit: 60, Apps: []App{{Name: "web"}}}, []string{`budget: app "web": instances must be at least 1, got 0`}},
		{"negative fields", Spec{Limit: 60, Apps: []App{{Name: "web", Instances: 1, Weight: -1, Min: -2, Max: -3, Direct: -4}}}, []string{
			`budget: app "web": weight must not be negative, got -1`,
			`budget: app "web": min must not be negative, got -2`,
			`budget: app "web": max must not be negative, got -3`,
			`budget: app "web": direct must not be negative, got -4`,
		}},
		{"min above max", Spec{Limit: 60, Apps: []App{{Name: "web", Instances: 1, Min: 5, Max: 3}}}, []string{`budget: app "web": min 5 is above max 3`}},
		{"unnamed app with bad field", Spec{Limit: 60, Apps: []App{{Instances: -1}}}, []string{
			"budget: apps[0]: name is empty",
			"budget: apps[0]: instances must be at least 1, got -1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, err := Plan(tt.spec)
			require.Error(t, err)
			assert.Nil(t, plan)
			assert.Equal(t, strings.Join(tt.want, "\n"), err.Error())
			var ie *InfeasibleError
			assert.False(t, errors.As(err, &ie), "a bad spec is not an infeasible one")
			assert.Equal(t, err.Error(), tt.spec.Validate().Error())
		})
	}
}

func TestAllocation(t *testing.T) {
	t.Parallel()
	spec := seedSpec()
	plan, err := Plan(spec)
	require.NoError(t, err)

	t.Run("lookup", func(t *testing.T) {
		al, ok := plan.Lookup("worker")
		assert.True(t, ok)
		assert.Equal(t, Alloc{MaxConns: 15, MaxDirectConns: 2}, al)
		al, ok = plan.Lookup("nope")
		assert.False(t, ok)
		assert.Zero(t, al)
		assert.Zero(t, plan.For("nope"))
	})
	t.Run("apps are in spec order with totals", func(t *testing.T) {
		apps := plan.Apps()
		require.Len(t, apps, len(spec.Apps))
		for i, a := range apps {
			assert.Equal(t, spec.Apps[i].Name, a.Name)
		}
		assert.Equal(t, AppShare{
			Name: "worker", Instances: 2, Alloc: Alloc{15, 2, 0, 0},
			ServerConns: 4, PoolerClients: 30, Conns: 34,
		}, apps[2])
		sum := 0
		for _, a := range apps {
			sum += a.ServerConns
		}
		assert.Equal(t, plan.ServerConns(), sum+spec.Reserved+spec.Pooler.ServerConns)
	})
	t.Run("without a pooler pooled conns are server conns", func(t *testing.T) {
		p, err := Plan(Spec{Limit: 20, Reserved: 2, Apps: []App{{Name: "a", Instances: 2, Direct: 1}}})
		require.NoError(t, err)
		assert.Equal(t, []AppShare{{Name: "a", Instances: 2, Alloc: Alloc{8, 1, 0, 0}, ServerConns: 18, Conns: 18}}, p.Apps())
		assert.Equal(t, 20, p.ServerConns())
		assert.Zero(t, p.PoolerClients())
	})
	t.Run("the plan owns its spec", func(t *testing.T) {
		s := seedSpec()
		p, err := Plan(s)
		require.NoError(t, err)
		s.Apps[0].Name = "changed"
		s.Pooler.MaxClients = 1
		got := p.Spec()
		assert.Equal(t, seedSpec(), got)
		got.Apps[0].Name = "changed again"
		got.Pooler.ServerConns = 1
		assert.Equal(t, seedSpec(), p.Spec())
		assert.Equal(t, Alloc{24, 1, 0, 0}, p.For("web"))
	})
	t.Run("a nil plan reports nothing", func(t *testing.T) {
		var p *Allocation
		assert.Zero(t, p.For("web"))
		_, ok := p.Lookup("web")
		assert.False(t, ok)
		assert.Nil(t, p.Apps())
		assert.Zero(t, p.Spec())
		assert.Zero(t, p.ServerConns())
		assert.Zero(t, p.PoolerClients())
	})
}

// The planner counts the direct connections a spec file's apps get by
// default like any others: against the server, before pooled ones share.
func TestPlanDefaultDirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    string
		want    map[string]Alloc
		server  int
		clients int
		err     string // when the spec does not fit
	}{
		{
			name: "pooler: left out, none and two",
			spec: "limit: 20\nreserved: 2\npooler: {server_conns: 5, max_clients: 50}\napps:\n" +
				"  - {name: a, instances: 3}\n  - {name: b, instances: 2, direct: 0}\n  - {name: c, instances: 1, direct: 2}\n",
			want:    map[string]Alloc{"a": {8, 1, 0, 0}, "b": {9, 0, 0, 0}, "c": {8, 2, 0, 0}},
			server:  2 + 5 + 3*1 + 2*0 + 1*2,
			clients: 3*8 + 2*9 + 8,
		},
		{
			name:   "no pooler: the default comes off the pooled share",
			spec:   "limit: 10\napps: [{name: a, instances: 2}]",
			want:   map[string]Alloc{"a": {4, 1, 0, 0}},
			server: 2 * (4 + 1),
		},
		{
			name:   "no pooler, direct: 0: all of it pooled",
			spec:   "limit: 10\napps: [{name: a, instances: 2, direct: 0}]",
			want:   map[string]Alloc{"a": {5, 0, 0, 0}},
			server: 2 * 5,
		},
		{
			name: "the default does not fit and the error shows it",
			spec: "limit: 10\nreserved: 2\npooler: {server_conns: 5, max_clients: 50}\napps:\n" +
				"  - {name: a, instances: 4}\n  - {name: b, instances: 2, direct: 0}\n",
			err: "budget: needs 11 server connections, limit 10 (reserved 2, pooler 5): a 4 instances × 1 direct = 4; " +
				"lower instances or direct conns, or raise the limit",
		},
		{
			name: "direct: 0 makes the same apps fit",
			spec: "limit: 10\nreserved: 2\npooler: {server_conns: 5, max_clients: 50}\napps:\n" +
				"  - {name: a, instances: 4, direct: 0}\n  - {name: b, instances: 2, direct: 0}\n",
			want:    map[string]Alloc{"a": {8, 0, 0, 0}, "b": {9, 0, 0, 0}},
			server:  2 + 5,
			clients: 4*8 + 2*9,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSpec([]byte(tt.spec))
			require.NoError(t, err)
			p, err := Plan(s)
			if tt.err != "" {
				require.Error(t, err)
				assert.Equal(t, tt.err, err.Error())
				var ie *InfeasibleError
				require.True(t, errors.As(err, &ie))
				assert.Equal(t, []Use{{App: "a", Instances: 4, Direct: defaultDirect, Total: 4}}, ie.Uses)
				return
			}
			require.NoError(t, err)
			for name, want := range tt.want {
				assert.Equal(t, want, p.For(name), name)
			}
			assert.Equal(t, tt.server, p.ServerConns())
			assert.Equal(t, tt.clients, p.PoolerClients())
			assert.True(t, checkPlan(t, s, p))
		})
	}
}
