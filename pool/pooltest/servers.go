package pooltest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/supapool/supapool/internal/testbed"
)

// BackendEnv is the environment variable that selects the backend:
// docker, local or external (see the package doc for the automatic
// choice when it is unset).
const BackendEnv = testbed.BackendEnv

// ErrBackend is returned by [New] when no backend can start servers, or
// SUPAPOOL_TEST_BACKEND names one that cannot; the message says what to
// install or set.
var ErrBackend = testbed.ErrBackend

// ErrNoProcessControl is returned by fault controls when the servers were
// not started by this package (external backend).
var ErrNoProcessControl = testbed.ErrNoProcessControl

// Shutdown says how PostgreSQL stops in [Servers.RestartPostgres].
type Shutdown = testbed.Shutdown

// Shutdown modes.
const (
	// Fast disconnects clients and shuts down cleanly.
	Fast = testbed.Fast
	// Immediate aborts without a checkpoint, like a crash.
	Immediate = testbed.Immediate
)

// Option changes what [Start] and [New] start.
type Option func(*testbed.Options)

// WithMaxConnections sets PostgreSQL's max_connections (default 60).
func WithMaxConnections(n int) Option {
	return func(o *testbed.Options) { o.MaxConnections = n }
}

// WithPoolSize sets PgBouncer's default_pool_size (default 10).
func WithPoolSize(n int) Option { return func(o *testbed.Options) { o.PoolSize = n } }

// WithMaxClientConn sets PgBouncer's max_client_conn (default 2000).
func WithMaxClientConn(n int) Option {
	return func(o *testbed.Options) { o.MaxClientConn = n }
}

// WithSessionPooler also starts a session-mode PgBouncer ([Servers.SessionURL]).
func WithSessionPooler() Option { return func(o *testbed.Options) { o.SessionPooler = true } }

// Servers is a running PostgreSQL and its poolers. Its URLs carry
// passwords: never print them.
type Servers struct {
	// DirectURL reaches PostgreSQL directly as an ordinary login role that
	// owns the database.
	DirectURL string
	// PooledURL reaches PostgreSQL through the transaction-mode PgBouncer.
	PooledURL string
	// SessionURL reaches PostgreSQL through the session-mode PgBouncer;
	// empty unless [WithSessionPooler].
	SessionURL string
	// SuperuserURL reaches PostgreSQL directly as a superuser.
	SuperuserURL string
	// MaxConnections is PostgreSQL's max_connections; 0 when unknown
	// (external backend).
	MaxConnections int

	bed *testbed.Bed
}

// New starts the servers of the backend SUPAPOOL_TEST_BACKEND selects and
// returns once they accept connections. The caller must Close them.
func New(ctx context.Context, opts ...Option) (*Servers, error) {
	var o testbed.Options
	for _, opt := range opts {
		opt(&o)
	}
	bed, err := testbed.New(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("pooltest: %w", err)
	}
	return fromBed(bed), nil
}

func fromBed(bed *testbed.Bed) *Servers {
	return &Servers{
		DirectURL:      bed.DirectURL,
		PooledURL:      bed.PooledURL,
		SessionURL:     bed.SessionURL,
		SuperuserURL:   bed.AdminURL,
		MaxConnections: bed.MaxConnections(),
		bed:            bed,
	}
}

// Start starts servers for one test (see [New]) and stops them when the
// test ends. It fails the test when no backend can start, saying what to
// install.
func Start(tb testing.TB, opts ...Option) *Servers {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := New(ctx, append([]Option{func(o *testbed.Options) { o.Logf = tb.Logf }}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Close stops the servers it started and removes their files (and
// containers). It is safe to call more than once.
func (s *Servers) Close() { s.bed.Close() }

// Backend says where the servers came from: docker, local or external.
func (s *Servers) Backend() string { return s.bed.Backend() }
