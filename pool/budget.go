package pool

// applyBudget is filled in when the budget package lands.
func applyBudget(c *Config, path string) error { return nil }
