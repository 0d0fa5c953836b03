package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The numbers in README come from this program; a smoke run keeps it
// working (the quick sizes are too small to quote).
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"-quick"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"pooled QueryRow latency",
		"default (cache_statement)", "baseline fails",
		"storm, naive caps 4", "0.0% errors |",
		"listener throughput", "listener latency p99",
		"monitor poll",
		"beside 100 heavy on Heavy()",
		"PgBouncer 1.24 (max_prepared_statements=200), 3-table catalog join with grouping, 10 goroutines: supapool (detected cache_statement) vs pgx cache_describe by hand",
		"C-client ceiling: PgBouncer 1.24 (max_prepared_statements=200), `select abalance from pgbench_accounts where aid = $1`, 8 clients, 3 rounds of 1s: supapool (detected cache statement) vs `pgbench -S -M prepared`",
		"C-client ceiling: PgBouncer 1.18, `select abalance from pgbench_accounts where aid = $1`, 8 clients, 3 rounds of 1s: supapool (detected cache describe) vs pgx cache_describe by hand",
		"lag queries sent (counted, ReplicaStat.LagChecks)",
		"elastic storm on ",
		"elastic, a budget that fits",
		"elastic, steady load on `pg_sleep(0.001)`", "elastic, steady load on `select $1::int + 1`",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 47 {
		t.Errorf("want a header, a rule and 45 rows, got %d lines:\n%s", n, out.String())
	}
}

func TestUnknownStep(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, run([]string{"-steps", "storms,bogus"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `unknown step "bogus"`)
	assert.Empty(t, out.String(), "nothing runs")
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}))
	assert.Equal(t, 1.5, median([]float64{2, 1}), "two rounds: their mean, not the larger")
	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
}
