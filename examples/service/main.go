// Command service is a small HTTP service on supapool, written to be
// copied: a JSON API over an items table, a cache kept fresh by
// LISTEN/NOTIFY, Server-Sent Events, health checks, Prometheus metrics and
// a graceful shutdown.
//
//	DATABASE_URL=postgres://...:5432/postgres \
//	DATABASE_POOLED_URL=postgres://...:6543/postgres \
//	go run ./examples/service
//
// Configuration comes from the environment only: the DATABASE_* variables
// of package pool, or SUPABASE_URL and SUPABASE_DB_PASSWORD (see package
// supabase), and ADDR or PORT for the listen address (default :8080).
// See README.md for every endpoint.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/supapool/supapool/monitor"
	"github.com/supapool/supapool/pool"
	"github.com/supapool/supapool/supabase"
)

// shutdownTimeout bounds the drain of in-flight requests. Kubernetes sends
// SIGKILL 30s after SIGTERM by default, so stay well inside that.
const shutdownTimeout = 15 * time.Second

func main() {
	log := zap.Must(zap.NewProduction())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts the shutdown, a second one kills the
	// process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, log)
	if err != nil {
		log.Error("service failed", zap.Error(err))
	} else {
		log.Info("stopped")
	}
	_ = log.Sync()
	if err != nil {
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down in order: HTTP first, so no
// request outlives the database; the monitor next, because it borrows
// connections from the pool; the pool last.
func run(ctx context.Context, log *zap.Logger) error {
	cfg, err := supabase.ConfigFromEnv(supabase.WithLogger(log))
	if err != nil {
		return err
	}
	app := &App{log: log, cache: newCache(), events: newBroker()}
	// Notifications sent while the listener was away are lost, so anything
	// they kept fresh must be thrown away and rebuilt.
	cfg.OnListenerReconnect = app.resync
	p, err := pool.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	app.db = p

	if p.Config().MaxDirectConns < 2 {
		log.Warn("the listener keeps one direct connection: with DATABASE_MAX_DIRECT_CONNS below 2, transactions and /healthz wait for it and fail")
	}
	if err := migrate(ctx, p); err != nil {
		return err
	}
	if err := p.Listener().Listen(ctx, itemsChannel, app.onItemsNotification); err != nil {
		return fmt.Errorf("listen %s: %w", itemsChannel, err)
	}

	mon, err := monitor.New(monitor.Config{DB: p, Logger: log})
	if err != nil {
		return err
	}
	monCtx, stopMonitor := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() { defer close(monDone); _ = mon.Run(monCtx) }()
	defer func() { stopMonitor(); <-monDone }()

	handler, err := app.routes(mon)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		// No WriteTimeout: it would cut /events streams. Handlers bound
		// their database work with dbTimeout instead.
		ErrorLog: zap.NewStdLog(log.Named("http")),
	}
	// Shutdown does not end long-lived responses by itself.
	srv.RegisterOnShutdown(app.events.close)

	ln, err := net.Listen("tcp", listenAddr())
	if err != nil {
		return err
	}
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("app", p.Config().AppName))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.Duration("timeout", shutdownTimeout))
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("drain requests: %w", err)
	}
	return nil
}

// listenAddr reads ADDR (host:port) or PORT, as platforms such as Heroku,
// Cloud Run and Render set it.
func listenAddr() string {
	if a := os.Getenv("ADDR"); a != "" {
		return a
	}
	if p := os.Getenv("PORT"); p != "" {
		return ":" + p
	}
	return ":8080"
}
