package pool

// WithoutClimbSettle makes routes climb past two connections on any look,
// whether or not instances arrived lately, as before the rule
// (elastic.settled), until restore is called: for the side-by-side
// benchmark of what it changes (BenchmarkElasticClimb).
func WithoutClimbSettle() (restore func()) {
	climbSettleOff.Store(true)
	return func() { climbSettleOff.Store(false) }
}
