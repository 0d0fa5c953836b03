package main

import (
	"sync"
)

// cache keeps items read by GET /items/{id}. Every instance of the service
// has its own, so a write on one instance reaches the others only through
// NOTIFY on itemsChannel.
//
// gen guards against a read that raced a write: a reader that fetched an
// item before an invalidation must not store that old copy after it.
// Comparing one generation for the whole cache is coarse but cannot be
// wrong, and writes are rare next to reads.
type cache struct {
	mu    sync.Mutex
	gen   uint64
	items map[int64]Item
}

func newCache() *cache { return &cache{items: map[int64]Item{}} }

// get returns the cached item, or the generation to pass to put.
func (c *cache) get(id int64) (Item, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[id]
	return it, ok, c.gen
}

// put stores it unless the cache was invalidated since gen was read.
func (c *cache) put(it Item, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.items[it.ID] = it
	}
}

func (c *cache) invalidate(ids ...int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range ids {
		delete(c.items, id)
	}
}

func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.items)
}

// event is one Server-Sent Event.
type event struct {
	name, data string
}

// broker fans events out to the /events streams. A client too slow to
// keep up is disconnected rather than sent a stream with holes in it;
// browsers' EventSource reconnects by itself.
type broker struct {
	mu      sync.Mutex
	closed  bool
	clients map[chan event]struct{}
}

// clientBuffer is how many events a stream may fall behind.
const clientBuffer = 64

func newBroker() *broker { return &broker{clients: map[chan event]struct{}{}} }

// subscribe returns a channel of events, closed when the client is
// dropped or the broker closes; ok is false once the broker is closed.
func (b *broker) subscribe() (ch chan event, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false
	}
	ch = make(chan event, clientBuffer)
	b.clients[ch] = struct{}{}
	return ch, true
}

func (b *broker) unsubscribe(ch chan event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.clients[ch]; ok {
		delete(b.clients, ch)
		close(ch)
	}
}

func (b *broker) publish(e event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.clients {
		select {
		case ch <- e:
		default:
			delete(b.clients, ch)
			close(ch)
		}
	}
}

// close ends every stream, so that http.Server.Shutdown can finish.
func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.clients {
		delete(b.clients, ch)
		close(ch)
	}
}
