package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
)

// Options say what servers to start. The zero value starts PostgreSQL with
// 60 connections and a transaction-mode PgBouncer with a pool of 10.
type Options struct {
	// MaxConnections is PostgreSQL's max_connections. Default 60, as on
	// Supabase Free.
	MaxConnections int

	// PoolSize is PgBouncer's default_pool_size: how many server
	// connections each pooler opens per user and database. Default 10.
	PoolSize int

	// MaxClientConn is PgBouncer's max_client_conn. Default 2000.
	MaxClientConn int

	// SessionPooler also starts a PgBouncer in session mode, reachable at
	// [Bed.SessionURL].
	SessionPooler bool

	// NoPooler starts PostgreSQL alone; PooledURL is then empty.
	NoPooler bool

	// Backend is where the servers come from: "local", "docker" or
	// "external". Empty: the SUPAPOOL_TEST_BACKEND variable, else
	// external when TESTBED_DIRECT_URL is set, else docker when an
	// engine answers and the images are present or can be pulled, else
	// local.
	Backend string

	// Logf receives progress lines. Default: discard.
	Logf func(format string, args ...any)
}

// Default values for Options' zero fields.
const (
	DefaultMaxConnections = 60
	DefaultPoolSize       = 10
	DefaultMaxClientConn  = 2000
)

// The roles the bed creates. The app role is an ordinary login role that
// owns the database, like a service's role on Supabase; the admin role is
// the superuser a test uses to look at and break things.
const (
	AppUser   = "app"
	AdminUser = "postgres"
	Database  = "supapool"
)

// ErrNoProcessControl is returned by fault controls when the bed points at
// servers it did not start (TESTBED_DIRECT_URL).
var ErrNoProcessControl = errors.New("testbed: servers were not started by this bed (TESTBED_DIRECT_URL is set), so they cannot be restarted or stopped")

// Bed is a running set of servers. Its URLs use the app role unless named
// otherwise; they carry passwords, so never print them.
type Bed struct {
	// DirectURL reaches PostgreSQL directly as the app role.
	DirectURL string
	// PooledURL reaches PostgreSQL through the transaction-mode PgBouncer
	// as the app role. Empty with Options.NoPooler.
	PooledURL string
	// SessionURL reaches PostgreSQL through the session-mode PgBouncer.
	// Empty unless Options.SessionPooler.
	SessionURL string
	// AdminURL reaches PostgreSQL directly as the superuser.
	AdminURL string
	// SocketURL reaches PostgreSQL directly as the app role over its Unix
	// socket (postgres://app:PW@/supapool?host=DIR&port=PORT). Empty when
	// the bed points at external servers.
	SocketURL string

	opts    Options
	backend string // local, docker or external
	dir     string
	cred    *credential
	adminPW string
	docker  *testcontainers.DockerClient // the Docker backend's client; nil on the others
	images  Images                       // the Docker backend's images

	mu       sync.Mutex
	pg       *server
	bouncers []*server // transaction first, then session
	replicas int       // replicas started (replica.go), for their directory names
	closed   bool
}

// New starts the servers and returns once all of them accept connections.
// The caller must Close the bed.
func New(ctx context.Context, opts Options) (*Bed, error) {
	if opts.MaxConnections == 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = DefaultPoolSize
	}
	if opts.MaxClientConn == 0 {
		opts.MaxClientConn = DefaultMaxClientConn
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.MaxConnections < 5 {
		return nil, fmt.Errorf("testbed: MaxConnections %d is too small: PostgreSQL reserves 3 for superusers", opts.MaxConnections)
	}
	backend, err := chooseBackend(ctx, opts)
	if err != nil {
		return nil, err
	}
	if backend == BackendExternal {
		b, err := external()
		if err != nil {
			return nil, err
		}
		b.opts = opts
		if err := b.readMaxConnections(ctx); err != nil {
			return nil, err
		}
		return b, nil
	}
	b := &Bed{opts: opts, backend: backend}
	var bins binaries
	if backend == BackendDocker {
		b.docker, b.images = docker.cli, ImagesFromEnv()
		b.cred = &credential{}
	} else {
		if bins, err = findBinaries(!opts.NoPooler); err != nil {
			return nil, err
		}
		if b.cred, err = serverUser(); err != nil {
			return nil, err
		}
	}
	if b.dir, err = os.MkdirTemp("", "supapool-testbed-"); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := b.cred.own(b.dir); err != nil {
		_ = os.RemoveAll(b.dir)
		return nil, err
	}
	start := time.Now()
	if err := b.start(ctx, bins); err != nil {
		b.Close()
		return nil, err
	}
	opts.Logf("testbed: PostgreSQL (max_connections=%d) and PgBouncer ready in %s (%s backend)", opts.MaxConnections, time.Since(start).Round(time.Millisecond), backend)
	return b, nil
}

