package testbed

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed" // the entrypoints
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/supapool/supapool/internal/rootfs"
)

// The variables naming the images the Docker backend runs.
const (
	// EnvPostgresImage names the PostgreSQL image: the official image
	// or one that speaks its language. Default postgres:15-bookworm.
	EnvPostgresImage = "SUPAPOOL_TEST_POSTGRES_IMAGE"
	// EnvPgBouncerImage names the PgBouncer image of the bed's
	// transaction and session poolers, in the environment language of
	// edoburu/pgbouncer. Default edoburu/pgbouncer:latest.
	EnvPgBouncerImage = "SUPAPOOL_TEST_PGBOUNCER_IMAGE"
	// EnvPgBouncerPreparedImage names a PgBouncer 1.21 or later (named
	// prepared statements in transaction mode) for [Bed.StartTrixieBouncer].
	// Default edoburu/pgbouncer:latest.
	EnvPgBouncerPreparedImage = "SUPAPOOL_TEST_PGBOUNCER_PREPARED_IMAGE"
)

// Images are the names of the images the Docker backend runs.
type Images struct {
	Postgres          string
	PgBouncer         string
	PgBouncerPrepared string
}

// ImagesFromEnv returns the images the variables name, with the public
// defaults for those unset.
func ImagesFromEnv() Images {
	get := func(env, def string) string {
		if v := os.Getenv(env); v != "" {
			return v
		}
		return def
	}
	return Images{
		Postgres:          get(EnvPostgresImage, "postgres:15-bookworm"),
		PgBouncer:         get(EnvPgBouncerImage, "edoburu/pgbouncer:latest"),
		PgBouncerPrepared: get(EnvPgBouncerPreparedImage, "edoburu/pgbouncer:latest"),
	}
}

// Env returns the images as VAR=value lines, for a shell's eval.
func (im Images) Env() []string {
	return []string{
		EnvPostgresImage + "=" + im.Postgres,
		EnvPgBouncerImage + "=" + im.PgBouncer,
		EnvPgBouncerPreparedImage + "=" + im.PgBouncerPrepared,
	}
}

//go:embed image/postgres-entrypoint.sh
var postgresEntrypoint string

//go:embed image/pgbouncer-entrypoint.sh
var pgbouncerEntrypoint string

// recipe is one image built from Debian packages.
type recipe struct {
	repo    string      // image repository; the tag is the content key
	spec    rootfs.Spec // what mmdebstrap installs
	files   map[string]string
	changes []string // docker import --change lines
	drop    []string // path prefixes left out of the image
	give    []string // directories of the rootfs given to the postgres user
	mkdir   []string // new directories, owned by the postgres user
}

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var (
	postgresRecipe = recipe{
		repo:  "supapool-testbed/postgres",
		spec:  rootfs.Spec{Suite: "bookworm", Packages: []string{"postgresql-15"}},
		files: map[string]string{"usr/local/bin/docker-entrypoint.sh": postgresEntrypoint},
		changes: []string{
			"ENV PATH=/usr/lib/postgresql/15/bin:" + strings.TrimPrefix(pathEnv, "PATH="),
			"ENV PGDATA=/var/lib/postgresql/data",
			"ENV LANG=C.UTF-8",
			`ENTRYPOINT ["docker-entrypoint.sh"]`,
			`CMD ["postgres"]`,
			"EXPOSE 5432",
		},
		// Debian's packaging creates a cluster of its own; the
		// entrypoint makes the image's in PGDATA.
		drop:  []string{"var/lib/postgresql/15/", "etc/postgresql/15/"},
		mkdir: []string{"docker-entrypoint-initdb.d/"},
	}
	pgbouncerChanges = []string{
		"ENV " + pathEnv,
		`ENTRYPOINT ["/entrypoint.sh"]`,
		`CMD ["/usr/sbin/pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]`,
		"USER postgres",
		"EXPOSE 5432",
	}
	pgbouncerRecipe = recipe{
		repo:    "supapool-testbed/pgbouncer",
		spec:    rootfs.Spec{Suite: "bookworm", Packages: []string{"pgbouncer"}},
		files:   map[string]string{"entrypoint.sh": pgbouncerEntrypoint},
		changes: pgbouncerChanges,
		drop:    []string{"etc/pgbouncer/pgbouncer.ini", "etc/pgbouncer/userlist.txt"},
		give:    []string{"etc/pgbouncer/"},
	}
	pgbouncerPreparedRecipe = recipe{
		repo:    "supapool-testbed/pgbouncer",
		spec:    trixieSpec,
		files:   pgbouncerRecipe.files,
		changes: pgbouncerChanges,
		drop:    pgbouncerRecipe.drop,
		give:    pgbouncerRecipe.give,
	}
)

