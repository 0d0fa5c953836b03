package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// BackendEnv is the variable that chooses where a bed's servers come
// from when [Options.Backend] is empty.
const BackendEnv = "SUPAPOOL_TEST_BACKEND"

// The backends.
const (
	// BackendLocal runs Debian's postgresql and pgbouncer binaries as
	// processes of the bed's own.
	BackendLocal = "local"
	// BackendDocker runs the images [ImagesFromEnv] names as containers,
	// through testcontainers-go (docker.go).
	BackendDocker = "docker"
	// BackendExternal uses servers that already run, named by the
	// TESTBED_* variables; fault controls return [ErrNoProcessControl].
	BackendExternal = "external"
)

// ErrBackend is returned when the chosen backend cannot be used; the
// message says what to install or set.
var ErrBackend = errors.New("testbed: backend unavailable")

// chooseBackend applies Options.Backend, then SUPAPOOL_TEST_BACKEND, then
// the automatic order: external when TESTBED_DIRECT_URL is set, docker
// when an engine answers and the images are there, local otherwise.
func chooseBackend(ctx context.Context, opts Options) (string, error) {
	ext := os.Getenv("TESTBED_DIRECT_URL") != ""
	choice, from := opts.Backend, "Options.Backend"
	if choice == "" {
		choice, from = os.Getenv(BackendEnv), BackendEnv
	}
	switch choice {
	case "":
		if ext {
			return BackendExternal, nil
		}
		if err := dockerUsable(ctx); err != nil {
			opts.Logf("testbed: not using Docker: %v", err)
			if _, lerr := findBinaries(!opts.NoPooler); lerr != nil {
				return "", fmt.Errorf("%w: neither backend can run here.\n\tdocker: %v\n\tlocal: %v", ErrBackend, err, lerr)
			}
			return BackendLocal, nil
		}
		return BackendDocker, nil
	case BackendLocal:
		if ext {
			return "", fmt.Errorf("%w: TESTBED_DIRECT_URL is set but %s is %q; set %s=external to use those servers, or unset TESTBED_DIRECT_URL", ErrBackend, from, choice, BackendEnv)
		}
		return BackendLocal, nil
	case BackendExternal:
		if !ext {
			return "", fmt.Errorf("%w: %s=external needs TESTBED_DIRECT_URL (and TESTBED_POOLED_URL, and TESTBED_ADMIN_URL as a PostgreSQL superuser)", ErrBackend, from)
		}
		return BackendExternal, nil
	case BackendDocker:
		if err := dockerUsable(ctx); err != nil {
			return "", fmt.Errorf("%w: %s=docker: %v", ErrBackend, from, err)
		}
		return BackendDocker, nil
	default:
		return "", fmt.Errorf("%w: %s is %q; expected local, docker or external", ErrBackend, from, choice)
	}
}

// dockerUsable reports why the Docker backend cannot run, or nil: the
// engine must answer and the bed's two images must be present or
// pullable.
func dockerUsable(ctx context.Context) error {
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	im := ImagesFromEnv()
	for _, name := range []string{im.Postgres, im.PgBouncer} {
		if err := ensureImage(ctx, cli, name); err != nil {
			return err
		}
	}
	return nil
}

// pulls remembers each image that could not be pulled, so a test binary
// tries once per image, not once per bed.
var pulls sync.Map // image name → error

// ensureImage pulls an image that is not present.
func ensureImage(ctx context.Context, cli *testcontainers.DockerClient, name string) error {
	if _, err := cli.ImageInspect(ctx, name); err == nil {
		return nil
	}
	if err, ok := pulls.Load(name); ok {
		return err.(error)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rc, err := cli.ImagePull(pctx, name, client.ImagePullOptions{})
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		_ = rc.Close()
	}
	if err == nil {
		_, err = cli.ImageInspect(ctx, name)
	}
	if err != nil {
		err = fmt.Errorf("image %s is not present and cannot be pulled (%v)%s", name, err, imageHint(name))
		pulls.Store(name, err)
		return err
	}
	return nil
}
