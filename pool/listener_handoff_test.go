package pool_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// With the direct route off, every entry point of the listener fails with
// ErrNoDirectRoute (Stat works) instead of dereferencing a nil route.
func TestListenerNoDirectRoute(t *testing.T) {
	noLeaks(t)
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.NoDirect = true })
	l := p.Listener()
	h := func(context.Context, *pgconn.Notification) error { return nil }
	assert.ErrorIs(t, l.Unlisten(ctx, "x"), pool.ErrNoDirectRoute)
	assert.ErrorIs(t, l.Listen(ctx, "x", h), pool.ErrNoDirectRoute)
	assert.ErrorIs(t, l.Unlisten(ctx, "x"), pool.ErrNoDirectRoute)
	assert.Equal(t, pool.ListenerStat{}, l.Stat())
	assert.Equal(t, pool.ListenerStat{}, p.Stat().Listener)
	require.NoError(t, p.Notify(ctx, "x", "NOTIFY needs no direct route"))
	p.Close()
	assert.ErrorIs(t, l.Unlisten(ctx, "x"), pool.ErrNoDirectRoute)
}

// storm runs Listen and Unlisten calls with short random contexts from
// many goroutines, each owning its channels (so the calls on a channel
// follow each other), and tracks which channels must be active: those
// whose last Listen returned nil with no Unlisten returning nil since.
type storm struct {
	t  *testing.T
	l  *pool.Listener
	h  pool.NotificationFunc
	mu sync.Mutex
	// active is guarded by mu; each channel's entry is changed only by its
	// owning goroutine.
	active map[string]bool
	// outcomes counts results by kind, for the log.
	outcomes map[string]int
}

func (s *storm) setActive(ch string, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[ch] = v
}

