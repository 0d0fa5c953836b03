package testbed

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
)

// needDocker skips a test when no Docker engine answers or the images
// are missing, and fails it instead in CI (SUPAPOOL_REQUIRE_TOOLS=1).
func needDocker(t *testing.T) {
	t.Helper()
	if err := dockerUsable(context.Background()); err != nil {
		if os.Getenv("SUPAPOOL_REQUIRE_TOOLS") == "1" {
			t.Fatalf("Docker backend unusable and SUPAPOOL_REQUIRE_TOOLS=1: %v", err)
		}
		t.Skip(err)
	}
}

// TestPostgresImageSpeaksOfficialLanguage runs the PostgreSQL image
// through testcontainers-go's own postgres module, unchanged and on
// Docker's default bridge network with a mapped port: the image must
// honour POSTGRES_USER/PASSWORD/DB, run init scripts, log readiness the
// way the module waits for it, and ask for a SCRAM password.
func TestPostgresImageSpeaksOfficialLanguage(t *testing.T) {
	needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	script := filepath.Join(t.TempDir(), "01-schema.sql")
	require.NoError(t, os.WriteFile(script, []byte("create table greeting (word text); insert into greeting values ('hello');\n"), 0o644))
	ctr, err := postgres.Run(ctx, ImagesFromEnv().Postgres,
		postgres.WithDatabase("shop"), postgres.WithUsername("owner"), postgres.WithPassword("s3cret:pw"),
		postgres.WithInitScripts(script),
		// postgres.BasicWaitStrategies, with a deadline for a loaded machine.
		testcontainers.WithWaitStrategyAndDeadline(3*time.Minute,
			wait.ForLog("database system is ready to accept connections").WithOccurrence(2), wait.ForListeningPort("5432/tcp")),
		testcontainers.WithLabels(map[string]string{labelBed: "1", labelOwner: owner(os.Getpid())}))
	testcontainers.CleanupContainer(t, ctr)
	require.NoError(t, err)
	dsn, err := ctr.ConnectionString(ctx, "sslmode=disable")
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var word, db, user, method string
	require.NoError(t, conn.QueryRow(ctx, "select word, current_database(), current_user from greeting").Scan(&word, &db, &user))
	require.Equal(t, []string{"hello", "shop", "owner"}, []string{word, db, user})
	require.NoError(t, conn.QueryRow(ctx, "select current_setting('password_encryption')").Scan(&method))
	require.Equal(t, "scram-sha-256", method)
	var maxConns int
	require.NoError(t, conn.QueryRow(ctx, "select current_setting('max_connections')::int").Scan(&maxConns))
	if os.Getenv(EnvPostgresImage) != "" { // ours; the official image keeps PostgreSQL's 100
		require.Equal(t, 60, maxConns, "supapool's image defaults to Supabase Free's 60 connections")
	}

	wrong, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	wrong.Password = "not-it"
	_, err = pgx.ConnectConfig(ctx, wrong)
	require.ErrorContains(t, err, "password authentication failed", "a wrong password must be refused over TCP")
}

// TestBuildImagesIsCached proves a second build of existing images builds
// nothing and names the same images.
func TestBuildImagesIsCached(t *testing.T) {
	needDocker(t)
	if os.Getenv(EnvPostgresImage) == "" {
		t.Skip("the images are the public ones (no SUPAPOOL_TEST_POSTGRES_IMAGE): nothing of ours to build")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var built []string
	im, err := BuildImages(ctx, func(f string, a ...any) { built = append(built, f) })
	require.NoError(t, err)
	require.Equal(t, ImagesFromEnv(), im, "the variables must name what BuildImages builds")
	for _, line := range built {
		require.Equal(t, "testbed: image %s exists", line, "nothing may be rebuilt")
	}
}

// TestPgBouncerImageSpeaksEdoburuLanguage starts the PgBouncer image the
// way edoburu/pgbouncer's documentation does: only environment
// variables, the user and password in DB_USER/DB_PASSWORD (written to
// the auth file by the entrypoint), in front of a bed's PostgreSQL.
func TestPgBouncerImageSpeaksEdoburuLanguage(t *testing.T) {
	needDocker(t)
	b, err := New(context.Background(), Options{NoPooler: true, Backend: BackendDocker})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	app, err := pgx.ParseConfig(b.DirectURL)
	require.NoError(t, err)
	s, err := startOnFreePort(ctx, "pgbouncer", func(port int) (runner, error) {
		return newContainerRun(b.docker, testcontainers.ContainerRequest{
			Image: ImagesFromEnv().PgBouncer,
			Env: map[string]string{
				"DB_HOST": "127.0.0.1", "DB_PORT": strconv.Itoa(b.pg.port), "DB_USER": AppUser, "DB_PASSWORD": app.Password,
				"LISTEN_ADDR": "127.0.0.1", "LISTEN_PORT": strconv.Itoa(port), "AUTH_TYPE": "scram-sha-256",
				"POOL_MODE": "transaction", "DEFAULT_POOL_SIZE": "3", "MAX_CLIENT_CONN": "50",
			},
			HostConfigModifier: hostNetwork(),
		}), nil
	}, func(port int) string { return makeURL(AppUser, app.Password, port, Database) })
	require.NoError(t, err)
	t.Cleanup(s.close)

	conn, err := pgx.Connect(ctx, makeURL(AppUser, app.Password, s.port, Database))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var serverPort int
	require.NoError(t, conn.QueryRow(ctx, "select inet_server_port()", pgx.QueryExecModeSimpleProtocol).Scan(&serverPort))
	require.Equal(t, b.pg.port, serverPort, "the query reached the bed's PostgreSQL through the pooler")
	wrong := makeURL(AppUser, "not-it", s.port, Database)
	_, err = pgx.Connect(ctx, wrong)
	require.Error(t, err, "a wrong password must be refused by the pooler")
}
