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
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
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
			assert.Contains(t, errOut, "usage: budget -f spec.yaml [-naive N]")
		}
	})
}