func (s *storm) count(listen bool, err error) {
	k := "unlisten"
	if listen {
		k = "listen"
	}
	switch {
	case err == nil:
		k += " ok"
	case errors.Is(err, context.DeadlineExceeded):
		k += " withdrawn"
	case strings.Contains(err.Error(), "already listening"):
		k += " already"
	default:
		k += " failed"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[k]++
}

func (s *storm) isActive(ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[ch]
}

// call runs one random command on ch with a context of at most maxCtx, and
// checks that it returns within its context plus slack.
func (s *storm) call(ch string, maxCtx, slack time.Duration, unlistenShare float64) {
	d := rand.N(maxCtx) + time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	listen := rand.Float64() >= unlistenShare
	var err error
	if listen {
		err = s.l.Listen(ctx, ch, s.h)
	} else {
		err = s.l.Unlisten(ctx, ch)
	}
	if took := time.Since(start); took > d+slack {
		s.t.Errorf("%s %q with a %s context returned after %s (err %v)", map[bool]string{true: "Listen", false: "Unlisten"}[listen], ch, d, took.Round(time.Millisecond), err)
	}
	s.count(listen, err)
	switch {
	case listen && err == nil:
		if s.isActive(ch) {
			s.t.Errorf("Listen %q returned nil, but the channel should already be active", ch)
		}
		s.setActive(ch, true)
	case listen && strings.Contains(err.Error(), "already listening"):
		if !s.isActive(ch) {
			s.t.Errorf("Listen %q: %v, but no Listen of it returned nil since its last Unlisten: a failed or withdrawn Listen became active", ch, err)
		}
	case !listen && err == nil:
		s.setActive(ch, false)
	}
	if errors.Is(err, pool.ErrClosed) {
		s.t.Errorf("%q: %v", ch, err)
	}
}

// Many concurrent Listen and Unlisten calls with short random contexts,
// first while the listener's connection is terminated again and again,
// then while the server is down: no call outlives its context by more
// than a bounded step, a Listen that returned an error never becomes
// active, and afterwards exactly the channels whose Listen returned nil
// (and were not unlistened) deliver.
func TestListenerCommandHandOffUnderChurn(t *testing.T) {
	noLeaks(t)
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 30, NoPooler: true})
	ctx := testCtx(t)
	p := newPool(t, bed, func(c *pool.Config) { c.MaxDirectConns = 4 })
	l := p.Listener()
	c := newCollector()
	s := &storm{t: t, l: l, h: c.handle, active: map[string]bool{}, outcomes: map[string]int{}}
	var all []string

	// Phase 1: the connection is terminated every few milliseconds. A
	// command run has taken finishes within one bounded step (10s).
	var kills atomic.Int64
	stopKill := make(chan struct{})
	killDone := make(chan struct{})
	go func() {
		defer close(killDone)
		for {
			select {
			case <-stopKill:
				return
			case <-time.After(time.Duration(5+rand.N(30)) * time.Millisecond):
			}
			n, _ := bed.Terminate(ctx, testbed.Filter{AppName: p.Config().AppName})
			kills.Add(int64(n))
		}
	}()
	var wg sync.WaitGroup
	const workers, perWorker = 16, 4
	for g := 0; g < workers; g++ {
		chans := make([]string, perWorker)
		for i := range chans {
			chans[i] = fmt.Sprintf("churn_%d_%d", g, i)
		}
		all = append(all, chans...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
				s.call(chans[rand.N(len(chans))], 40*time.Millisecond, 11*time.Second, 0.3)
			}
		}()
	}
	wg.Wait()
	close(stopKill)
	<-killDone
	t.Logf("phase 1: %d backends terminated; %v", kills.Load(), s.outcomes)
	clear(s.outcomes)

	// Phase 2: the server is down. No Listen can be carried out, so each
	// call must return when its context ends (slack for the race
	// detector's scheduling only), never wait for the server.
	testbed.Fault(t, bed.StopPostgres(testbed.Fast))
	down := make(chan struct{})
	for g := 0; g < 64; g++ {
		ch := fmt.Sprintf("down_%d", g)
		all = append(all, ch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
				s.call(ch, 10*time.Millisecond, 3*time.Second, 0.1)
			}
		}()
	}
	go func() { wg.Wait(); close(down) }()
	select {
	case <-down:
	case <-time.After(20 * time.Second):
		t.Error("Listen calls still blocked 18s after their contexts ended, with the server down")
	}
	testbed.Fault(t, bed.StartPostgres(ctx))
	<-down
	t.Logf("phase 2: %v", s.outcomes)

	// The listener is back: a Listen that returns nil is on a proven
	// connection (no more terminations).
	require.Eventually(t, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return l.Listen(lctx, "sentinel", c.handle) == nil
	}, 60*time.Second, 10*time.Millisecond)

	s.mu.Lock()
	defer s.mu.Unlock()
	var want []string
	for _, ch := range all {
		if s.active[ch] {
			want = append(want, ch)
		}
	}
	t.Logf("%d of %d channels active after the churn", len(want), len(all))
	assert.EqualValues(t, len(want)+1, l.Stat().Channels, "exactly the channels whose Listen returned nil are active")

	// One transaction: delivered in this order, sentinel last.
	sender, err := pgx.Connect(ctx, bed.DirectURL)
	require.NoError(t, err)
	defer sender.Close(ctx)
	b := &pgx.Batch{}
	for _, ch := range all {
		b.Queue("select pg_notify($1, 'final')", ch)
	}
	b.Queue("select pg_notify('sentinel', 'last')")
	require.NoError(t, sender.SendBatch(ctx, b).Close())
	c.wait(t, len(want)+1, 30*time.Second)
	for _, ch := range all {
		if s.active[ch] {
			assert.Equal(t, []string{"final"}, c.payloads(ch), "active channel %q", ch)
		} else {
			assert.Empty(t, c.payloads(ch), "channel %q delivered though no Listen of it stands", ch)
		}
	}
	assert.Equal(t, []string{"last"}, c.payloads("sentinel"))
}
