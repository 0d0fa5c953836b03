package monitor

import "github.com/supapool/supapool/budget"

// applyBudget marks each app's usage against the plan. Planned apps with no
// connections are added, so a dashboard shows every app the plan knows.
func applyBudget(s *Snapshot, plan *budget.Allocation) {
	shares := plan.Apps()
	if len(shares) == 0 {
		return
	}
	idx := make(map[string]int, len(s.Apps))
	for i, a := range s.Apps {
		idx[a.Application] = i
	}
	for _, sh := range shares {
		i, ok := idx[sh.Name]
		if !ok {
			s.Apps = append(s.Apps, AppUsage{Application: sh.Name, ByState: map[string]int{}})
			i = len(s.Apps) - 1
		}
		a := &s.Apps[i]
		a.Planned, a.Budget = true, sh.Conns
		a.Over = a.Total > sh.Conns
	}
	sortApps(s.Apps)
}
