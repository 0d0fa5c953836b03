package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// OSUser is the unprivileged account the servers run as when the caller is
// root, because PostgreSQL and PgBouncer both refuse to run as root.
const OSUser = "supapool-testbed"

type binaries struct {
	initdb, postgres, pgbouncer string
}

// findBinaries looks in Debian's versioned directory first (the newest
// version wins), then PATH.
func findBinaries(needBouncer bool) (binaries, error) {
	var b binaries
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "postgres")) {
			b.initdb, b.postgres = filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
			break
		}
	}
	if b.initdb == "" {
		i, err1 := exec.LookPath("initdb")
		p, err2 := exec.LookPath("postgres")
		if err1 != nil || err2 != nil {
			return b, errors.New("testbed: PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or in PATH; install them with: apt-get install postgresql")
		}
		b.initdb, b.postgres = i, p
	}
	if needBouncer {
		p, err := exec.LookPath("pgbouncer")
		if err != nil {
			for _, c := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
				if fileExists(c) {
					p, err = c, nil
					break
				}
			}
		}
		if err != nil {
			return b, errors.New("testbed: pgbouncer not found in PATH or /usr/sbin; install it with: apt-get install pgbouncer")
		}
		b.pgbouncer = p
	}
	return b, nil
}

func pgVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// credential is who the servers run as; nil fields mean "the caller".
type credential struct {
	uid, gid uint32
	asOther  bool
}

