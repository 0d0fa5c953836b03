package testbed

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"

	"github.com/supapool/supapool/internal/rootfs"
)

// TrixieBouncer is a transaction-mode PgBouncer from Debian trixie (1.24,
// or on the Docker backend the image EnvPgBouncerPreparedImage names)
// in front of a Bed's PostgreSQL, beside the bed's own bookworm PgBouncer
// (1.18). It supports protocol-level named prepared statements in
// transaction mode when max_prepared_statements is above 0.
//
// It runs from a root filesystem built by internal/rootfs, through that
// filesystem's own dynamic loader and libraries (hard-linked into a
// directory of its own, beside its configuration, log and auth file), so
// that neither chroot nor a mount namespace is needed and the shared tree
// is never written to.
type TrixieBouncer struct {
	// URL reaches PostgreSQL through this PgBouncer as the app role; it
	// carries the password, so never print it.
	URL string

	dir      string
	adminURL string
	setMax   func(ctx context.Context, n int) error // writes max_prepared_statements where PgBouncer reads it

	mu  sync.Mutex // guards srv's restarts and Close
	srv *server
}

// trixieSpec is the root filesystem the bouncer runs from.
var trixieSpec = rootfs.Spec{Suite: "trixie", Packages: []string{"pgbouncer"}}

