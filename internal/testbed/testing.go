package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

var shared struct {
	sync.Mutex
	main bool
	bed  *Bed
	err  error
	done bool
}

// Main runs a package's tests and then stops the bed they shared. Call it
// from TestMain:
//
//	func TestMain(m *testing.M) { testbed.Main(m) }
//
// The shared bed starts on the first [Start], so a package whose tests are
// all skipped starts no server.
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.bed != nil {
		shared.bed.Close()
	}
	shared.Unlock()
	os.Exit(code)
}

// Start returns the test binary's shared bed (default Options with a
// session pooler too), starting it on first use. Tests must not break it:
// those that restart or stop servers take their own with [NewT]. It fails
// the test when the servers cannot start, naming what to install.
func Start(tb testing.TB) *Bed {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		tb.Fatal("testbed: Start needs the package's TestMain to call testbed.Main(m), which stops the shared servers")
	}
	if !shared.done {
		shared.done = true
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.bed, shared.err = New(ctx, Options{SessionPooler: true})
	}
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.bed
}

// NewT starts a private bed for one test and closes it when the test ends.
// When the bed would point at external servers (TESTBED_DIRECT_URL), the
// test is skipped, because private beds exist to be broken or reshaped.
func NewT(tb testing.TB, opts Options) *Bed {
	tb.Helper()
	if os.Getenv("TESTBED_DIRECT_URL") != "" {
		tb.Skip("testbed: TESTBED_DIRECT_URL is set; this test needs servers it can start, stop and resize")
	}
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := New(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b
}

// Fault runs a fault control and skips the test when the bed does not own
// its servers, failing it on any other error.
func Fault(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNoProcessControl) {
		tb.Skip(err.Error())
	}
	if err != nil {
		tb.Fatal(fmt.Errorf("fault control: %w", err))
	}
}
