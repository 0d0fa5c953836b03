package budget

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSpec(t *testing.T) {
	t.Parallel()
	want := Spec{
		Limit:    60,
		Reserved: 10,
		Pooler:   &Pooler{ServerConns: 15, MaxClients: 200},
		Apps: []App{
			{Name: "web", Instances: 4, Weight: 2, Min: 1, Max: 10, Direct: 1},
			{Name: "worker", Instances: 2, Direct: defaultDirect},
		},
	}
	tests := []struct {
		name string
		in   string
	}{
		{"yaml", `
limit: 60
reserved: 10
pooler:
  server_conns: 15
  max_clients: 200
apps:
  - name: web
    instances: 4
    weight: 2
    min: 1
    max: 10
    direct: 1
  - {name: worker, instances: 2}
`},
		{"json", `{"limit": 60, "reserved": 10, "pooler": {"server_conns": 15, "max_clients": 200},
 "apps": [{"name": "web", "instances": 4, "weight": 2, "min": 1, "max": 10, "direct": 1},
          {"name": "worker", "instances": 2, "weight": null}]}`},
		{"whole numbers written as decimals", `{"limit": 60.0, "reserved": 10, "pooler": {"server_conns": 15, "max_clients": 2e2},
 "apps": [{"name": "web", "instances": 4, "weight": 2, "min": 1, "max": 10, "direct": 1}, {"name": "worker", "instances": 2}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSpec([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}

	t.Run("a partial spec parses, for code to complete", func(t *testing.T) {
		t.Parallel()
		got, err := ParseSpec([]byte("apps: [{name: web, instances: 2}]"))
		require.NoError(t, err)
		assert.Equal(t, Spec{Apps: []App{{Name: "web", Instances: 2, Direct: defaultDirect}}}, got)
	})
	t.Run("a numeric name is a name", func(t *testing.T) {
		t.Parallel()
		got, err := ParseSpec([]byte("apps: [{name: 2024, instances: 1}]"))
		require.NoError(t, err)
		assert.Equal(t, "2024", got.Apps[0].Name)
	})
}

// A spec file tells "direct left out" (the default) from "direct: 0" (none),
// in YAML and JSON alike.
func TestParseSpecDirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, json string
		want             int
	}{
		{"left out is the default", "{name: web, instances: 2}", `{"name": "web", "instances": 2}`, defaultDirect},
		{"null is left out", "{name: web, instances: 2, direct: null}", `{"name": "web", "instances": 2, "direct": null}`, defaultDirect},
		{"explicit 0 is none", "{name: web, instances: 2, direct: 0}", `{"name": "web", "instances": 2, "direct": 0}`, 0},
		{"explicit 0.0 is none", "{name: web, instances: 2, direct: 0.0}", `{"name": "web", "instances": 2, "direct": 0.0}`, 0},
		{"explicit 1", "{name: web, instances: 2, direct: 1}", `{"name": "web", "instances": 2, "direct": 1}`, 1},
		{"explicit 3", "{name: web, instances: 2, direct: 3}", `{"name": "web", "instances": 2, "direct": 3}`, 3},
	}
	for _, tt := range tests {
		for _, in := range []struct{ format, spec string }{
			{"yaml", "limit: 60\napps:\n  - " + tt.yaml + "\n"},
			{"json", `{"limit": 60, "apps": [` + tt.json + `]}`},
		} {
			t.Run(tt.name+"/"+in.format, func(t *testing.T) {
				t.Parallel()
				s, err := ParseSpec([]byte(in.spec))
				require.NoError(t, err)
				require.Len(t, s.Apps, 1)
				assert.Equal(t, tt.want, s.Apps[0].Direct)
				plan, err := Plan(s)
				require.NoError(t, err)
				assert.Equal(t, int32(tt.want), plan.For("web").MaxDirectConns)
				assert.Equal(t, 2*tt.want, plan.Apps()[0].ServerConns-2*int(plan.For("web").MaxConns),
					"the planner counts every direct connection, the default's too")
			})
		}
	}
	t.Run("each app of a spec on its own", func(t *testing.T) {
		t.Parallel()
		s, err := ParseSpec([]byte("limit: 60\napps:\n" +
			"  - {name: a, instances: 1}\n  - {name: b, instances: 1, direct: 0}\n  - {name: c, instances: 1, direct: 4}\n"))
		require.NoError(t, err)
		var got []int
		for _, a := range s.Apps {
			got = append(got, a.Direct)
		}
		assert.Equal(t, []int{defaultDirect, 0, 4}, got)
	})
	t.Run("a negative direct is reported by the planner", func(t *testing.T) {
		t.Parallel()
		s, err := ParseSpec([]byte("limit: 60\napps: [{name: web, instances: 1, direct: -1}]"))
		require.NoError(t, err)
		_, err = Plan(s)
		require.Error(t, err)
		assert.Equal(t, `budget: app "web": direct must not be negative, got -1`, err.Error())
	})
	t.Run("a marshalled spec parses back the same, direct: 0 included", func(t *testing.T) {
		t.Parallel()
		want := Spec{Limit: 60, Apps: []App{{Name: "a", Instances: 1}, {Name: "b", Instances: 2, Direct: 3}}}
		data, err := json.Marshal(want)
		require.NoError(t, err)
		got, err := ParseSpec(data)
		require.NoError(t, err)
		assert.Equal(t, want, got, "%s", data)
	})
}

func TestParseSpecErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"empty", " \n", "budget: spec is empty"},
		{"not a mapping", "- 1\n- 2", "budget: spec: want a mapping of fields, got a list"},
		{"unknown top-level field", "limit: 60\nlimt: 60", `budget: unknown field "limt" (known: limit, reserved, pooler, apps, replicas)`},
		{"fields are case-sensitive", "Limit: 60", `budget: unknown field "Limit" (known: limit, reserved, pooler, apps, replicas)`},
		{"unknown pooler field", "pooler: {server_conns: 1, max_client: 2}", `budget: pooler: unknown field "max_client" (known: server_conns, max_clients)`},
		{"unknown app fields", "apps: [{name: web, wieght: 2, instance: 1}]", `budget: app "web": unknown fields "instance", "wieght" (known: name, instances, weight, min, max, direct, heavy, replica)`},
		{"unknown field in an unnamed app", "apps: [{name: web, instances: 1}, {instances: 1, x: 1}]", `budget: apps[1]: unknown field "x" (known: name, instances, weight, min, max, direct, heavy, replica)`},
		{"string count", "apps: [{name: web, instances: four}]", `budget: app "web": instances: want a whole number, got "four"`},
		{"fractional count", "apps: [{name: web, instances: 1.5}]", `budget: app "web": instances: want a whole number, got 1.5`},
		{"huge count", "limit: 99999999999", "budget: limit: 99999999999 is out of range"},
		{"bool count", "reserved: true", "budget: reserved: want a whole number, got true"},
		{"pooler not a mapping", "pooler: 15", "budget: pooler: want a mapping of fields, got 15"},
		{"pooler count", "pooler: {server_conns: [1]}", "budget: pooler.server_conns: want a whole number, got a list"},
		{"apps not a list", "apps: {name: web}", "budget: apps: want a list, got a mapping"},
		{"app not a mapping", "apps: [web]", `budget: apps[0]: want a mapping of fields, got "web"`},
		{"name not a string", "apps: [{name: [a]}]", "budget: apps[0]: name: want a string, got a list"},
		{"duplicate key", "limit: 60\nlimit: 70", "budget: parse spec:"},
		{"bad yaml", "limit: [60", "budget: parse spec:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSpec([]byte(tt.in))
			require.Error(t, err)
			if strings.HasSuffix(tt.want, ":") {
				assert.True(t, strings.HasPrefix(err.Error(), tt.want), "got %q", err)
			} else {
				assert.Equal(t, tt.want, err.Error())
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	t.Run("the shipped seed example", func(t *testing.T) {
		t.Parallel()
		s, err := LoadFile(filepath.Join("..", "examples", "budget", "seed-free.yaml"))
		require.NoError(t, err)
		assert.Equal(t, seedSpec(), s)
	})
	t.Run("errors name the file", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, "spec.yaml", "apps: [{name: web, instances: -}]")
		_, err := LoadFile(path)
		require.Error(t, err)
		assert.Equal(t, "budget: spec "+path+`: app "web": instances: want a whole number, got "-"`, err.Error())
	})
	t.Run("a missing file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "nope.yaml")
		_, err := LoadFile(path)
		require.Error(t, err)
		assert.Equal(t, "budget: spec "+path+": open: no such file or directory", err.Error())
		assert.ErrorIs(t, err, fs.ErrNotExist)
	})
}

// FromEnv tests set the process environment, so they cannot run in parallel.
func TestFromEnv(t *testing.T) {
	t.Run("unset means no budget", func(t *testing.T) {
		t.Setenv(EnvVar, "")
		plan, ok, err := FromEnv()
		assert.NoError(t, err)
		assert.False(t, ok)
		assert.Nil(t, plan)
	})
	t.Run("a spec that fits", func(t *testing.T) {
		t.Setenv(EnvVar, filepath.Join("..", "examples", "budget", "seed-free.yaml"))
		plan, ok, err := FromEnv()
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, Alloc{MaxConns: 24, MaxDirectConns: 1}, plan.For("web"))
	})
	t.Run("a missing file names the variable and the path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing.yaml")
		t.Setenv(EnvVar, path)
		_, ok, err := FromEnv()
		require.Error(t, err)
		assert.False(t, ok)
		assert.Equal(t, "budget: SUPAPOOL_BUDGET="+path+": open: no such file or directory", err.Error())
		assert.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("an invalid spec names the variable, the path and the field", func(t *testing.T) {
		path := writeFile(t, "bad.yaml", "limit: 60\napps: [{name: web, instances: 0}, {name: web, instances: 1}]")
		t.Setenv(EnvVar, path)
		_, _, err := FromEnv()
		require.Error(t, err)
		assert.Equal(t,
			"budget: SUPAPOOL_BUDGET="+path+`: app "web": instances must be at least 1, got 0`+"\n"+
				"budget: SUPAPOOL_BUDGET="+path+`: apps[1]: name "web" is already used by apps[0]`,
			err.Error())
	})
	t.Run("an infeasible spec still unwraps to the figures", func(t *testing.T) {
		path := writeFile(t, "tight.json", `{"limit": 10, "reserved": 5, "apps": [{"name": "web", "instances": 6}]}`)
		t.Setenv(EnvVar, path)
		_, _, err := FromEnv()
		require.Error(t, err)
		var ie *InfeasibleError
		require.True(t, errors.As(err, &ie))
		assert.Equal(t, 17, ie.Need, "web's default direct connections count")
		assert.Equal(t, "budget: SUPAPOOL_BUDGET="+path+": needs 17 server connections, limit 10 (reserved 5): "+
			"web 6 instances × (1 direct + 1 pooled) = 12; lower instances, direct or min conns, add a pooler, or raise the limit", err.Error())
	})
}

func FuzzParseSpec(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("..", "examples", "budget", "seed-free.yaml"))
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte(`{"limit": 10, "apps": [{"name": "a", "instances": 2, "max": 3}]}`))
	f.Add([]byte("limit: 5\npooler: {server_conns: 1, max_clients: 3}\napps: [{name: a, instances: 1}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "budget: ") {
				t.Fatalf("error without the package prefix: %q", err)
			}
			return
		}
		if s.Validate() != nil {
			return
		}
		p, err := Plan(s)
		if err != nil {
			if fits(s) {
				t.Fatalf("a spec that fits was refused: %v", err)
			}
			return
		}
		if !checkPlan(t, s, p) {
			t.Fatal("plan breaks a limit")
		}
	})
}