func serverUser() (*credential, error) {
	if os.Geteuid() != 0 {
		return &credential{}, nil
	}
	u, err := user.Lookup(OSUser)
	if err != nil {
		out, cerr := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", OSUser).CombinedOutput()
		if cerr != nil && !strings.Contains(string(out), "already exists") {
			return nil, fmt.Errorf("testbed: running as root, and creating the unprivileged user %q failed: %v: %s", OSUser, cerr, strings.TrimSpace(string(out)))
		}
		if u, err = user.Lookup(OSUser); err != nil {
			return nil, fmt.Errorf("testbed: look up user %q: %w", OSUser, err)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &credential{uid: uint32(uid), gid: uint32(gid), asOther: true}, nil
}

// own hands a path to the server user.
func (c *credential) own(path string) error {
	if !c.asOther {
		return nil
	}
	if err := os.Chown(path, int(c.uid), int(c.gid)); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return nil
}

func (c *credential) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The servers die with the test binary even when it is killed,
		// so a crashed run leaves no stray processes behind.
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true,
	}
	if c.asOther {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.uid, Gid: c.gid}
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// writeFile writes a file the server user can read.
func (c *credential) writeFile(path, content string, mode os.FileMode) error {
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return c.own(path)
}

type stopMode int

const (
	stopFast      stopMode = iota // SIGINT: PostgreSQL's fast shutdown
	stopImmediate                 // SIGQUIT: PostgreSQL's immediate shutdown
)

// server is one running process that we started.
type server struct {
	name    string
	port    int
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	restart func(ctx context.Context) (*exec.Cmd, error)
}

func (s *server) launch(ctx context.Context) error {
	cmd, err := s.restart(ctx)
	if err != nil {
		return err
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(cmd, s.done)
	return nil
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *server) stop(mode stopMode) {
	if !s.running() {
		return
	}
	sig := syscall.SIGINT
	if mode == stopImmediate {
		sig = syscall.SIGQUIT
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// freePort asks the kernel for a loopback port that is free right now. A
// server may still lose the race for it, so callers retry on bind errors.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testbed: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const startAttempts = 5

func startPostgres(ctx context.Context, b *Bed, bins binaries, adminPW string) (*server, error) {
	data := filepath.Join(b.dir, "pgdata")
	pwfile := filepath.Join(b.dir, "pwfile")
	if err := b.cred.writeFile(pwfile, adminPW+"\n", 0o600); err != nil {
		return nil, err
	}
	initLog := filepath.Join(b.dir, "initdb.log")
	cmd := b.cred.command(bins.initdb, "-D", data, "-U", AdminUser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	out, err := cmd.CombinedOutput()
	_ = os.Remove(pwfile)
	if err != nil {
		_ = os.WriteFile(initLog, out, 0o644)
		return nil, fmt.Errorf("testbed: initdb failed: %v: %s", err, lastLines(string(out), 10))
	}
	s := &server{name: "postgres", logPath: filepath.Join(b.dir, "postgres.log")}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		s.restart = func(ctx context.Context) (*exec.Cmd, error) {
			cmd := b.cred.command(bins.postgres, "-D", data,
				"-c", "listen_addresses=127.0.0.1",
				"-c", "port="+strconv.Itoa(port),
				"-c", "unix_socket_directories="+b.dir,
				"-c", "max_connections="+strconv.Itoa(b.opts.MaxConnections),
				"-c", "password_encryption=scram-sha-256",
				"-c", "fsync=off",
				"-c", "synchronous_commit=off",
				"-c", "full_page_writes=off",
				"-c", "shared_buffers=32MB",
				"-c", "max_wal_size=256MB",
				"-c", "log_min_messages=warning",
				"-c", "log_connections=off",
			)
			return startLogged(cmd, s.logPath, "postgres")
		}
		if err := s.launch(ctx); err != nil {
			return nil, err
		}
		err = waitReady(ctx, s, makeURL(AdminUser, adminPW, port, "postgres"))
		if err == nil {
			return s, nil
		}
		s.stop(stopImmediate)
		if attempt < startAttempts && strings.Contains(logTail(s.logPath, 5), "could not bind") {
			continue
		}
		return nil, fmt.Errorf("testbed: postgres did not start: %w%s", err, logTail(s.logPath, 10))
	}
}

// restartPostgres starts the server again on the same port and data.
func (b *Bed) restartPostgres(ctx context.Context) error {
	if err := b.pg.launch(ctx); err != nil {
		return err
	}
	if err := waitReady(ctx, b.pg, b.AdminURL); err != nil {
		return fmt.Errorf("testbed: postgres did not restart: %w%s", err, logTail(b.pg.logPath, 10))
	}
	return nil
}

func startBouncer(ctx context.Context, b *Bed, bins binaries, mode string, users map[string]string) (*server, error) {
	base := filepath.Join(b.dir, "pgbouncer-"+mode)
	var userlist strings.Builder
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// PgBouncer talks SCRAM to both sides when it knows the plain
		// password; the file is readable by the server user only.
		fmt.Fprintf(&userlist, "%q %q\n", n, users[n])
	}
	if err := b.cred.writeFile(base+".users", userlist.String(), 0o600); err != nil {
		return nil, err
	}
	s := &server{name: "pgbouncer-" + mode, logPath: base + ".log"}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		ini := bouncerINI(bouncerConf{
			pgPort: strconv.Itoa(b.pg.port), port: port, authFile: base + ".users", mode: mode,
			poolSize: b.opts.PoolSize, maxClientConn: b.opts.MaxClientConn, logPath: s.logPath,
		})
		if err := b.cred.writeFile(base+".ini", ini, 0o600); err != nil {
			return nil, err
		}
		s.restart = func(ctx context.Context) (*exec.Cmd, error) {
			cmd := b.cred.command(bins.pgbouncer, base+".ini")
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("testbed: start pgbouncer: %w", err)
			}
			return cmd, nil
		}
		if err := s.launch(ctx); err != nil {
			return nil, err
		}
		err = waitReady(ctx, s, makeURL(AppUser, users[AppUser], port, Database))
		if err == nil {
			return s, nil
		}
		s.stop(stopFast)
		if attempt < startAttempts && strings.Contains(logTail(s.logPath, 5), "Address already in use") {
			continue
		}
		return nil, fmt.Errorf("testbed: pgbouncer (%s mode) did not start: %w%s", mode, err, logTail(s.logPath, 10))
	}
}

// waitReady polls until the server answers a query, the process exits, or
// 30 seconds pass.
func waitReady(ctx context.Context, s *server, connURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-s.done:
			return errors.New("process exited")
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, connURL)
		if err == nil {
			_, err = conn.Exec(cctx, "select 1")
			conn.Close(cctx)
		}
		ccancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after 30s: %w", last)
		case <-s.done:
			return errors.New("process exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func randomPassword() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	// A character that needs escaping in URLs keeps every consumer honest.
	return "pw:" + hex.EncodeToString(b[:])
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startLogged starts cmd with its output appended to logPath; what names
// it in the error.
func startLogged(cmd *exec.Cmd, logPath, what string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: start %s: %w", what, err)
	}
	return cmd, nil
}

// bouncerConf is what differs between the bed's PgBouncers.
type bouncerConf struct {
	pgPort        string // PostgreSQL's port
	port          int    // PgBouncer's own
	authFile      string
	mode          string // pool_mode
	poolSize      int
	maxClientConn int
	logPath       string
	extra         string // more [pgbouncer] lines, each ending in a newline
}

// bouncerINI is the one configuration of every PgBouncer the bed runs.
func bouncerINI(c bouncerConf) string {
	return fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = %d
%sserver_reset_query = DISCARD ALL
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
admin_users = %s
logfile = %s
log_connections = 0
log_disconnections = 0
`, c.pgPort, c.port, c.authFile, c.mode, c.poolSize, c.maxClientConn, c.extra, AdminUser, c.logPath)
}
