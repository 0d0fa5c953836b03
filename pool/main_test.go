package pool_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

func TestMain(m *testing.M) { testbed.Main(m) }

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var appSeq atomic.Int64

// appName gives each test its own application_name, so tests sharing a
// bed count only their own backends.
func appName(t testing.TB) string {
	n := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return fmt.Sprintf("%s_%d", n, appSeq.Add(1))
}

// newPool builds a Pool on the bed and closes it when the test ends.
func newPool(t testing.TB, bed *testbed.Bed, mod func(*pool.Config)) *pool.Pool {
	t.Helper()
	cfg := pool.Config{
		AppName:   appName(t),
		DirectURL: bed.DirectURL,
		PooledURL: bed.PooledURL,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := pool.New(testCtx(t), cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// sampleBackends counts the bed's backends matching f every few
// milliseconds until stop is called, which returns the most seen and how
// many samples were taken.
func sampleBackends(ctx context.Context, bed *testbed.Bed, f testbed.Filter) (stop func() (max, samples int64)) {
	done := make(chan struct{})
	var maxSeen, n atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if c, err := bed.Count(ctx, f); err == nil {
				n.Add(1)
				if int64(c) > maxSeen.Load() {
					maxSeen.Store(int64(c))
				}
			}
		}
	}()
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return maxSeen.Load(), n.Load()
	}
}

// noLeaks checks, when the test ends, that it left no goroutine behind.
// Tests in this package do not run in parallel, so goroutines that exist
// at the start belong to someone else.
func noLeaks(t *testing.T) {
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// The shared test bed's process watchers live as long as the binary.
		goleak.IgnoreAnyFunction("github.com/supapool/supapool/internal/testbed.(*server).launch.func1"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
