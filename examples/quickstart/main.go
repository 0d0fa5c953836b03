// Command quickstart shows supapool solving the problems it exists for, on
// real servers, in under a minute:
//
//	go run ./examples/quickstart
//
// With no DATABASE_URL it starts an embedded PostgreSQL capped at 60
// connections (like Supabase Free) and a transaction-mode PgBouncer, in a
// temporary directory removed on exit; it needs the Debian packages
// postgresql and pgbouncer. With DATABASE_URL (and DATABASE_POOLED_URL) set
// it uses those servers instead, and skips the part that deliberately
// overloads the server.
//
// The embedded servers come from pool/pooltest, so SUPAPOOL_TEST_BACKEND
// chooses where they run. With -serve it only starts them, prints the
// DATABASE_URL and DATABASE_POOLED_URL lines for examples/service, and
// keeps them up until interrupted:
//
//	go run ./examples/quickstart -serve
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/bench"
	"github.com/supapool/supapool/monitor"
	"github.com/supapool/supapool/pool"
	"github.com/supapool/supapool/pool/pooltest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	serveFlag := flag.Bool("serve", false, "start the embedded servers, print their DATABASE_URL and DATABASE_POOLED_URL lines, and keep them up until interrupted")
	flag.Parse()
	if *serveFlag {
		os.Exit(serve(ctx, os.Stdout))
	}
	os.Exit(run(ctx, os.Getenv, os.Stdout))
}

// serve starts the embedded servers and keeps them up until ctx ends. The
// URLs it prints carry the throwaway password of servers that exist only
// while it runs; they are printed on purpose, for examples/service.
func serve(ctx context.Context, out io.Writer) int {
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	srv, err := pooltest.New(startCtx)
	if err != nil {
		fmt.Fprintf(out, "quickstart: %v\n", err)
		return 1
	}
	defer srv.Close()
	fmt.Fprintf(out, "# PostgreSQL (max_connections %d) and PgBouncer in transaction mode are up; Ctrl-C stops them.\n", srv.MaxConnections)
	fmt.Fprintf(out, "# In another shell: export these, then go run ./examples/service\n")
	fmt.Fprintf(out, "export %s='%s'\n", pool.EnvDirectURL, srv.DirectURL)
	fmt.Fprintf(out, "export %s='%s'\n", pool.EnvPooledURL, srv.PooledURL)
	<-ctx.Done()
	return 0
}

// servers are the URLs the demo uses.
type servers struct {
	direct, pooled string
	embedded       bool
	maxConns       int
}

func run(ctx context.Context, getenv func(string) string, out io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	say := func(f string, a ...any) { fmt.Fprintf(out, f+"\n", a...) }
	fail := func(err error) int {
		say("quickstart: %v", err)
		return 1
	}

	srv := servers{direct: getenv(pool.EnvDirectURL), pooled: getenv(pool.EnvPooledURL)}
	if srv.direct == "" {
		say("No %s set: starting an embedded PostgreSQL (max_connections 60, like Supabase Free)", pool.EnvDirectURL)
		say("and PgBouncer in transaction mode (like Supavisor on port 6543)...")
		start := time.Now()
		bed, err := pooltest.New(ctx, pooltest.WithMaxConnections(60))
		if err != nil {
			return fail(err)
		}
		defer bed.Close()
		srv = servers{direct: bed.DirectURL, pooled: bed.PooledURL, embedded: true}
		say("  ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	} else {
		say("Using %s and %s from the environment.\n", pool.EnvDirectURL, orNone(srv.pooled, pool.EnvPooledURL))
	}
	if err := maxConnections(ctx, srv.direct, &srv.maxConns); err != nil {
		return fail(fmt.Errorf("connect to %s: %w", pool.EnvDirectURL, err))
	}

	for _, step := range []func(context.Context, servers, func(string, ...any)) error{
		sharedServer, preparedStatements, listenNotify, watch,
	} {
		if err := step(ctx, srv, say); err != nil {
			return fail(err)
		}
	}
	say("Done. Next: copy examples/service into your main.go, and size your apps with go run ./examples/budget.")
	return 0
}

func orNone(v, name string) string {
	if v == "" {
		return "no " + name
	}
	return name
}

func maxConnections(ctx context.Context, url string, n *int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, "select current_setting('max_connections')::int").Scan(n)
}

// sharedServer is the incident supapool exists for: seven apps, four
// instances each, all on one server.
func sharedServer(ctx context.Context, srv servers, say func(string, ...any)) error {
	say("1/4  Seven apps × 4 instances share one server of %d connections", srv.maxConns)
	spec := budget.Spec{Limit: srv.maxConns, Reserved: 4} // 3 superuser slots + this demo
	for a := 0; a < 7; a++ {
		spec.Apps = append(spec.Apps, budget.App{Name: fmt.Sprintf("storm_app%d", a), Instances: 4})
	}
	plan, err := budget.Plan(spec)
	if err != nil {
		say("     the budget planner says these apps cannot share this server:\n     %v", err)
		return nil
	}
	caps := func(app string) int32 { return plan.For(app).MaxConns }
	say("     budget plan: %d connections per instance, %d for the apps + %d reserved", plan.For("storm_app0").MaxConns, plan.ServerConns()-spec.Reserved, spec.Reserved)
	s := bench.Storm{Apps: 7, Instances: 4, Goroutines: 10, Queries: 50}
	if srv.embedded {
		s.Caps, s.Plain = bench.Fixed(4), true
		say("     plain pgxpool, 4 connections per instance (28 pools × 10 goroutines)...")
		r, err := bench.RunStorm(ctx, srv.direct, s)
		if err != nil {
			return err
		}
		say("       %d of %d queries failed (%v)", r.Errors, r.Queries, codes(r.Codes))
		s.Caps, s.Plain = bench.Fixed(4), false
		say("     supapool with the same too-high caps...")
		r, err = bench.RunStorm(ctx, srv.direct, s)
		if err != nil {
			return err
		}
		say("       %d of %d queries failed: routes wait for a held connection instead", r.Errors, r.Queries)
	} else {
		say("     (skipping the naive pools: they would overload your server on purpose)")
	}
	s.Caps, s.Plain = caps, false
	say("     supapool with the budget's caps...")
	r, err := bench.RunStorm(ctx, srv.direct, s)
	if err != nil {
		return err
	}
	say("       %d of %d queries failed, %.0f queries/s\n", r.Errors, r.Queries, r.QPS())
	if r.Errors > 0 {
		return fmt.Errorf("supapool callers saw errors: %v", r.Codes)
	}
	return nil
}

