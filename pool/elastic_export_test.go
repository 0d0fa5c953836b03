package pool

// WithoutClimbLook makes routes climb past two connections without a look
// first, as before route.climbLook, until restore is called: for the
// side-by-side benchmark of what it changes (BenchmarkElasticClimb).
func WithoutClimbLook() (restore func()) {
	climbLookOff.Store(true)
	return func() { climbLookOff.Store(false) }
}
