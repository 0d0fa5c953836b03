package pool

// WithoutClimbLook makes routes climb past two connections without a look
// first, as before route.mayClimb, until restore is called: for the
// side-by-side measurements of what it changes.
func WithoutClimbLook() (restore func()) {
	climbLookOff.Store(true)
	return func() { climbLookOff.Store(false) }
}