// BuildImages builds supapool's own images from Debian packages, so the
// Docker backend runs where no registry can be reached: PostgreSQL 15
// and PgBouncer 1.18 from bookworm, PgBouncer 1.24 from trixie. Each is
// a root filesystem from internal/rootfs imported with docker import,
// tagged by the hash of everything that goes into it, so an image that
// exists already is not built again. logf receives progress lines.
func BuildImages(ctx context.Context, logf func(string, ...any)) (Images, error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return Images{}, err
	}
	var out Images
	for _, r := range []struct {
		recipe recipe
		name   *string
	}{{postgresRecipe, &out.Postgres}, {pgbouncerRecipe, &out.PgBouncer}, {pgbouncerPreparedRecipe, &out.PgBouncerPrepared}} {
		name, err := r.recipe.build(ctx, cli, logf)
		if err != nil {
			return Images{}, err
		}
		*r.name = name
	}
	return out, nil
}

func (r recipe) build(ctx context.Context, cli *testcontainers.DockerClient, logf func(string, ...any)) (string, error) {
	key, err := rootfs.Key(r.spec)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n%q\n%q\n%q\n", key, r.changes, r.drop, r.give, r.mkdir)
	for _, p := range slices.Sorted(maps.Keys(r.files)) {
		fmt.Fprintf(h, "%s\n%s\n", p, r.files[p])
	}
	name := r.repo + ":" + key + "-" + hex.EncodeToString(h.Sum(nil))[:8]
	if _, err := cli.ImageInspect(ctx, name); err == nil {
		logf("testbed: image %s exists", name)
		return name, nil
	}
	start := time.Now()
	tarball, err := rootfs.Tarball(ctx, r.spec)
	if err != nil {
		return "", err
	}
	uid, gid, err := passwdIDs(tarball, "postgres")
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.rewrite(tarball, pw, uid, gid)) }()
	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, name, client.ImageImportOptions{Changes: r.changes})
	if err != nil {
		_ = pr.CloseWithError(err)
		return "", fmt.Errorf("testbed: docker import %s: %w", name, err)
	}
	body, err := io.ReadAll(res)
	_ = res.Close()
	_ = pr.Close()
	if err != nil {
		return "", fmt.Errorf("testbed: docker import %s: %w", name, err)
	}
	if i := strings.Index(string(body), `"error"`); i >= 0 {
		return "", fmt.Errorf("testbed: docker import %s: %s", name, strings.TrimSpace(string(body[i:])))
	}
	if _, err := cli.ImageInspect(ctx, name); err != nil {
		return "", fmt.Errorf("testbed: docker import %s: image missing afterwards: %w", name, err)
	}
	logf("testbed: built image %s in %s", name, time.Since(start).Round(time.Second))
	return name, nil
}

// rewrite copies the root filesystem tarball to w without the dropped
// paths, with the given directories owned by uid:gid, and with the
// recipe's files added (executable, owned by root).
func (r recipe) rewrite(tarball string, w io.Writer, uid, gid int) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("testbed: read %s: %w", tarball, err)
		}
		p := strings.TrimPrefix(hdr.Name, "./")
		if hasPrefix(p, r.drop) {
			continue
		}
		if _, ok := r.files[p]; ok {
			continue
		}
		if hdr.Typeflag == tar.TypeDir && slices.Contains(r.give, p) {
			hdr.Uid, hdr.Gid = uid, gid
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	for _, dir := range r.mkdir {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + dir, Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
	}
	for _, p := range slices.Sorted(maps.Keys(r.files)) {
		body := r.files[p]
		if err := tw.WriteHeader(&tar.Header{Name: "./" + p, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return err
		}
	}
	return tw.Close()
}

// passwdIDs reads a user's uid and gid from a root filesystem tarball.
func passwdIDs(tarball, user string) (int, int, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return 0, 0, fmt.Errorf("testbed: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return 0, 0, fmt.Errorf("testbed: %s has no /etc/passwd entry for %q", tarball, user)
		}
		if strings.TrimPrefix(hdr.Name, "./") != "etc/passwd" {
			continue
		}
		sc := bufio.NewScanner(tr)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) > 3 && fields[0] == user {
				uid, err1 := strconv.Atoi(fields[2])
				gid, err2 := strconv.Atoi(fields[3])
				if err1 == nil && err2 == nil {
					return uid, gid, nil
				}
			}
		}
	}
}

// hasPrefix reports whether p starts with one of prefixes (a directory
// prefix "a/" also matches "a/" itself).
func hasPrefix(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}
