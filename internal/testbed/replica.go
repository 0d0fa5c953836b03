package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replica is a streaming hot standby of a bed's PostgreSQL, made with
// pg_basebackup -R into a second data directory, with fault controls:
// Stop and Start the server, PauseReplay and ResumeReplay to create lag on
// demand. Its URLs carry passwords, so never print them.
type Replica struct {
	// DirectURL reaches the replica as the app role.
	DirectURL string
	// AdminURL reaches the replica as the superuser.
	AdminURL string

	mu     sync.Mutex // guards srv's process across Stop, Start and Close
	srv    *server
	closed bool
}

// StartReplica starts a streaming replica of the bed's PostgreSQL and
// returns once it accepts connections. The caller must Close it before
// the bed (StartReplicaT does so).
func (b *Bed) StartReplica(ctx context.Context) (*Replica, error) {
	if b.pg == nil {
		return nil, ErrNoProcessControl
	}
	appPW := ""
	if u, err := url.Parse(b.DirectURL); err == nil {
		appPW, _ = u.User.Password()
	}
	var s *server
	var err error
	if b.docker != nil {
		s, err = startReplicaContainer(ctx, b, appPW)
	} else {
		s, err = b.startReplicaProcess(ctx)
	}
	if err != nil {
		return nil, err
	}
	admin := makeURL(AdminUser, b.adminPW, s.port, "postgres")
	b.opts.Logf("testbed: streaming replica ready on port %d", s.port)
	return &Replica{DirectURL: makeURL(AppUser, appPW, s.port, Database), AdminURL: admin, srv: s}, nil
}

// replicaArgs are a replica's settings, the same on every backend.
func replicaArgs(port int, socketDir string, maxConnections int) []string {
	return settings(
		"listen_addresses=127.0.0.1",
		"port="+strconv.Itoa(port),
		"unix_socket_directories="+socketDir,
		"max_connections="+strconv.Itoa(maxConnections),
		"hot_standby=on",
		"fsync=off",
		"shared_buffers=32MB",
		"log_min_messages=warning",
	)
}

func (b *Bed) startReplicaProcess(ctx context.Context) (*server, error) {
	bins, err := findBinaries(false)
	if err != nil {
		return nil, err
	}
	basebackup := filepath.Join(filepath.Dir(bins.postgres), "pg_basebackup")
	if !fileExists(basebackup) {
		if basebackup, err = exec.LookPath("pg_basebackup"); err != nil {
			return nil, errors.New("testbed: pg_basebackup not found beside postgres or in PATH; install it with: apt-get install postgresql")
		}
	}
	b.mu.Lock()
	b.replicas++
	n := b.replicas
	b.mu.Unlock()
	data := filepath.Join(b.dir, "replica"+strconv.Itoa(n))
	cmd := b.cred.command(basebackup, "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(b.pg.port),
		"-U", AdminUser, "-R", "-X", "stream", "--no-sync", "-c", "fast")
	cmd.Env = append(cmd.Env, "PGPASSWORD="+b.adminPW)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testbed: pg_basebackup failed: %v: %s", err, lastLines(string(out), 10))
	}
	logPath := filepath.Join(b.dir, "replica"+strconv.Itoa(n)+".log")
	return startOnFreePort(ctx, "replica", func(port int) (runner, error) {
		return &process{logPath: logPath, command: func(context.Context) (*exec.Cmd, error) {
			args := append([]string{"-D", data}, replicaArgs(port, b.dir, b.opts.MaxConnections)...)
			return startLogged(b.cred.command(bins.postgres, args...), logPath, "replica")
		}}, nil
	}, func(port int) string { return makeURL(AdminUser, b.adminPW, port, "postgres") })
}

// StartReplicaT is StartReplica for a test: it fails the test when the
// replica cannot start, skips it when the bed does not own its servers,
// and closes the replica when the test ends (before a NewT bed closes).
func StartReplicaT(tb testing.TB, b *Bed) *Replica {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := b.StartReplica(ctx)
	Fault(tb, err)
	tb.Cleanup(r.Close)
	return r
}

// Stop shuts the replica down (fast shutdown); its connections fail.
func (r *Replica) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.srv.stop(stopFast)
}

// Start starts a stopped replica again on the same port and data, and
// returns once it accepts connections; it catches up by streaming.
func (r *Replica) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("testbed: replica is closed")
	}
	if r.srv.running() {
		return nil
	}
	return relaunch(ctx, r.srv, r.AdminURL)
}

// PauseReplay stops the replica applying WAL (pg_wal_replay_pause) and
// returns once replay has paused: from then on nothing committed on the
// primary becomes visible on the replica until ResumeReplay, and its lag
// grows.
func (r *Replica) PauseReplay(ctx context.Context) error {
	return r.admin(ctx, func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "select pg_wal_replay_pause()"); err != nil {
			return err
		}
		for {
			var state string
			if err := c.QueryRow(ctx, "select pg_get_wal_replay_pause_state()").Scan(&state); err != nil {
				return err
			}
			if state == "paused" {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
}

// ResumeReplay lets the replica apply WAL again (pg_wal_replay_resume).
func (r *Replica) ResumeReplay(ctx context.Context) error {
	return r.admin(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "select pg_wal_replay_resume()")
		return err
	})
}

// admin runs f on a superuser connection of its own to the replica.
func (r *Replica) admin(ctx context.Context, f func(*pgx.Conn) error) error {
	c, err := pgx.Connect(ctx, r.AdminURL)
	if err != nil {
		return fmt.Errorf("testbed: connect to replica as superuser: %w", err)
	}
	defer c.Close(context.Background())
	if err := f(c); err != nil {
		return fmt.Errorf("testbed: replica: %w", err)
	}
	return nil
}

// Close stops the replica for good. It is safe to call more than once.
func (r *Replica) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	r.srv.close()
}
