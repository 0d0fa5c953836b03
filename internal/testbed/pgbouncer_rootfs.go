package testbed

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/supapool/supapool/internal/rootfs"
)

// TrixieBouncer is a transaction-mode PgBouncer from Debian trixie (1.24)
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
	ini      string
	adminURL string
	render   func(maxPrepared int) string
	cred     *credential

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
	root, err := rootfs.Dir(ctx, trixieSpec)
	if err != nil {
		return nil, fmt.Errorf("testbed: trixie pgbouncer: %w", err)
	}
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
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "supapool-pgbouncer-trixie-")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	if err := cred.own(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	tb := &TrixieBouncer{dir: dir, ini: filepath.Join(dir, "pgbouncer.ini"), cred: cred}
	users := fmt.Sprintf("%q %q\n%q %q\n", AppUser, appPW, AdminUser, adminPW)
	if err := cred.writeFile(filepath.Join(dir, "users"), users, 0o600); err != nil {
		tb.Close()
		return nil, err
	}
	// The cache may sit where the server user cannot reach (root's
	// home): hard links (a copy across file systems) of the binary and
	// its libraries in the bouncer's own directory can be reached, and
	// writing beside them changes nothing in the shared tree.
	libs := filepath.Join(dir, "lib")
	bin := filepath.Join(dir, "pgbouncer")
	for _, cp := range [][2]string{{filepath.Join(root, "usr", "lib", "x86_64-linux-gnu"), libs}, {filepath.Join(root, "usr", "sbin", "pgbouncer"), bin}} {
		if out, err := exec.CommandContext(ctx, "cp", "-al", cp[0], cp[1]).CombinedOutput(); err != nil {
			if out2, err2 := exec.CommandContext(ctx, "cp", "-a", cp[0], cp[1]).CombinedOutput(); err2 != nil {
				tb.Close()
				return nil, fmt.Errorf("testbed: trixie pgbouncer: copy %s: %v: %s%s", cp[0], err2, out, out2)
			}
		}
	}
	loader := filepath.Join(libs, "ld-linux-x86-64.so.2")
	logPath := filepath.Join(dir, "pgbouncer.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Close()
			return nil, err
		}
		tb.render = func(maxPrepared int) string {
			return bouncerINI(bouncerConf{
				pgPort: app.Port(), port: port, authFile: filepath.Join(dir, "users"), mode: "transaction",
				poolSize: b.PoolSize(), maxClientConn: DefaultMaxClientConn, logPath: logPath,
				extra: fmt.Sprintf("max_prepared_statements = %d\n", maxPrepared),
			})
		}
		if err := cred.writeFile(tb.ini, tb.render(maxPrepared), 0o600); err != nil {
			tb.Close()
			return nil, err
		}
		srv := &server{name: "pgbouncer-trixie", port: port, logPath: logPath}
		srv.restart = func(context.Context) (*exec.Cmd, error) {
			cmd := cred.command(loader, "--library-path", libs, bin, tb.ini)
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("testbed: start trixie pgbouncer: %w", err)
			}
			return cmd, nil
		}
		if err := srv.launch(ctx); err != nil {
			tb.Close()
			return nil, err
		}
		tb.mu.Lock()
		tb.srv = srv
		tb.mu.Unlock()
		tb.URL = makeURL(AppUser, appPW, port, Database)
		tb.adminURL = makeURL(AdminUser, adminPW, port, "pgbouncer")
		err = waitReady(ctx, srv, tb.URL)
		if err == nil {
			return tb, nil
		}
		srv.stop(stopFast)
		if attempt < startAttempts && strings.Contains(logTail(logPath, 5), "Address already in use") {
			continue
		}
		tb.Close()
		return nil, fmt.Errorf("testbed: trixie pgbouncer did not start: %w%s", err, logTail(logPath, 10))
	}
}

// SetMaxPreparedStatements rewrites the configuration with a new
// max_prepared_statements and has the running PgBouncer RELOAD it, as an
// operator reconfiguring a pooler under a running application would.
func (t *TrixieBouncer) SetMaxPreparedStatements(ctx context.Context, n int) error {
	if err := t.cred.writeFile(t.ini, t.render(n), 0o600); err != nil {
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
		srv.stop(stopFast)
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
