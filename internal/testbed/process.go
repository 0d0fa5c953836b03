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

// process runs a server as a local process of the server user.
type process struct {
	logPath string
	command func(ctx context.Context) (*exec.Cmd, error) // starts one run
	cmd     *exec.Cmd                                    // the current run
}

func (p *process) start(ctx context.Context) (func(), error) {
	cmd, err := p.command(ctx)
	if err != nil {
		return nil, err
	}
	p.cmd = cmd
	return func() { _ = cmd.Wait() }, nil
}

func (p *process) signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// kill and freeze act on the process group: the server and its children.
func (p *process) kill() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// freeze stops the process group and then each child that left it:
// PostgreSQL's backends call setsid, so a group signal reaches only the
// postmaster. Stopped first, the postmaster forks no new child meanwhile.
func (p *process) freeze(on bool) error {
	sig := syscall.SIGCONT
	if on {
		sig = syscall.SIGSTOP
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("testbed: %s the process group of pid %d: %w", sig, pid, err)
	}
	for _, child := range children(pid) {
		_ = syscall.Kill(child, sig) // a child may have just exited
	}
	return nil
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

func (p *process) logTail(n int) string { return logTail(p.logPath, n) }

func (p *process) remove() {}

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

// initPostgres makes the bed's data directory with initdb.
func initPostgres(b *Bed, bins binaries, adminPW string) (data string, err error) {
	data = filepath.Join(b.dir, "pgdata")
	pwfile := filepath.Join(b.dir, "pwfile")
	if err := b.cred.writeFile(pwfile, adminPW+"\n", 0o600); err != nil {
		return "", err
	}
	cmd := b.cred.command(bins.initdb, "-D", data, "-U", AdminUser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	out, err := cmd.CombinedOutput()
	_ = os.Remove(pwfile)
	if err != nil {
		_ = os.WriteFile(filepath.Join(b.dir, "initdb.log"), out, 0o644)
		return "", fmt.Errorf("testbed: initdb failed: %v: %s", err, lastLines(string(out), 10))
	}
	return data, nil
}

// postgresArgs are the primary's settings, the same on every backend.
func postgresArgs(port int, socketDir string, maxConnections int) []string {
	return settings(
		"listen_addresses=127.0.0.1",
		"port="+strconv.Itoa(port),
		"unix_socket_directories="+socketDir,
		"max_connections="+strconv.Itoa(maxConnections),
		"password_encryption=scram-sha-256",
		"fsync=off",
		"synchronous_commit=off",
		"full_page_writes=off",
		"shared_buffers=32MB",
		"max_wal_size=256MB",
		"log_min_messages=warning",
		"log_connections=off",
	)
}

// settings turns key=value settings into postgres arguments.
func settings(kv ...string) []string {
	args := make([]string, 0, 2*len(kv))
	for _, s := range kv {
		args = append(args, "-c", s)
	}
	return args
}

func startPostgres(ctx context.Context, b *Bed, bins binaries, adminPW string) (*server, error) {
	data, err := initPostgres(b, bins, adminPW)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(b.dir, "postgres.log")
	return startOnFreePort(ctx, "postgres", func(port int) (runner, error) {
		return &process{logPath: logPath, command: func(context.Context) (*exec.Cmd, error) {
			args := append([]string{"-D", data}, postgresArgs(port, b.dir, b.opts.MaxConnections)...)
			return startLogged(b.cred.command(bins.postgres, args...), logPath, "postgres")
		}}, nil
	}, func(port int) string { return makeURL(AdminUser, adminPW, port, "postgres") })
}

// userlist is a PgBouncer auth file with plain passwords: PgBouncer then
// talks SCRAM to both sides.
func userlist(users map[string]string) string {
	var out strings.Builder
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&out, "%q %q\n", n, users[n])
	}
	return out.String()
}

func startBouncer(ctx context.Context, b *Bed, bins binaries, mode string, users map[string]string) (*server, error) {
	base := filepath.Join(b.dir, "pgbouncer-"+mode)
	// Readable by the server user only.
	if err := b.cred.writeFile(base+".users", userlist(users), 0o600); err != nil {
		return nil, err
	}
	logPath := base + ".log"
	return startOnFreePort(ctx, "pgbouncer ("+mode+" mode)", func(port int) (runner, error) {
		ini := bouncerINI(bouncerConf{
			pgPort: strconv.Itoa(b.pg.port), port: port, authFile: base + ".users", mode: mode,
			poolSize: b.opts.PoolSize, maxClientConn: b.opts.MaxClientConn, logPath: logPath,
		})
		if err := b.cred.writeFile(base+".ini", ini, 0o600); err != nil {
			return nil, err
		}
		return &process{logPath: logPath, command: func(context.Context) (*exec.Cmd, error) {
			cmd := b.cred.command(bins.pgbouncer, base+".ini")
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("testbed: start pgbouncer: %w", err)
			}
			return cmd, nil
		}}, nil
	}, func(port int) string { return makeURL(AppUser, users[AppUser], port, Database) })
}

// waitReady polls until the server answers a query, the server exits, or
// 90 seconds pass (a container's first start runs initdb; on a loaded
// machine that alone has taken 35 s).
func waitReady(ctx context.Context, s *server, connURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		select {
		case <-s.exited():
			return errors.New("server exited")
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
			return fmt.Errorf("not ready after 90s: %w", last)
		case <-s.exited():
			return errors.New("server exited")
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
