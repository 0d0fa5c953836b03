package budget

import (
	"fmt"
	"testing"
)

// manyApps is far beyond a real deployment, to keep the planner's cost in
// view: it grows with the number of apps, not with the connections shared.
func manyApps(n int) Spec {
	s := Spec{Limit: 10, Pooler: &Pooler{ServerConns: 5, MaxClients: maxCount}}
	for i := range n {
		s.Apps = append(s.Apps, App{Name: fmt.Sprint("app", i), Instances: 1 + i*7%13, Weight: 1 + i*31%17})
	}
	return s
}

func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{7, 100, 1000} {
		s := manyApps(n)
		b.Run(fmt.Sprint(n, "apps"), func(b *testing.B) {
			for b.Loop() {
				if _, err := Plan(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
