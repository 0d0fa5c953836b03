package testbed

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// The Docker backend runs each server as a container through
// testcontainers-go, on the host's network: a container's server listens
// on a free 127.0.0.1 port the bed picks for it, as for a local process,
// so a port stays the same across a restart, client ports seen by the
// server are the client's own, and the poolers reach PostgreSQL at
// 127.0.0.1. That needs a Linux Docker Engine (GitHub Actions' Linux
// runners included; Docker Desktop only with host networking turned on).
//
// Ryuk, testcontainers' reaper, is turned off unless
// TESTCONTAINERS_RYUK_DISABLED is set: it is an image of its own that a
// machine without a registry cannot pull. Cleanup is explicit instead:
// [Bed.Close] removes the bed's containers, and the first Docker bed of a
// test binary removes those whose test binary has died (each container is
// labelled with its owner's pid and start time).

const (
	labelBed   = "supapool.testbed"
	labelOwner = "supapool.testbed.owner"
)

var docker struct {
	once sync.Once
	cli  *testcontainers.DockerClient
	err  error
}

// dockerClient returns the test binary's Docker client, once the engine
// has answered; the first call turns Ryuk off (see above) and sweeps
// containers of dead test binaries.
func dockerClient(ctx context.Context) (*testcontainers.DockerClient, error) {
	docker.once.Do(func() {
		if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
			_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
		// Not the first caller's deadline: the answer is kept for the
		// whole test binary.
		ctx := context.WithoutCancel(ctx)
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
			cancel()
		}
		if err != nil {
			docker.err = fmt.Errorf("testbed: no Docker engine answers (%v); start one, or use the local backend (SUPAPOOL_TEST_BACKEND=local, with Debian's postgresql and pgbouncer installed)", err)
			return
		}
		docker.cli = cli
		sweep(ctx, cli)
	})
	return docker.cli, docker.err
}

// owner identifies a process for the sweep: its pid namespace, pid and
// start time, so that a reused pid is not mistaken for it and a process
// in another namespace (a test binary inside a container sharing the
// engine) never judges containers whose owner it cannot see.
func owner(pid int) string {
	proc := "/proc/" + strconv.Itoa(pid)
	data, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink(proc + "/ns/pid")
	if err != nil {
		return ""
	}
	// The start time is field 22; the command (field 2) may hold spaces,
	// so count from its closing parenthesis.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return ""
	}
	return ns + "/" + strconv.Itoa(pid) + ":" + fields[19]
}

// sweep removes bed containers whose owning test binary has ended: only
// those owned in this process's pid namespace, where a missing owner is
// proof that it ended.
func sweep(ctx context.Context, cli *testcontainers.DockerClient) {
	self := owner(os.Getpid())
	ns, _, ok := strings.Cut(self, "/")
	if !ok {
		return
	}
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", labelBed)})
	if err != nil {
		return
	}
	for _, c := range list.Items {
		own := c.Labels[labelOwner]
		ons, rest, ok := strings.Cut(own, "/")
		if !ok || ons != ns {
			continue
		}
		pid, _ := strconv.Atoi(strings.SplitN(rest, ":", 2)[0])
		if pid > 0 && owner(pid) == own {
			continue
		}
		_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}
}

// containerRun runs a server as a container. The container is created on
// the first start and started again (same port, same data) after a stop;
// remove deletes it.
type containerRun struct {
	cli *testcontainers.DockerClient
	req testcontainers.ContainerRequest
	c   testcontainers.Container // nil before the first start
}

func newContainerRun(cli *testcontainers.DockerClient, req testcontainers.ContainerRequest) *containerRun {
	req.Labels = map[string]string{labelBed: "1", labelOwner: owner(os.Getpid())}
	modify := req.ConfigModifier
	req.ConfigModifier = func(c *container.Config) {
		// docker stop (and so Terminate) shuts PostgreSQL down fast and
		// PgBouncer safely, as the local backend's stop does; docker
		// import cannot set STOPSIGNAL in the image.
		c.StopSignal = "SIGINT"
		if modify != nil {
			modify(c)
		}
	}
	return &containerRun{cli: cli, req: req}
}

// quiet drops testcontainers' lifecycle lines (created, started, ready,
// stopped...): failures come back as errors, with the container's log.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

