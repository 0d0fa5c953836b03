package pool_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// BenchmarkElasticClimb runs the storm without a budget file (28 pools ×
// 10 goroutines × 200 queries, caps 4, 60 connections, no pooler) side by
// side with the budget's caps 2, and with routes climbing past two
// connections on any look, whether or not instances arrived lately
// (pool.WithoutClimbSettle, as before the rule). Each iteration is one round of the three, in an order
// rotated per round; the metrics are medians over rounds: the throughput
// against budget caps 2 in the same round, the sessions the server
// opened, those closed by sharing, refused connects, looks, and the
// slowest pool's time over the median pool's (bench.Result.Spread). Run
// with -benchtime 12x for 12 rounds; -bench 'ElasticClimb/sleep' for the
// storm on pg_sleep(0.001).
func BenchmarkElasticClimb(b *testing.B) {
	bed := testbed.NewT(b, testbed.Options{MaxConnections: 60, NoPooler: true})
	for _, q := range []struct{ name, sql string }{{"select", bench.QueryAdd}, {"sleep", bench.QuerySleep}} {
		b.Run(q.name, func(b *testing.B) {
			s := bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: 200, Query: q.sql}
			spec, err := bench.WriteSpec(b.TempDir(), bench.StormSpec(s))
			require.NoError(b, err)
			names := []string{"caps2", "caps4", "caps4-unsettled"}
			got := make([]map[string][]float64, len(names))
			for i := range got {
				got[i] = map[string][]float64{}
			}
			for round := 0; round < b.N; round++ {
				qps := make([]float64, len(names))
				for k := range names {
					i := (k + round) % len(names)
					c := s
					c.Caps, c.Budget = bench.Fixed(4), ""
					if i == 0 {
						c.Caps, c.Budget = bench.Fixed(2), spec
					}
					r := stormRound(b, bed, c, i == 2)
					qps[i] = r.QPS()
					m := got[i]
					m["opened"] = append(m["opened"], float64(r.Opened))
					m["closed"] = append(m["closed"], float64(r.ElasticClosed))
					m["refused"] = append(m["refused"], float64(r.Retried))
					m["looks"] = append(m["looks"], float64(r.Views))
					m["spread"] = append(m["spread"], r.Spread)
				}
				for i := range names {
					got[i]["x"] = append(got[i]["x"], qps[i]/qps[0])
				}
			}
			for i, n := range names {
				for k, v := range got[i] {
					b.ReportMetric(median(v), n+"-"+k)
				}
				b.Logf("%s: %.2f× budget caps 2 (rounds %.2f–%.2f)", n, median(got[i]["x"]), slices.Min(got[i]["x"]), slices.Max(got[i]["x"]))
			}
		})
	}
}

// stormRound runs one storm, with routes climbing on any look when
// unsettled is set, and fails b on any error.
func stormRound(b *testing.B, bed *testbed.Bed, s bench.Storm, unsettled bool) bench.ElasticResult {
	if unsettled {
		defer pool.WithoutClimbSettle()()
	}
	r, err := bench.RunElasticStorm(testCtx(b), bed.AdminURL, bed.DirectURL, s)
	require.NoError(b, err)
	require.Zero(b, r.Errors)
	return r
}

// median is the middle value, or the mean of the two middle values of an
// even count.
func median(x []float64) float64 {
	y := slices.Clone(x)
	slices.Sort(y)
	n := len(y)
	if n%2 == 0 {
		return (y[n/2-1] + y[n/2]) / 2
	}
	return y[n/2]
}
