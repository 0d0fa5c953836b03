package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const seedTable = `app       instances  pooled/inst  direct/inst  server  pooler  of limit
web               3           24            1       3      72      5.0%
api               3           24            1       3      72      5.0%
worker            2           15            2       4      30      6.7%
notifier          1            5            2       2       5      3.3%
scheduler         1            2            1       1       2      1.7%
admin             1            5            1       1       5      1.7%
reports           2            7            0       0      14      0.0%
reserved                                           10             16.7%
pooler                                             15             25.0%
total            13                                39     200     65.0%
server conns 39 of 60, pooler clients 200 of 200
`

func runArgs(args ...string) (code int, stdout, stderr string) {
	return runEnv(func(string) string { return "" }, args...)
}

func runEnv(getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

func assertFits80(t *testing.T, s string) {
	t.Helper()
	for _, line := range strings.Split(s, "\n") {
		assert.LessOrEqual(t, utf8.RuneCountInString(line), 80, "line too wide: %q", line)
	}
}

func specFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestRun(t *testing.T) {
	t.Parallel()
	t.Run("replicas get a line each", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "spec.yaml")
		require.NoError(t, os.WriteFile(path, []byte("limit: 60\nreplicas: [{name: r1, limit: 60, reserved: 3}]\napps:\n  - {name: web, instances: 2, replica: 3}\n  - {name: jobs, instances: 1}\n"), 0o600))
		code, out, errOut := runArgs("-f", path)
		assert.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "replica r1: server conns 9 of 60 (reserved 3; web 2×3)\n")
		assertFits80(t, out)
	})
	t.Run("the seed plan", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runArgs("-f", "seed-free.yaml")
		assert.Equal(t, 0, code)
		assert.Empty(t, errOut)
		assert.Equal(t, seedTable, out)
		assertFits80(t, out)
	})
	t.Run("naive pools do not fit where the plan does", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runArgs("-f", "seed-free.yaml", "-naive", "4")
		assert.Equal(t, 0, code)
		assert.Empty(t, errOut)
		naive, planned, ok := strings.Cut(out, "\nplanned:\n")
		require.True(t, ok, out)
		assert.True(t, strings.HasPrefix(naive,
			"naive: 4 connections per instance for every app, no pooler\n"+
				"budget: needs 62 server connections, limit 60 (reserved 10): web 3 instances ×\n"+
				"    4 pooled = 12, api 3 instances × 4 pooled = 12,"), naive)
		assert.Equal(t, seedTable, planned)
		assertFits80(t, out)
	})
	t.Run("naive pools that fit are shown too", func(t *testing.T) {
		t.Parallel()
		code, out, _ := runArgs("-f", "seed-free.yaml", "-naive", "1")
		assert.Equal(t, 0, code)
		assert.Contains(t, out, "total            13                                23       -     38.3%\n")
	})
	t.Run("no pooler, long names", func(t *testing.T) {
		t.Parallel()
		path := specFile(t, "limit: 40\nreserved: 4\napps:\n"+
			"  - {name: a-very-long-application-name, instances: 2, direct: 1}\n"+
			"  - {name: b, instances: 1, weight: 2}\n")
		code, out, _ := runArgs("-f", path)
		assert.Equal(t, 0, code)
		assert.Equal(t, `app                instances  pooled/inst  direct/inst  server  pooler  of limit
a-very-long-appli…         2            8            1      18       -     45.0%
b                          1           17            1      18       -     45.0%
reserved                                                     4             10.0%
total                      3                                40       -    100.0%
server conns 40 of 40
`, out)
		assertFits80(t, out)
	})
	t.Run("an infeasible spec exits 1 with the explanation", func(t *testing.T) {
		t.Parallel()
		path := specFile(t, "limit: 10\nreserved: 4\napps: [{name: web, instances: 3, min: 2, direct: 1}]\n")
		code, out, errOut := runArgs("-f", path)
		assert.Equal(t, 1, code)
		assert.Empty(t, out)
		assert.Equal(t, "budget: needs 13 server connections, limit 10 (reserved 4): web 3 instances ×\n"+
			"    (1 direct + 2 pooled) = 9; lower instances, direct or min conns, add a\n"+
			"    pooler, or raise the limit\n", errOut)
		assertFits80(t, errOut)
	})
	t.Run("a bad file exits 1 naming it", func(t *testing.T) {
		t.Parallel()
		path := specFile(t, "limit: 10\napps: [{name: web, instances: 1, wieght: 2}]\n")
		code, _, errOut := runArgs("-f", path)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, path)
		assert.Contains(t, errOut, `unknown field "wieght"`)
	})
	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{}, {"-f"}, {"-f", "x.yaml", "extra"}, {"-f", "x.yaml", "-naive", "-1"}, {"-nope"}} {
			code, out, errOut := runArgs(args...)
			assert.Equal(t, 2, code, "%q", args)
			assert.Empty(t, out)
			assert.Contains(t, errOut, "usage: budget -f spec.yaml [-tier size] [-naive N]")
		}
	})
}

