package pool

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// kindCache remembers classify's answers by SQL text. A service sends the
// same few hundred texts again and again, and a lookup costs a hash and a
// compare of the text where classifying costs a scan of every token of it
// (about 220 ns for a 50-byte SELECT, linear in its length). classify is
// a pure function of the text, so a remembered answer is the answer.
//
// Lookups of a remembered text take no lock: they read a map that is
// never written once published (snap). Answers not yet in it wait in
// pending, under mu, and are published in a new map (the old one copied)
// once pending holds a quarter of snap's size, so that copying costs O(1)
// per text amortised; or when a pending text is asked for again and
// publishEvery has passed since the last publish, so that a text is never
// left out for long (at most one more copy per publishEvery).
//
// It is bounded, so that SQL built with literals in it cannot grow it
// without end: texts longer than maxText are never kept, and once max
// texts are kept everything pending is published and the cache is full:
// no more are added and a miss takes no lock either (classify still
// answers it). It never forgets: a service whose first max texts were
// one-off literals keeps those and checks the rest every time, as it did
// before there was a cache.
type kindCache struct {
	max, maxText int

	snap atomic.Pointer[map[string]stmtKind] // published; read without a lock, never written
	full atomic.Bool                         // max texts published: nothing more is added

	// mu guards pending and published, and serializes publishing; held
	// for map operations and a publish's copy, never across classify.
	mu        sync.Mutex
	pending   map[string]stmtKind
	published time.Time
}

// publishEvery bounds how long a text asked for again stays unpublished.
const publishEvery = time.Second

// kinds is the module's one cache of classify's answers: 4096 texts of at
// most 8 KiB each, at most 32 MiB however the texts come.
var kinds = &kindCache{max: 4096, maxText: 8 << 10}

// classify is classify(sql), remembered.
func (c *kindCache) classify(sql string) stmtKind {
	if len(sql) > c.maxText {
		return classify(sql)
	}
	if m := c.snap.Load(); m != nil {
		if k, ok := (*m)[sql]; ok {
			return k
		}
	}
	k := classify(sql)
	if !c.full.Load() {
		c.remember(sql, k)
	}
	return k
}

// remember adds sql's kind k to pending, and publishes when it is time.
func (c *kindCache) remember(sql string, k stmtKind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var snap map[string]stmtKind
	if m := c.snap.Load(); m != nil {
		snap = *m
	}
	if _, ok := snap[sql]; ok {
		return // published meanwhile
	}
	_, again := c.pending[sql]
	if !again {
		if len(snap)+len(c.pending) >= c.max {
			return
		}
		if c.pending == nil {
			c.pending = make(map[string]stmtKind)
		}
		// A copy: sql may be a slice of a larger buffer the caller would
		// let go.
		c.pending[strings.Clone(sql)] = k
	}
	now := time.Now()
	full := len(snap)+len(c.pending) >= c.max
	if !full && len(c.pending) < max(1, len(snap)/4) && (!again || now.Sub(c.published) < publishEvery) {
		return
	}
	m := make(map[string]stmtKind, len(snap)+len(c.pending))
	for s, k := range snap {
		m[s] = k
	}
	for s, k := range c.pending {
		m[s] = k
	}
	c.snap.Store(&m)
	c.pending = nil
	c.published = now
	c.full.Store(full)
}