func (b *Bed) start(ctx context.Context, bins binaries) error {
	appPW, adminPW := randomPassword(), randomPassword()
	var pg *server
	var err error
	if b.docker != nil {
		pg, err = startPostgresContainer(ctx, b, adminPW)
	} else {
		pg, err = startPostgres(ctx, b, bins, adminPW)
	}
	if err != nil {
		return err
	}
	b.pg = pg
	b.AdminURL = makeURL(AdminUser, adminPW, pg.port, "postgres")
	if err := b.bootstrap(ctx, appPW); err != nil {
		return err
	}
	b.DirectURL = makeURL(AppUser, appPW, pg.port, Database)
	sockDir := b.dir
	if b.docker != nil {
		sockDir = filepath.Join(b.dir, "sock")
	}
	b.SocketURL = (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(AppUser, appPW),
		Path:     "/" + Database,
		RawQuery: url.Values{"host": {sockDir}, "port": {strconv.Itoa(pg.port)}}.Encode(),
	}).String()
	b.adminPW = adminPW
	if b.opts.NoPooler {
		return nil
	}
	users := map[string]string{AppUser: appPW, AdminUser: adminPW}
	modes := []string{"transaction"}
	if b.opts.SessionPooler {
		modes = append(modes, "session")
	}
	for _, mode := range modes {
		var bn *server
		if b.docker != nil {
			bn, err = startBouncerContainer(ctx, b, mode, users)
		} else {
			bn, err = startBouncer(ctx, b, bins, mode, users)
		}
		if err != nil {
			return err
		}
		b.bouncers = append(b.bouncers, bn)
		u := makeURL(AppUser, appPW, bn.port, Database)
		if mode == "transaction" {
			b.PooledURL = u
		} else {
			b.SessionURL = u
		}
	}
	return nil
}

// bootstrap creates the app role and its database with a SCRAM password, so
// authentication in tests is as real as on Supabase.
func (b *Bed) bootstrap(ctx context.Context, appPW string) error {
	conn, err := pgx.Connect(ctx, b.AdminURL)
	if err != nil {
		return fmt.Errorf("testbed: connect as superuser: %w", err)
	}
	defer conn.Close(ctx)
	stmts := []string{
		"SET password_encryption = 'scram-sha-256'",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", pgx.Identifier{AppUser}.Sanitize(), quoteLiteral(appPW)),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{Database}.Sanitize(), pgx.Identifier{AppUser}.Sanitize()),
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("testbed: bootstrap: %w", err)
		}
	}
	return nil
}

// Close stops every server the bed started and removes its directory. It is
// safe to call more than once.
func (b *Bed) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for _, bn := range b.bouncers {
		bn.close()
	}
	if b.pg != nil {
		b.pg.close()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// Backend is where the bed's servers come from: local, docker or external.
func (b *Bed) Backend() string { return b.backend }

// Dir is the bed's temporary directory (server logs live there).
func (b *Bed) Dir() string { return b.dir }

// MaxConnections is the server's max_connections.
func (b *Bed) MaxConnections() int { return b.opts.MaxConnections }

// PoolSize is the pooler's server-side pool size.
func (b *Bed) PoolSize() int { return b.opts.PoolSize }

// readMaxConnections asks external servers for their max_connections.
func (b *Bed) readMaxConnections(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.AdminURL)
	if err != nil {
		return fmt.Errorf("testbed: connect to TESTBED_ADMIN_URL (or TESTBED_DIRECT_URL): %w", err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, "select current_setting('max_connections')::int").Scan(&b.opts.MaxConnections); err != nil {
		return fmt.Errorf("testbed: read max_connections of the external server: %w", err)
	}
	return nil
}

// external builds a bed from TESTBED_* variables.
func external() (*Bed, error) {
	direct := os.Getenv("TESTBED_DIRECT_URL")
	b := &Bed{
		backend:    BackendExternal,
		DirectURL:  direct,
		PooledURL:  os.Getenv("TESTBED_POOLED_URL"),
		SessionURL: os.Getenv("TESTBED_SESSION_URL"),
		AdminURL:   os.Getenv("TESTBED_ADMIN_URL"),
	}
	if b.AdminURL == "" {
		b.AdminURL = direct
	}
	for name, v := range map[string]string{"TESTBED_DIRECT_URL": b.DirectURL, "TESTBED_POOLED_URL": b.PooledURL, "TESTBED_SESSION_URL": b.SessionURL, "TESTBED_ADMIN_URL": b.AdminURL} {
		if v == "" {
			continue
		}
		if _, err := pgx.ParseConfig(v); err != nil {
			return nil, fmt.Errorf("testbed: %s is not a valid PostgreSQL URL", name)
		}
	}
	b.closed = true // nothing of ours to stop
	return b, nil
}

func makeURL(user, password string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// logTail returns the last lines of a server log, to explain a failed start.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n\t" + strings.Join(lines, "\n\t") + "\n\t(log: " + filepath.Base(path) + ")"
}