func codes(m map[string]int64) string {
	var parts []string
	for code, n := range m {
		what := code
		switch code {
		case "53300":
			what = "53300 too many clients"
		case "42P05":
			what = "42P05 prepared statement already exists"
		}
		parts = append(parts, fmt.Sprintf("%d × %s", n, what))
	}
	if len(parts) == 0 {
		return "no errors"
	}
	return strings.Join(parts, ", ")
}

// preparedStatements runs a prepared-statement-heavy load through the
// transaction pooler, as pgx does by default and as supapool does.
func preparedStatements(ctx context.Context, srv servers, say func(string, ...any)) error {
	say("2/4  Prepared statements through the transaction pooler (40 goroutines × 100 queries)")
	if srv.pooled == "" {
		say("     (skipped: no %s)\n", pool.EnvPooledURL)
		return nil
	}
	cfg, err := pgxpool.ParseConfig(srv.pooled)
	if err != nil {
		return fmt.Errorf("%s: %w", pool.EnvPooledURL, err)
	}
	cfg.MaxConns = 40
	raw, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	r := bench.Load(ctx, raw, 40, 100)
	raw.Close()
	say("     pgx's default statement cache: %d of %d failed (%s)", r.Errors, r.Queries, codes(r.Codes))
	p, err := pool.New(ctx, pool.Config{AppName: "quickstart", DirectURL: srv.direct, PooledURL: srv.pooled, MaxConns: 40})
	if err != nil {
		return err
	}
	defer p.Close()
	r = bench.Load(ctx, p, 40, 100)
	say("     supapool's pooled route:         %d of %d failed\n", r.Errors, r.Queries)
	if r.Errors > 0 {
		return fmt.Errorf("supapool queries failed: %v", r.Codes)
	}
	return nil
}

// listenNotify shows LISTEN refused on the pooled route and working
// through the listener.
func listenNotify(ctx context.Context, srv servers, say func(string, ...any)) error {
	say("3/4  LISTEN/NOTIFY")
	p, err := pool.New(ctx, pool.Config{AppName: "quickstart", DirectURL: srv.direct, PooledURL: srv.pooled})
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.Exec(ctx, "LISTEN jobs")
	if !errors.Is(err, pool.ErrSessionStatement) {
		return fmt.Errorf("LISTEN on the pooled route was not refused: %v", err)
	}
	say("     p.Exec(ctx, \"LISTEN jobs\") is refused:\n       %v", err)
	got := make(chan string, 1)
	if err := p.Listener().Listen(ctx, "jobs", func(_ context.Context, n *pgconn.Notification) error {
		got <- n.Payload
		return nil
	}); err != nil {
		return err
	}
	if err := p.Notify(ctx, "jobs", "job 42 is ready"); err != nil {
		return err
	}
	select {
	case msg := <-got:
		say("     p.Listener().Listen(ctx, \"jobs\", ...) received %q (sent with p.Notify through the pooler)\n", msg)
	case <-time.After(10 * time.Second):
		return errors.New("the listener received nothing within 10s")
	}
	return nil
}

// watch takes a monitor snapshot while a few apps hold connections.
func watch(ctx context.Context, srv servers, say func(string, ...any)) error {
	say("4/4  Watching pg_stat_activity")
	var held []*pgx.Conn
	defer func() {
		for _, c := range held {
			c.Close(context.Background())
		}
	}()
	for i, app := range []string{"web", "web", "web", "worker", "worker", "cron"} {
		cfg, err := pgx.ParseConfig(srv.direct)
		if err != nil {
			return err
		}
		cfg.RuntimeParams["application_name"] = "quickstart_" + app
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		held = append(held, c)
		if i == 3 {
			if _, err := c.Exec(ctx, "begin; select 1"); err != nil {
				return err
			}
		}
	}
	m, err := monitor.New(monitor.Config{URL: srv.direct})
	if err != nil {
		return err
	}
	defer m.Close()
	s, err := m.Poll(ctx)
	if err != nil {
		return err
	}
	say("     level %s: %d of %d connections in use (yellow at %.0f, red above %.0f)", strings.ToUpper(s.Level.String()), s.Total, s.MaxConnections, s.YellowAt, s.RedAbove)
	for _, a := range s.Apps {
		if !strings.HasPrefix(a.Application, "quickstart_") {
			continue
		}
		say("       %-20s %d connections %v", a.Application, a.Total, a.ByState)
	}
	say("")
	return nil
}
