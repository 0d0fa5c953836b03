package pool

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cache answers as classify does, the first time (a miss) and after
// (a hit), for every case the classifier is tested on.
func TestKindCacheAnswersAsClassify(t *testing.T) {
	c := &kindCache{max: 10000, maxText: 8 << 10}
	cases := append(append([]classifyCase{}, reviewCases...), keptCases...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, c.classify(tc.sql), "miss")
			assert.Equal(t, tc.want, c.classify(tc.sql), "hit")
		})
	}
	assert.Positive(t, c.size())
}

// Neither more than max texts nor a text longer than maxText is kept, and
// what is not kept is still classified.
func TestKindCacheBounds(t *testing.T) {
	t.Run("max", func(t *testing.T) {
		c := &kindCache{max: 2, maxText: 1 << 10}
		assert.Equal(t, ordinary, c.classify("select 1"))
		assert.Equal(t, ordinary, c.classify("select 2"))
		assert.True(t, c.full.Load(), "max texts kept: full")
		assert.True(t, c.isPublished("select 2"), "the text that filled it is published at once")
		assert.Equal(t, listenStmt, c.classify("listen x"))
		assert.Equal(t, listenStmt, c.classify("listen x"))
		assert.Equal(t, 2, c.size())
	})
	t.Run("maxText", func(t *testing.T) {
		c := &kindCache{max: 10, maxText: 16}
		long := "select 1 " + strings.Repeat("-- padding\n", 2) + "; set search_path = x"
		require.Greater(t, len(long), 16)
		assert.Equal(t, setStmt, c.classify(long))
		assert.Equal(t, 0, c.size())
		assert.Equal(t, ordinary, c.classify("select 1"))
		assert.Equal(t, 1, c.size())
	})
}

// BenchmarkRouteQueryParallel is BenchmarkRouteQuery from every core at
// once, as a busy service calls it.
func BenchmarkRouteQueryParallel(b *testing.B) {
	sql := "select id, name, email from users where id = $1"
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = routeQuery(sql)
		}
	})
}

// BenchmarkClassify is the scan the cache saves.
func BenchmarkClassify(b *testing.B) {
	sql := "select id, name, email from users where id = $1"
	for i := 0; i < b.N; i++ {
		_ = classify(sql)
	}
}

// Every text kept is published: at once while the cache is small, and a
// text left pending is published when it is asked for again after
// publishEvery.
func TestKindCachePublishes(t *testing.T) {
	c := &kindCache{max: 100, maxText: 1 << 10}
	for i := range 40 {
		c.classify("select " + strconv.Itoa(i))
	}
	assert.Equal(t, 40, c.size())
	published := 0
	for i := range 40 {
		if c.isPublished("select " + strconv.Itoa(i)) {
			published++
		}
	}
	// Published at 1, 2, ... 8, then when pending reaches a quarter of
	// the published size: 10, 12, 15, 18, 22, 27, 33; 7 wait.
	assert.Equal(t, 33, published, "publishing waits for a quarter of the published size")
	last := "select 39"
	require.False(t, c.isPublished(last))
	c.classify(last)
	assert.False(t, c.isPublished(last), "asked again within publishEvery: still pending")
	c.mu.Lock()
	c.published = time.Now().Add(-publishEvery)
	c.mu.Unlock()
	c.classify(last)
	assert.True(t, c.isPublished(last), "a pending text asked for again after publishEvery")
	for i := range 40 {
		assert.Equal(t, ordinary, c.classify("select "+strconv.Itoa(i)))
	}
}

// Callers on many goroutines get classify's answers while the cache
// publishes under them (run with -race).
func TestKindCacheConcurrent(t *testing.T) {
	c := &kindCache{max: 300, maxText: 1 << 10}
	texts := make([]string, 400)
	for i := range texts {
		texts[i] = "select " + strconv.Itoa(i)
		if i%3 == 0 {
			texts[i] = "listen ch" + strconv.Itoa(i)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 2000 {
				sql := texts[(n*7+g*13)%len(texts)]
				if got, want := c.classify(sql), classify(sql); got != want {
					t.Errorf("%q: %v, want %v", sql, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, c.size(), 300)
}

// The pooled route's check goes through the module's cache: a text it
// has checked is answered from the published map.
func TestRouteQueryRemembers(t *testing.T) {
	sql := "select 'TestRouteQueryRemembers', $1::int"
	require.False(t, kinds.isPublished(sql))
	for range 3 {
		require.NoError(t, routeQuery(sql))
		kinds.mu.Lock()
		kinds.published = time.Now().Add(-publishEvery)
		kinds.mu.Unlock()
	}
	assert.True(t, kinds.isPublished(sql))
	var sse *SessionStatementError
	require.ErrorAs(t, routeQuery("listen TestRouteQueryRemembers"), &sse)
	require.ErrorAs(t, routeQuery("listen TestRouteQueryRemembers"), &sse, "a remembered refusal is still a refusal")
}

// size is, for tests, the number of texts kept, published or not.
func (c *kindCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.pending)
	if m := c.snap.Load(); m != nil {
		n += len(*m)
	}
	return n
}

// isPublished reports, for tests, whether sql is answered without a lock.
func (c *kindCache) isPublished(sql string) bool {
	m := c.snap.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[sql]
	return ok
}
