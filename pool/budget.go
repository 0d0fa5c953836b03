package pool

import (
	"fmt"
	"strings"

	"github.com/supapool/supapool/budget"
)

// applyBudget takes this app's caps from the budget plan in the file named
// by SUPAPOOL_BUDGET, so every instance of every app sizes itself from one
// shared spec instead of numbers copied by hand.
func applyBudget(c *Config, path string) error {
	if path == "" {
		return nil
	}
	spec, err := budget.LoadFile(path)
	if err != nil {
		return fmt.Errorf("pool: %s: %w", EnvBudget, err)
	}
	plan, err := budget.Plan(spec)
	if err != nil {
		return fmt.Errorf("pool: %s=%s: %w", EnvBudget, path, err)
	}
	alloc, ok := plan.Lookup(c.AppName)
	if !ok {
		names := make([]string, 0, len(spec.Apps))
		for _, a := range spec.Apps {
			names = append(names, a.Name)
		}
		return fmt.Errorf("pool: app %q (%s) is not in the budget %s (%s); it has: %s", c.AppName, EnvAppName, path, EnvBudget, strings.Join(names, ", "))
	}
	c.MaxConns, c.MaxDirectConns = alloc.MaxConns, alloc.MaxDirectConns
	c.NoDirect = alloc.MaxDirectConns == 0
	c.maxConnsFrom, c.maxDirectConnsFrom = EnvBudget, EnvBudget
	return nil
}