// StartTrixieBouncer starts a PgBouncer 1.24 in transaction mode in front
// of b's PostgreSQL with max_prepared_statements set to maxPrepared (0
// turns named statement support off). It builds the root filesystem on
// first use (tens of seconds, then cached). The caller must Close it.
func (b *Bed) StartTrixieBouncer(ctx context.Context, maxPrepared int) (*TrixieBouncer, error) {
	app, err := url.Parse(b.DirectURL)
	if err != nil {
		return nil, fmt.Errorf("testbed: DirectURL: %w", err)
	}
	admin, err := url.Parse(b.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("testbed: AdminURL: %w", err)
	}
	appPW, _ := app.User.Password()
	adminPW, _ := admin.User.Password()
	cred := &credential{}
	if b.docker == nil {
		if cred, err = serverUser(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "supapool-pgbouncer-trixie-")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := cred.own(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	tb := &TrixieBouncer{dir: dir}
	users := map[string]string{AppUser: appPW, AdminUser: adminPW}
	var srv *server
	if b.docker != nil {
		srv, err = tb.startContainer(ctx, b, users, maxPrepared)
	} else {
		srv, err = tb.startProcess(ctx, b, cred, users, app.Port(), maxPrepared)
	}
	if err != nil {
		tb.Close()
		return nil, err
	}
	tb.mu.Lock()
	tb.srv = srv
	tb.mu.Unlock()
	tb.URL = makeURL(AppUser, appPW, srv.port, Database)
	tb.adminURL = makeURL(AdminUser, adminPW, srv.port, "pgbouncer")
	return tb, nil
}

func (t *TrixieBouncer) startProcess(ctx context.Context, b *Bed, cred *credential, users map[string]string, pgPort string, maxPrepared int) (*server, error) {
	root, err := rootfs.Dir(ctx, trixieSpec)
	if err != nil {
		return nil, fmt.Errorf("testbed: trixie pgbouncer: %w", err)
	}
	ini := filepath.Join(t.dir, "pgbouncer.ini")
	if err := cred.writeFile(filepath.Join(t.dir, "users"), userlist(users), 0o600); err != nil {
		return nil, err
	}
	// The cache may sit where the server user cannot reach (root's
	// home): hard links (a copy across file systems) of the binary and
	// its libraries in the bouncer's own directory can be reached, and
	// writing beside them changes nothing in the shared tree.
	libs := filepath.Join(t.dir, "lib")
	bin := filepath.Join(t.dir, "pgbouncer")
	for _, cp := range [][2]string{{filepath.Join(root, "usr", "lib", "x86_64-linux-gnu"), libs}, {filepath.Join(root, "usr", "sbin", "pgbouncer"), bin}} {
		if out, err := exec.CommandContext(ctx, "cp", "-al", cp[0], cp[1]).CombinedOutput(); err != nil {
			if out2, err2 := exec.CommandContext(ctx, "cp", "-a", cp[0], cp[1]).CombinedOutput(); err2 != nil {
				return nil, fmt.Errorf("testbed: trixie pgbouncer: copy %s: %v: %s%s", cp[0], err2, out, out2)
			}
		}
	}
	loader := filepath.Join(libs, "ld-linux-x86-64.so.2")
	logPath := filepath.Join(t.dir, "pgbouncer.log")
	return startOnFreePort(ctx, "trixie pgbouncer", func(port int) (runner, error) {
		render := func(maxPrepared int) string {
			return bouncerINI(bouncerConf{
				pgPort: pgPort, port: port, authFile: filepath.Join(t.dir, "users"), mode: "transaction",
				poolSize: b.PoolSize(), maxClientConn: DefaultMaxClientConn, logPath: logPath,
				extra: fmt.Sprintf("max_prepared_statements = %d\n", maxPrepared),
			})
		}
		t.setMax = func(ctx context.Context, n int) error { return cred.writeFile(ini, render(n), 0o600) }
		if err := t.setMax(ctx, maxPrepared); err != nil {
			return nil, err
		}
		return &process{logPath: logPath, command: func(context.Context) (*exec.Cmd, error) {
			cmd := cred.command(loader, "--library-path", libs, bin, ini)
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("testbed: start trixie pgbouncer: %w", err)
			}
			return cmd, nil
		}}, nil
	}, func(port int) string { return makeURL(AppUser, users[AppUser], port, Database) })
}

func (t *TrixieBouncer) startContainer(ctx context.Context, b *Bed, users map[string]string, maxPrepared int) (*server, error) {
	if err := ensureImage(ctx, b.docker, b.images.PgBouncerPrepared); err != nil {
		return nil, fmt.Errorf("testbed: trixie pgbouncer: %w", err)
	}
	auth := filepath.Join(t.dir, "users")
	if err := writeUserlist(auth, users); err != nil {
		return nil, err
	}
	return startOnFreePort(ctx, "pgbouncer "+b.images.PgBouncerPrepared, func(port int) (runner, error) {
		env := bouncerEnv(b, port, "transaction", b.PoolSize())
		env["MAX_CLIENT_CONN"] = strconv.Itoa(DefaultMaxClientConn)
		env["MAX_PREPARED_STATEMENTS"] = strconv.Itoa(maxPrepared)
		run := newContainerRun(b.docker, testcontainers.ContainerRequest{
			Image:              b.images.PgBouncerPrepared,
			Env:                env,
			HostConfigModifier: hostNetwork(auth + ":/etc/pgbouncer/userlist.txt:ro"),
		})
		// The entrypoint wrote the setting into the container's file.
		t.setMax = func(ctx context.Context, n int) error {
			_, err := run.exec(ctx, "sed", "-i", fmt.Sprintf("s/^max_prepared_statements = .*/max_prepared_statements = %d/", n), "/etc/pgbouncer/pgbouncer.ini")
			return err
		}
		return run, nil
	}, func(port int) string { return makeURL(AppUser, users[AppUser], port, Database) })
}

// SetMaxPreparedStatements rewrites the configuration with a new
// max_prepared_statements and has the running PgBouncer RELOAD it, as an
// operator reconfiguring a pooler under a running application would.
func (t *TrixieBouncer) SetMaxPreparedStatements(ctx context.Context, n int) error {
	if err := t.setMax(ctx, n); err != nil {
		return err
	}
	return t.Admin(ctx, "RELOAD")
}

// Admin runs one command on PgBouncer's admin console (RELOAD, RECONNECT,
// SHOW ...), discarding any rows.
func (t *TrixieBouncer) Admin(ctx context.Context, command string) error {
	cfg, err := pgx.ParseConfig(t.adminURL)
	if err != nil {
		return fmt.Errorf("testbed: trixie pgbouncer admin: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("testbed: trixie pgbouncer admin: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, command); err != nil {
		return fmt.Errorf("testbed: trixie pgbouncer admin %s: %w", command, err)
	}
	return nil
}

// AdminRows runs a SHOW command on PgBouncer's admin console and calls f
// with each row, by column name.
func (t *TrixieBouncer) AdminRows(ctx context.Context, command string, f func(row map[string]string)) error {
	cfg, err := pgx.ParseConfig(t.adminURL)
	if err != nil {
		return fmt.Errorf("testbed: trixie pgbouncer admin: %w", err)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("testbed: trixie pgbouncer admin: %w", err)
	}
	defer c.Close(context.Background())
	res, err := c.PgConn().Exec(ctx, command).ReadAll()
	if err != nil {
		return fmt.Errorf("testbed: trixie pgbouncer admin %s: %w", command, err)
	}
	for _, r := range res {
		for _, row := range r.Rows {
			m := make(map[string]string, len(row))
			for i, fd := range r.FieldDescriptions {
				m[fd.Name] = string(row[i])
			}
			f(m)
		}
	}
	return nil
}

// Close stops the PgBouncer and removes its directory.
func (t *TrixieBouncer) Close() {
	t.mu.Lock()
	srv := t.srv
	t.srv = nil
	t.mu.Unlock()
	if srv != nil {
		srv.close()
	}
	_ = os.RemoveAll(t.dir)
}

// TrixieBouncerT starts a [TrixieBouncer] in front of b for one test and
// stops it when the test ends; it fails the test when it cannot start.
func TrixieBouncerT(tb testing.TB, b *Bed, maxPrepared int) *TrixieBouncer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t, err := b.StartTrixieBouncer(ctx, maxPrepared)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(t.Close)
	return t
}