func (r *containerRun) start(ctx context.Context) (func(), error) {
	if r.c == nil {
		c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
			ContainerRequest: r.req, Started: true, Logger: quiet{},
		})
		if c != nil {
			r.c = c
		}
		if err != nil {
			return nil, fmt.Errorf("testbed: start a container of %s: %w%s", r.req.Image, err, imageHint(r.req.Image))
		}
	} else if _, err := r.cli.ContainerStart(ctx, r.c.GetContainerID(), client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("testbed: start container %s again: %w", r.c.GetContainerID()[:12], err)
	}
	id := r.c.GetContainerID()
	return func() {
		res := r.cli.ContainerWait(context.Background(), id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-res.Result:
		case <-res.Error:
		}
	}, nil
}

// imageHint says how to get an image that could not be pulled.
func imageHint(image string) string {
	return fmt.Sprintf(" (is %s present or pullable? Without a registry, build supapool's own images with `go run ./internal/testbed/buildimages` and set the variables it prints, %s and %s)", image, EnvPostgresImage, EnvPgBouncerImage)
}

var signalNames = map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT", syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}

func (r *containerRun) signal(sig syscall.Signal) error {
	name, ok := signalNames[sig]
	if !ok {
		return fmt.Errorf("testbed: signal %v is not sent to containers", sig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.cli.ContainerKill(ctx, r.c.GetContainerID(), client.ContainerKillOptions{Signal: name}); err != nil {
		return fmt.Errorf("testbed: docker kill -s %s: %w", name, err)
	}
	return nil
}

func (r *containerRun) kill() { _ = r.signal(syscall.SIGKILL) }

func (r *containerRun) freeze(on bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := r.c.GetContainerID()
	var err error
	if on {
		_, err = r.cli.ContainerPause(ctx, id, client.ContainerPauseOptions{})
	} else {
		_, err = r.cli.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
	}
	if err != nil {
		return fmt.Errorf("testbed: docker pause/unpause %s: %w", id[:12], err)
	}
	return nil
}

func (r *containerRun) logTail(n int) string {
	if r.c == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := r.c.GetContainerID()
	rc, err := r.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out strings.Builder
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	text := strings.TrimRight(out.String(), "\n")
	if text == "" {
		return ""
	}
	return "\n\t" + strings.ReplaceAll(text, "\n", "\n\t") + "\n\t(log: docker logs " + id[:12] + ")"
}

func (r *containerRun) remove() {
	if r.c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = r.c.Terminate(ctx, testcontainers.StopTimeout(5*time.Second))
	// The run's wait has returned (the server stopped first); drop the
	// client's idle connections too, so a test that checks for leaked
	// goroutines finds none of ours once its bed is closed.
	_ = r.cli.Close()
}

// exec runs a command in the running container and returns its output.
func (r *containerRun) exec(ctx context.Context, cmd ...string) (string, error) {
	code, out, err := r.c.Exec(ctx, cmd)
	var text []byte
	if out != nil {
		text, _ = io.ReadAll(out)
	}
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d", code)
	}
	if err != nil {
		return string(text), fmt.Errorf("testbed: docker exec %s: %w: %s", cmd[0], err, strings.TrimSpace(string(text)))
	}
	return string(text), nil
}

func hostNetwork(binds ...string) func(*container.HostConfig) {
	return func(h *container.HostConfig) {
		h.NetworkMode = "host"
		h.Binds = append(h.Binds, binds...)
	}
}

// startPostgresContainer starts the bed's PostgreSQL from images.Postgres
// through the official image's interface; the socket directory is bound
// to one in the bed's directory, for SocketURL.
func startPostgresContainer(ctx context.Context, b *Bed, adminPW string) (*server, error) {
	sock := filepath.Join(b.dir, "sock")
	if err := os.Mkdir(sock, 0o777); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	_ = os.Chmod(sock, 0o777) // past the umask: the container's postgres user creates the socket
	return startOnFreePort(ctx, "postgres", func(port int) (runner, error) {
		return newContainerRun(b.docker, testcontainers.ContainerRequest{
			Image: b.images.Postgres,
			Env: map[string]string{
				"POSTGRES_USER": AdminUser, "POSTGRES_PASSWORD": adminPW, "POSTGRES_DB": "postgres",
				// A test bed needs no crash safety; and the official image's
				// initdb trusts 127.0.0.1, where host networking puts every
				// client, so ask for SCRAM there too.
				"POSTGRES_INITDB_ARGS": "--no-sync --auth-host=scram-sha-256",
			},
			Cmd:                append([]string{"postgres"}, postgresArgs(port, "/var/run/postgresql", b.opts.MaxConnections)...),
			HostConfigModifier: hostNetwork(sock + ":/var/run/postgresql"),
		}), nil
	}, func(port int) string { return makeURL(AdminUser, adminPW, port, "postgres") })
}

// bouncerEnv is a PgBouncer's settings in edoburu/pgbouncer's language.
func bouncerEnv(b *Bed, port int, mode string, poolSize int) map[string]string {
	return map[string]string{
		"DB_HOST":                   "127.0.0.1",
		"DB_PORT":                   strconv.Itoa(b.pg.port),
		"LISTEN_ADDR":               "127.0.0.1",
		"LISTEN_PORT":               strconv.Itoa(port),
		"AUTH_TYPE":                 "scram-sha-256",
		"POOL_MODE":                 mode,
		"DEFAULT_POOL_SIZE":         strconv.Itoa(poolSize),
		"MAX_CLIENT_CONN":           strconv.Itoa(b.opts.MaxClientConn),
		"ADMIN_USERS":               AdminUser,
		"SERVER_RESET_QUERY":        "DISCARD ALL",
		"SERVER_LOGIN_RETRY":        "1",
		"IGNORE_STARTUP_PARAMETERS": "extra_float_digits",
	}
}

// writeUserlist writes a PgBouncer auth file for a container to bind:
// readable inside the container (mode 0644), but in the bed's directory,
// which only its owner can enter.
func writeUserlist(path string, users map[string]string) error {
	if err := os.WriteFile(path, []byte(userlist(users)), 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return os.Chmod(path, 0o644)
}

func startBouncerContainer(ctx context.Context, b *Bed, mode string, users map[string]string) (*server, error) {
	auth := filepath.Join(b.dir, "pgbouncer-"+mode+".users")
	if err := writeUserlist(auth, users); err != nil {
		return nil, err
	}
	return startOnFreePort(ctx, "pgbouncer ("+mode+" mode)", func(port int) (runner, error) {
		return newContainerRun(b.docker, testcontainers.ContainerRequest{
			Image:              b.images.PgBouncer,
			Env:                bouncerEnv(b, port, mode, b.opts.PoolSize),
			HostConfigModifier: hostNetwork(auth + ":/etc/pgbouncer/userlist.txt:ro"),
		}), nil
	}, func(port int) string { return makeURL(AppUser, users[AppUser], port, Database) })
}

// startReplicaContainer starts a streaming replica: pg_basebackup -R from
// the primary into the container's own data directory on first start,
// then a hot standby.
func startReplicaContainer(ctx context.Context, b *Bed, appPW string) (*server, error) {
	script := `set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pg_basebackup -D "$PGDATA" -h 127.0.0.1 -p "$PRIMARY_PORT" -U ` + AdminUser + ` -R -X stream --no-sync -c fast
fi
exec postgres "$@"`
	return startOnFreePort(ctx, "replica", func(port int) (runner, error) {
		return newContainerRun(b.docker, testcontainers.ContainerRequest{
			Image:      b.images.Postgres,
			Entrypoint: []string{"/bin/sh", "-c", script, "replica"},
			Cmd:        replicaArgs(port, "/tmp", b.opts.MaxConnections), // runs as postgres, who may not create /var/run/postgresql
			Env: map[string]string{
				"PGPASSWORD":   b.adminPW,
				"PRIMARY_PORT": strconv.Itoa(b.pg.port),
				"PGDATA":       "/var/lib/postgresql/replica",
			},
			ConfigModifier:     func(c *container.Config) { c.User = "postgres" },
			HostConfigModifier: hostNetwork(),
		}), nil
	}, func(port int) string { return makeURL(AdminUser, b.adminPW, port, "postgres") })
}
