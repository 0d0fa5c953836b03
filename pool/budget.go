package pool

import (
	"fmt"
	"strings"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/redact"
)

// applyBudget takes this app's caps from the budget plan in the file named
// by SUPAPOOL_BUDGET, so every instance of every app sizes itself from one
// shared spec instead of numbers copied by hand. Its errors mask any
// credentials the spec file quotes (a URL pasted as a value), and a
// connection string set as the path is described, not printed; budget's
// error types still match with errors.As.
func applyBudget(c *Config, path string) error {
	if path == "" {
		return nil
	}
	if redact.LooksLikeConnString(path) {
		return fmt.Errorf("pool: %s holds a value that looks like a connection string, expected the path of a budget spec file", EnvBudget)
	}
	spec, err := budget.LoadFile(path)
	if err != nil {
		return fmt.Errorf("pool: %s: %w", EnvBudget, redact.Wrap(err))
	}
	plan, err := budget.Plan(spec)
	if err != nil {
		return fmt.Errorf("pool: %s=%s: %w", EnvBudget, path, redact.Wrap(err))
	}
	alloc, ok := plan.Lookup(c.AppName)
	if !ok {
		names := make([]string, 0, len(spec.Apps))
		for _, a := range spec.Apps {
			names = append(names, a.Name)
		}
		return fmt.Errorf("pool: app %s (%s) is not in the budget %s (%s); it has: %s", redact.Value(c.AppName), EnvAppName, path, EnvBudget, redact.Text(strings.Join(names, ", ")))
	}
	c.weights, c.instances = elasticWeights(plan), elasticInstances(plan)
	c.MaxConns, c.MaxDirectConns = alloc.MaxConns, alloc.MaxDirectConns
	c.NoDirect = alloc.MaxDirectConns == 0
	c.MaxHeavyConns, c.NoHeavy = alloc.MaxHeavyConns, alloc.MaxHeavyConns == 0
	if len(spec.Replicas) > 0 && len(c.ReplicaURLs) > 0 {
		// A spec that plans replicas plans every app's share of them.
		if alloc.MaxReplicaConns == 0 {
			return fmt.Errorf("pool: %s is set but the budget %s (%s) gives app %s no replica connections; set its apps[].replica", EnvReplicaURL, path, EnvBudget, redact.Value(c.AppName))
		}
		c.MaxReplicaConns = alloc.MaxReplicaConns
	}
	c.maxConnsFrom, c.maxDirectConnsFrom = EnvBudget, EnvBudget
	return nil
}

// elasticWeights is each app's weight in elastic sharing: the server
// connections its plan gives one instance (pooled ones only when the spec
// has no pooler), so that when the planned instances are the live ones,
// elastic shares are the plan's caps and a budget that fits closes
// nothing.
func elasticWeights(plan *budget.Allocation) map[string]int {
	noPooler := plan.Spec().Pooler == nil
	w := map[string]int{}
	for _, a := range plan.Spec().Apps {
		al := plan.For(a.Name)
		n := int(al.MaxDirectConns)
		if noPooler {
			n += int(al.MaxConns)
		}
		w[a.Name] = max(1, n)
	}
	return w
}

// elasticInstances is each app's planned instance count: while the live
// instances are within it, the plan fits and shares are the plan's.
func elasticInstances(plan *budget.Allocation) map[string]int {
	n := map[string]int{}
	for _, a := range plan.Spec().Apps {
		n[a.Name] = a.Instances
	}
	return n
}
