package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supapool/supapool/internal/testbed"
)

// TestQuickstartWithOnlyDocker runs the quickstart where there is Docker
// and no PostgreSQL: inside a container of the PgBouncer image (which has
// no initdb or postgres), with the engine's socket. The local backend
// cannot run there, so the quickstart must start its servers as
// containers. The bed's directory is bound at the same path, so the binds
// the quickstart asks the engine for name the same files.
func TestQuickstartWithOnlyDocker(t *testing.T) {
	if testing.Short() || os.Getenv(testbed.BackendEnv) != testbed.BackendDocker {
		t.Skip("needs SUPAPOOL_TEST_BACKEND=docker (as .ci/test sets where an engine answers)")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "quickstart"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	im := testbed.ImagesFromEnv()
	name := "supapool-quickstart-test-" + filepath.Base(dir)
	args := []string{"run", "--rm", "--name", name, "--network", "host", "-u", "0",
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", dir + ":" + dir,
		"-e", "TMPDIR=" + dir, "-e", "TESTCONTAINERS_HOST_OVERRIDE=localhost"}
	for _, kv := range im.Env() {
		args = append(args, "-e", kv)
	}
	script := `if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then echo "initdb is here"; exit 3; fi; exec "$0"`
	args = append(args, "--entrypoint", "/bin/sh", im.PgBouncer, "-c", script, filepath.Join(dir, "quickstart"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	defer exec.Command("docker", "rm", "-f", name).Run() //nolint:errcheck // gone already when it ended
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart in a container without PostgreSQL: %v\n%s", err, out)
	}
	for _, want := range []string{"0 of 14000 queries failed", `received "job 42 is ready"`, "Done."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
