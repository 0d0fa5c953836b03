package pool

// WithoutHijackCap makes the Pools created until restore is called keep
// no slots, as before hijack.go: the test that shows what they prevent.
func WithoutHijackCap() (restore func()) {
	slotsOff.Store(true)
	return func() { slotsOff.Store(false) }
}

// SlotsInUse is the number of route r's slots taken; -1 without slots.
func SlotsInUse(p *Pool, r Route) int32 {
	rt, err := p.routeFor(r)
	if err != nil || rt.slots == nil {
		return -1
	}
	return rt.slots.inUse()
}
