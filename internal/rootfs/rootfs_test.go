package rootfs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadSourcesRewritesSuites(t *testing.T) {
	f := filepath.Join(t.TempDir(), "x.sources")
	src := "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvSources, f)
	got, err := readSources("trixie")
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	for _, want := range []string{"Suites: trixie\n", "Suites: trixie-security\n", "URIs: http://deb.debian.org/debian\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("rewritten sources lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "bookworm") {
		t.Errorf("bookworm left in:\n%s", s)
	}
}

func TestKey(t *testing.T) {
	t.Setenv(EnvCache, t.TempDir())
	a, err := Key(Spec{Suite: "trixie", Packages: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Key(Spec{Suite: "trixie", Packages: []string{"b", "a"}})
	c, _ := Key(Spec{Suite: "trixie", Packages: []string{"a"}})
	if a != b || a == c {
		t.Fatalf("keys: %s %s %s: want order-blind and package-sensitive", a, b, c)
	}
	if _, err := Key(Spec{Suite: "Trixie; rm"}); err == nil || !strings.Contains(err.Error(), "Spec.Suite") {
		t.Fatalf("bad suite: %v", err)
	}
}

// A real build: trixie's PgBouncer, then the cache answers the second call.
func TestBuildTrixiePgBouncer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("building a root filesystem needs root")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		if os.Getenv("SUPAPOOL_REQUIRE_TOOLS") != "" {
			t.Fatal(ErrNoMmdebstrap)
		}
		t.Skip(ErrNoMmdebstrap)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	spec := Spec{Suite: "trixie", Packages: []string{"pgbouncer"}}
	dir, err := Dir(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("chroot", dir, "/usr/sbin/pgbouncer", "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "PgBouncer 1.") {
		t.Fatalf("pgbouncer --version in %s: %v: %s", dir, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "usr/share/doc/pgbouncer")); err == nil {
		t.Errorf("documentation was not trimmed")
	}
	start := time.Now()
	again, err := Dir(ctx, spec)
	if err != nil || again != dir {
		t.Fatalf("second Dir: %q, %v; want %q from the cache", again, err, dir)
	}
	t.Logf("%s; cached lookup %v", strings.TrimSpace(string(out)), time.Since(start))
}
