package rootfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
)

// Spec says what goes into a root filesystem.
type Spec struct {
	// Suite is the Debian suite, for example "bookworm" or "trixie".
	Suite string
	// Packages are installed on top of mmdebstrap's minbase variant.
	Packages []string
}

// EnvCache names the directory builds are kept in; the default is
// supapool/rootfs under the user's cache directory (os.UserCacheDir).
const EnvCache = "SUPAPOOL_ROOTFS_CACHE"

// EnvSources names a deb822 .sources file to build from instead of the
// machine's own.
const EnvSources = "SUPAPOOL_APT_SOURCES"

// ErrNoMmdebstrap is returned when mmdebstrap is not installed.
var ErrNoMmdebstrap = errors.New("rootfs: mmdebstrap is not installed (install it: apt-get install mmdebstrap)")

// recipe is what every build does beyond the spec; it is part of the
// cache key, so changing it rebuilds.
var recipe = []string{
	"--variant=minbase",
	"--dpkgopt=path-exclude=/usr/share/doc/*",
	"--dpkgopt=path-exclude=/usr/share/man/*",
	"--dpkgopt=path-exclude=/usr/share/locale/*",
	"--dpkgopt=path-exclude=/usr/share/info/*",
	"--aptopt=Acquire::Check-Valid-Until \"false\"",
	"--aptopt=Acquire::Check-Date \"false\"",
}

// Tarball returns the path of a tarball of spec's root filesystem,
// building it when the cache has none.
func Tarball(ctx context.Context, spec Spec) (string, error) {
	dir, key, sources, err := prepare(spec)
	if err != nil {
		return "", err
	}
	tar := filepath.Join(dir, key+".tar")
	err = locked(filepath.Join(dir, key+".lock"), func() error {
		if _, err := os.Stat(tar); err == nil {
			return nil
		}
		return build(ctx, spec, sources, tar)
	})
	if err != nil {
		return "", err
	}
	return tar, nil
}

// Dir returns a directory holding spec's root filesystem unpacked, for
// chroot. Callers must not change it: it is shared by every user of the
// cache. Write into a directory of your own and bind or copy it in.
func Dir(ctx context.Context, spec Spec) (string, error) {
	tar, err := Tarball(ctx, spec)
	if err != nil {
		return "", err
	}
	root := strings.TrimSuffix(tar, ".tar") + ".d"
	err = locked(strings.TrimSuffix(tar, ".tar")+".lock", func() error {
		if _, err := os.Stat(filepath.Join(root, ".complete")); err == nil {
			return nil
		}
		_ = os.RemoveAll(root)
		tmp := root + ".tmp"
		_ = os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		cmd := exec.CommandContext(ctx, "tar", "-xf", tar, "-C", tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("rootfs: unpack %s: %w: %s", tar, err, bytes.TrimSpace(out))
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		return os.Rename(tmp, root)
	})
	if err != nil {
		return "", err
	}
	return root, nil
}

// Key returns the cache key of spec built from the machine's sources: it
// changes when the spec, the recipe or the sources do. Image names use it
// as their tag, so an image is rebuilt exactly when its root filesystem is.
func Key(spec Spec) (string, error) {
	_, key, _, err := prepare(spec)
	return key, err
}

func prepare(spec Spec) (dir, key string, sources []byte, err error) {
	if spec.Suite == "" || !suiteRE.MatchString(spec.Suite) {
		return "", "", nil, fmt.Errorf("rootfs: Spec.Suite is %q, expected a Debian suite name such as trixie", spec.Suite)
	}
	sources, err = readSources(spec.Suite)
	if err != nil {
		return "", "", nil, err
	}
	pkgs := append([]string(nil), spec.Packages...)
	sort.Strings(pkgs)
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\npackages=%s\nrecipe=%s\n", spec.Suite, strings.Join(pkgs, ","), strings.Join(recipe, "\x00"))
	h.Write(sources)
	key = spec.Suite + "-" + hex.EncodeToString(h.Sum(nil))[:16]
	dir = os.Getenv(EnvCache)
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "supapool", "rootfs")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", nil, fmt.Errorf("rootfs: cache directory (%s): %w", EnvCache, err)
	}
	return dir, key, sources, nil
}

var suiteRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// suiteLine matches a deb822 Suites field.
var suiteLine = regexp.MustCompile(`(?m)^Suites:(.*)$`)

// readSources returns the machine's deb822 sources with every suite
// rewritten to suite: "bookworm-security" becomes "trixie-security".
// Suites with a suffix the target does not have (-updates, -backports)
// are kept as the sources name them, rewritten the same way; apt skips
// none of them silently, so a suite the mirror lacks fails the build with
// apt's own message.
func readSources(suite string) ([]byte, error) {
	var files []string
	if f := os.Getenv(EnvSources); f != "" {
		files = []string{f}
	} else {
		files, _ = filepath.Glob("/etc/apt/sources.list.d/*.sources")
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("rootfs: apt sources: %w", err)
		}
		all = append(all, b...)
		all = append(all, '\n')
	}
	if len(bytes.TrimSpace(all)) == 0 {
		return nil, fmt.Errorf("rootfs: no deb822 apt sources in /etc/apt/sources.list.d/*.sources; set %s to one", EnvSources)
	}
	return suiteLine.ReplaceAllFunc(all, func(line []byte) []byte {
		var out []string
		seen := map[string]bool{}
		for _, s := range strings.Fields(string(line[len("Suites:"):])) {
			rest := ""
			if i := strings.IndexByte(s, '-'); i >= 0 {
				rest = s[i:]
			}
			if rest == "-updates" {
				// The -updates suite of a stable release; a newer suite's
				// may be empty or missing on a snapshot mirror.
				continue
			}
			if n := suite + rest; !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
		return []byte("Suites: " + strings.Join(out, " "))
	}), nil
}

func build(ctx context.Context, spec Spec, sources []byte, tar string) error {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return ErrNoMmdebstrap
	}
	tmp := strings.TrimSuffix(tar, ".tar") + ".tmp.tar"
	args := append([]string{"--format=tar"}, recipe...)
	if len(spec.Packages) > 0 {
		args = append(args, "--include="+strings.Join(spec.Packages, ","))
	}
	args = append(args, spec.Suite, tmp, "-")
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	cmd.Stdin = bytes.NewReader(sources)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rootfs: mmdebstrap %s with %s: %w; its last lines:\n%s", spec.Suite, strings.Join(spec.Packages, ","), err, tail(out.String(), 15))
	}
	return os.Rename(tmp, tar)
}

// locked runs f holding an exclusive lock on path, so parallel test
// binaries build one root filesystem once.
func locked(path string, f func() error) error {
	fd, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	defer fd.Close()
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("rootfs: lock %s: %w", path, err)
	}
	defer syscall.Flock(int(fd.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file unlocks too
	return f()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
