package pooltest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/supapool/supapool/pool/pooltest"
)

func appConn(t *testing.T, ctx context.Context, url, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// TestStartBothURLs proves the URLs reach one PostgreSQL, the pooled one
// through a middlebox: the server's port seen from the pooled connection is
// not the port in the pooled URL.
func TestStartBothURLs(t *testing.T) {
	srv := pooltest.Start(t, pooltest.WithSessionPooler())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if srv.PooledURL == "" || srv.SessionURL == "" || srv.SuperuserURL == "" {
		t.Fatal("want pooled, session and superuser URLs")
	}
	for name, url := range map[string]string{"direct": srv.DirectURL, "pooled": srv.PooledURL, "session": srv.SessionURL} {
		var one int
		if err := appConn(t, ctx, url, "pooltest-"+name).QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("%s: select 1 = %d, %v", name, one, err)
		}
	}
	var maxConns int
	if err := appConn(t, ctx, srv.SuperuserURL, "pooltest-admin").QueryRow(ctx, "select current_setting('max_connections')::int").Scan(&maxConns); err != nil {
		t.Fatal(err)
	}
	if srv.MaxConnections != 0 && maxConns != srv.MaxConnections {
		t.Fatalf("max_connections = %d, Servers says %d", maxConns, srv.MaxConnections)
	}
	n, err := srv.Count(ctx, "pooltest-direct", "")
	if err != nil || n != 1 {
		t.Fatalf("direct backends = %d, %v; want 1", n, err)
	}
	var serverPort uint16
	if err := appConn(t, ctx, srv.PooledURL, "pooltest-port").QueryRow(ctx, "select inet_server_port()").Scan(&serverPort); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(srv.PooledURL)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port == serverPort {
		t.Fatalf("pooled URL port %d is the server's own port: no pooler in between", serverPort)
	}
}

// TestFaults runs each fault control once on private servers.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	srv := pooltest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	appConn(t, ctx, srv.DirectURL, "victim")
	n, err := srv.Terminate(ctx, "victim")
	if errors.Is(err, pooltest.ErrNoProcessControl) {
		t.Skip(err)
	}
	if err != nil || n != 1 {
		t.Fatalf("Terminate = %d, %v; want 1", n, err)
	}

	if err := srv.RestartPostgres(ctx, pooltest.Immediate); errors.Is(err, pooltest.ErrNoProcessControl) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	var one int
	if err := appConn(t, ctx, srv.DirectURL, "after-restart").QueryRow(ctx, "select 1").Scan(&one); err != nil {
		t.Fatalf("same URL after restart: %v", err)
	}

	if err := srv.StopPooler(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, srv.PooledURL); err == nil {
		t.Fatal("pooled URL answered with the pooler stopped")
	}
	if err := srv.StartPooler(ctx); err != nil {
		t.Fatal(err)
	}
	pooled := appConn(t, ctx, srv.PooledURL, "after-pooler")
	if err := pooled.QueryRow(ctx, "select 1").Scan(&one); err != nil {
		t.Fatalf("pooled URL after pooler restart: %v", err)
	}

	// A hung server keeps its connections open and answers nothing until
	// it resumes; then it answers again.
	for _, h := range []struct {
		name         string
		url          string
		hang, resume func() error
	}{
		{"pooler", srv.PooledURL, srv.HangPooler, srv.ResumePooler},
		{"server", srv.DirectURL, srv.HangPostgres, srv.ResumePostgres},
	} {
		conn := appConn(t, ctx, h.url, "before-hang-"+h.name)
		if err := h.hang(); err != nil {
			t.Fatal(err)
		}
		hctx, hcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		// Simple protocol: named statements collide through PgBouncer 1.18.
		err := conn.QueryRow(hctx, "select 1", pgx.QueryExecModeSimpleProtocol).Scan(&one)
		hcancel()
		if err == nil {
			t.Fatalf("a query to the hung %s was answered", h.name)
		}
		if err := h.resume(); err != nil {
			t.Fatal(err)
		}
		if err := appConn(t, ctx, h.url, "after-hang-"+h.name).QueryRow(ctx, "select 1", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil {
			t.Fatalf("the %s did not answer after it resumed: %v", h.name, err)
		}
	}
}

func TestBackendEnv(t *testing.T) {
	t.Setenv("TESTBED_DIRECT_URL", "")
	for _, v := range []string{"external", "nonsense"} {
		t.Setenv(pooltest.BackendEnv, v)
		_, err := pooltest.New(context.Background())
		if !errors.Is(err, pooltest.ErrBackend) {
			t.Fatalf("%s=%s: err = %v, want ErrBackend", pooltest.BackendEnv, v, err)
		}
	}
}