// tierSpec leaves limit and the pooler's figures to the tier, and shows the
// three kinds of direct share: left out (1), two, and none.
const tierSpec = `reserved: 10
pooler: {}
apps:
  - {name: web, instances: 2}
  - {name: jobs, instances: 1, direct: 2}
  - {name: reports, instances: 1, direct: 0}
`

const tierMicroPlan = `app      instances  pooled/inst  direct/inst  server  pooler  of limit
web              2           50            1       2     100      3.3%
jobs             1           50            2       2      50      3.3%
reports          1           50            0       0      50      0.0%
reserved                                          10             16.7%
pooler                                            15             25.0%
total            4                                29     200     48.3%
server conns 29 of 60, pooler clients 200 of 200
`

func TestRunTier(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	envTier := func(v string) func(string) string {
		return func(k string) string {
			if k == "SUPABASE_TIER" {
				return v
			}
			return ""
		}
	}
	t.Run("-tier fills in what the spec leaves out", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runEnv(noEnv, "-f", specFile(t, tierSpec), "-tier", "micro")
		assert.Equal(t, 0, code, errOut)
		assert.Empty(t, errOut)
		assert.Equal(t, "tier Micro, from -tier\n"+
			"limit 60: from the tier\n"+
			"pooler.server_conns 15: from the tier\n"+
			"pooler.max_clients 200: from the tier\n\n"+tierMicroPlan, out)
		assertFits80(t, out)
	})
	t.Run("SUPABASE_TIER does the same", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runEnv(envTier("Micro"), "-f", specFile(t, tierSpec))
		assert.Equal(t, 0, code, errOut)
		assert.Equal(t, "tier Micro, from SUPABASE_TIER\n"+
			"limit 60: from the tier\n"+
			"pooler.server_conns 15: from the tier\n"+
			"pooler.max_clients 200: from the tier\n\n"+tierMicroPlan, out)
	})
	t.Run("-tier wins over SUPABASE_TIER", func(t *testing.T) {
		t.Parallel()
		code, out, _ := runEnv(envTier("16xl"), "-f", specFile(t, tierSpec), "-tier", "small")
		assert.Equal(t, 0, code)
		assert.True(t, strings.HasPrefix(out, "tier Small, from -tier, over SUPABASE_TIER=16xl\nlimit 90: from the tier\n"), out)
		assert.Contains(t, out, "server conns 29 of 90, pooler clients 400 of 400\n")
	})
	t.Run("what the spec sets wins over the tier", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runEnv(envTier("2xlarge"), "-f", "seed-free.yaml")
		assert.Equal(t, 0, code, errOut)
		assert.Equal(t, "tier 2XL, from SUPABASE_TIER\n"+
			"limit 60: from the spec (the tier's is 380)\n"+
			"pooler.server_conns 15: from the spec (the tier's is 25)\n"+
			"pooler.max_clients 200: from the spec (the tier's is 1500)\n\n"+seedTable, out)
	})
	t.Run("some from each", func(t *testing.T) {
		t.Parallel()
		path := specFile(t, "limit: 50\npooler: {max_clients: 20}\napps: [{name: web, instances: 2}]\n")
		code, out, errOut := runEnv(noEnv, "-f", path, "-tier", "large")
		assert.Equal(t, 0, code, errOut)
		assert.True(t, strings.HasPrefix(out, "tier Large, from -tier\n"+
			"limit 50: from the spec (the tier's is 160)\n"+
			"pooler.server_conns 20: from the tier\n"+
			"pooler.max_clients 20: from the spec (the tier's is 800)\n\n"), out)
		assert.Contains(t, out, "web              2           10            1       2      20      4.0%\n")
	})
	t.Run("no pooler section plans no pooler", func(t *testing.T) {
		t.Parallel()
		path := specFile(t, "reserved: 4\napps: [{name: web, instances: 2}]\n")
		code, out, errOut := runEnv(noEnv, "-f", path, "-tier", "nano")
		assert.Equal(t, 0, code, errOut)
		assert.True(t, strings.HasPrefix(out, "tier Nano, from -tier\nlimit 60: from the tier\n"+
			"pooler: none in the spec, so none planned (pooler: {} takes the tier's)\n\n"), out)
		assert.Contains(t, out, "web              2           27            1      56       -     93.3%\n")
		assertFits80(t, out)
	})
	t.Run("the tier's limit is still checked", func(t *testing.T) {
		t.Parallel()
		path := specFile(t, "reserved: 10\npooler: {}\napps: [{name: web, instances: 40}]\n")
		code, out, errOut := runEnv(noEnv, "-f", path, "-tier", "micro")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "limit 60: from the tier\n")
		assert.Equal(t, "budget: needs 65 server connections, limit 60 (reserved 10, pooler 15): web 40\n"+
			"    instances × 1 direct = 40; lower instances or direct conns, or raise the\n"+
			"    limit\n", errOut)
	})
	t.Run("an unknown -tier names the flag and the sizes", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runEnv(envTier("micro"), "-f", specFile(t, tierSpec), "-tier", "mega")
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, "budget: -tier: unknown compute size \"mega\", expected one of Nano, Micro,\n"+
			"    Small, Medium, Large, XL, 2XL, 4XL, 8XL, 12XL, 16XL or free\n", errOut)
	})
	t.Run("an unknown SUPABASE_TIER names the variable and the sizes", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runEnv(envTier("mega"), "-f", specFile(t, tierSpec))
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, "budget: SUPABASE_TIER: unknown compute size \"mega\", expected one of Nano,\n"+
			"    Micro, Small, Medium, Large, XL, 2XL, 4XL, 8XL, 12XL, 16XL or free\n", errOut)
	})
	t.Run("no limit and no tier says where a limit comes from", func(t *testing.T) {
		t.Parallel()
		path := specFile(t, tierSpec)
		code, out, errOut := runEnv(noEnv, "-f", path)
		assert.Equal(t, 1, code)
		assert.Empty(t, out)
		assert.Equal(t, "budget: spec "+path+": limit is not set; set it, or name a compute size with -tier or SUPABASE_TIER",
			strings.ReplaceAll(strings.TrimSuffix(errOut, "\n"), "\n    ", " "))
	})
}

// main reads the real environment; this test sets it, so it cannot run in
// parallel.
func TestRunTierFromTheEnvironment(t *testing.T) {
	t.Setenv("SUPABASE_TIER", "micro")
	code, out, errOut := runEnv(os.Getenv, "-f", specFile(t, tierSpec))
	assert.Equal(t, 0, code, errOut)
	assert.True(t, strings.HasPrefix(out, "tier Micro, from SUPABASE_TIER\nlimit 60: from the tier\n"), out)
	assert.True(t, strings.HasSuffix(out, tierMicroPlan), out)
}
