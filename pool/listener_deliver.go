package pool

import (
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// channel is one listened channel's queue and delivery goroutine. Run
// alone sends on queue and closes it; the goroutine alone receives.
type channel struct {
	name    string
	handler NotificationFunc
	queue   chan item
	wake    chan struct{}
	pending atomic.Int64 // drops not yet attached to a queued item
}

type item struct {
	n   *pgconn.Notification
	gap int64 // notifications dropped just before this one
}

// add starts delivering a channel. Its goroutine's owner is run, which
// closes the queue (remove, or stop) to end it; close waits for it.
func (l *Listener) add(chans map[string]*channel, name string, h NotificationFunc) {
	ch := &channel{
		name:    name,
		handler: h,
		queue:   make(chan item, l.p.cfg.ListenerQueueSize),
		wake:    make(chan struct{}, 1),
	}
	chans[name] = ch
	l.channels.Store(int64(len(chans)))
	l.workers.Add(1)
	go l.deliver(ch)
}

// remove stops delivering a channel; what is queued is still delivered.
func (l *Listener) remove(chans map[string]*channel, name string) {
	if ch, ok := chans[name]; ok {
		delete(chans, name)
		close(ch.queue)
		l.channels.Store(int64(len(chans)))
	}
}

// dispatch queues a notification for its channel without ever blocking
// the reader: a full queue drops it, counts it and signals the gap.
func (l *Listener) dispatch(chans map[string]*channel, n *pgconn.Notification) {
	ch, ok := chans[n.Channel]
	if !ok {
		return // unlistened a moment ago
	}
	// Only this goroutine sends, so room seen here is still there for
	// the send; a select with a send case would evaluate the Swap even
	// when it falls to default, losing the count.
	if len(ch.queue) < cap(ch.queue) {
		ch.queue <- item{n: n, gap: ch.pending.Swap(0)}
	} else {
		ch.pending.Add(1)
		l.dropped.Add(1)
		select {
		case ch.wake <- struct{}{}:
		default:
		}
	}
}

// deliver runs a channel's handler on each queued notification, in order.
// Drops are reported in their place: those followed by a queued
// notification travel with it (item.gap), and those with nothing queued
// after them are reported as soon as the queue is empty.
func (l *Listener) deliver(ch *channel) {
	defer l.workers.Done()
	for {
		select {
		case it, ok := <-ch.queue:
			if !ok {
				if g := ch.pending.Swap(0); g > 0 {
					l.gap(ch, g)
				}
				return
			}
			if it.gap > 0 {
				l.gap(ch, it.gap)
			}
			l.handle(ch, it.n)
		case <-ch.wake:
		}
		if len(ch.queue) == 0 {
			if g := ch.pending.Swap(0); g > 0 {
				l.gap(ch, g)
			}
		}
	}
}

func (l *Listener) handle(ch *channel, n *pgconn.Notification) {
	defer func() {
		if v := recover(); v != nil {
			l.handlerErrors.Add(1)
			l.log.Error("supapool: listener handler panicked", zap.String("channel", ch.name), zap.Any("panic", v))
		}
	}()
	l.delivered.Add(1)
	if err := ch.handler(l.ctx, n); err != nil {
		l.handlerErrors.Add(1)
		l.log.Warn("supapool: listener handler failed", zap.String("channel", ch.name), zap.Error(err))
	}
}

func (l *Listener) gap(ch *channel, dropped int64) {
	if f := l.p.cfg.OnListenerGap; f != nil {
		f(l.ctx, ch.name, dropped)
		return
	}
	l.log.Warn("supapool: listener queue full; notifications dropped", zap.String("channel", ch.name), zap.Int64("dropped", dropped))
}
