package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	appPW := ""
	if u, err := url.Parse(b.DirectURL); err == nil {
		appPW, _ = u.User.Password()
	}
	s := &server{name: "replica", logPath: filepath.Join(b.dir, "replica"+strconv.Itoa(n)+".log")}
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
				"-c", "hot_standby=on",
				"-c", "fsync=off",
				"-c", "shared_buffers=32MB",
				"-c", "log_min_messages=warning",
			)
			return startLogged(cmd, s.logPath, "replica")
		}
		if err := s.launch(ctx); err != nil {
			return nil, err
		}
		admin := makeURL(AdminUser, b.adminPW, port, "postgres")
		if err = waitReady(ctx, s, admin); err == nil {
			b.opts.Logf("testbed: streaming replica ready on port %d", port)
			return &Replica{DirectURL: makeURL(AppUser, appPW, port, Database), AdminURL: admin, srv: s}, nil
		}
		s.stop(stopImmediate)
		if attempt < startAttempts && strings.Contains(logTail(s.logPath, 5), "could not bind") {
			continue
		}
		return nil, fmt.Errorf("testbed: replica did not start: %w%s", err, logTail(s.logPath, 10))
	}
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
	if err := r.srv.launch(ctx); err != nil {
		return err
	}
	if err := waitReady(ctx, r.srv, r.AdminURL); err != nil {
		return fmt.Errorf("testbed: replica did not restart: %w%s", err, logTail(r.srv.logPath, 10))
	}
	return nil
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
	r.srv.stop(stopFast)
}
