package testbed

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/supapool/supapool/internal/appname"
)

// Shutdown says how PostgreSQL stops in [Bed.RestartPostgres].
type Shutdown int

const (
	// Fast disconnects clients and shuts down cleanly (pg_ctl -m fast).
	Fast Shutdown = iota
	// Immediate aborts without a checkpoint, like a crash (pg_ctl -m
	// immediate); the server runs crash recovery when it starts again.
	Immediate
)

func (s Shutdown) String() string {
	if s == Immediate {
		return "immediate"
	}
	return "fast"
}

// StopPostgres stops PostgreSQL and leaves it stopped.
func (b *Bed) StopPostgres(mode Shutdown) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pg == nil {
		return ErrNoProcessControl
	}
	b.pg.stop(stopMode(mode))
	return nil
}

// StartPostgres starts a stopped PostgreSQL again on the same port.
func (b *Bed) StartPostgres(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pg == nil {
		return ErrNoProcessControl
	}
	if b.pg.running() {
		return nil
	}
	return relaunch(ctx, b.pg, b.AdminURL)
}

// relaunch starts a stopped server again on its port and waits until
// readyURL answers.
func relaunch(ctx context.Context, s *server, readyURL string) error {
	if err := s.launch(ctx); err != nil {
		return err
	}
	if err := waitReady(ctx, s, readyURL); err != nil {
		tail := s.logTail(10)
		if s.running() { // not half up: the next start must try again
			s.run.kill()
			<-s.exited()
		}
		return fmt.Errorf("testbed: %s did not restart: %w%s", s.name, err, tail)
	}
	return nil
}

// RestartPostgres stops PostgreSQL with the given shutdown mode and starts
// it again on the same port, returning once it accepts connections.
func (b *Bed) RestartPostgres(ctx context.Context, mode Shutdown) error {
	if err := b.StopPostgres(mode); err != nil {
		return err
	}
	return b.StartPostgres(ctx)
}

// StopPooler stops the transaction-mode PgBouncer; clients connected through
// it lose their connections.
func (b *Bed) StopPooler() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bouncers) == 0 {
		return ErrNoProcessControl
	}
	b.bouncers[0].stop(stopFast)
	return nil
}

// StartPooler starts a stopped transaction-mode PgBouncer on the same port.
func (b *Bed) StartPooler(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bouncers) == 0 {
		return ErrNoProcessControl
	}
	s := b.bouncers[0]
	if s.running() {
		return nil
	}
	return relaunch(ctx, s, b.PooledURL)
}

// HangPostgres freezes PostgreSQL, every backend included (SIGSTOP to its
// process group locally, docker pause in a container): connections stay
// open and nothing answers, as when a host stalls, until [Bed.ResumePostgres].
func (b *Bed) HangPostgres() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pg == nil {
		return ErrNoProcessControl
	}
	return b.pg.hang()
}

// ResumePostgres ends a [Bed.HangPostgres].
func (b *Bed) ResumePostgres() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pg == nil {
		return ErrNoProcessControl
	}
	return b.pg.resume()
}

// HangPooler freezes the transaction-mode PgBouncer (SIGSTOP locally,
// docker pause in a container): clients' connections stay open, new ones
// are not answered, until [Bed.ResumeHungPooler]. Unlike [Bed.PausePooler]
// (PgBouncer's own PAUSE) nothing of PgBouncer runs meanwhile.
func (b *Bed) HangPooler() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bouncers) == 0 {
		return ErrNoProcessControl
	}
	return b.bouncers[0].hang()
}

// ResumeHungPooler ends a [Bed.HangPooler].
func (b *Bed) ResumeHungPooler() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bouncers) == 0 {
		return ErrNoProcessControl
	}
	return b.bouncers[0].resume()
}

// PausePooler sends PAUSE to the transaction-mode PgBouncer's admin
// console: it keeps accepting clients but answers none of their queries
// (nor new logins' first query) until [Bed.ResumePooler]. It returns once
// PgBouncer has released its server connections.
func (b *Bed) PausePooler(ctx context.Context) error { return b.poolerAdmin(ctx, "PAUSE") }

// ResumePooler ends a [Bed.PausePooler].
func (b *Bed) ResumePooler(ctx context.Context) error { return b.poolerAdmin(ctx, "RESUME") }

func (b *Bed) poolerAdmin(ctx context.Context, cmd string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bouncers) == 0 || b.adminPW == "" {
		return ErrNoProcessControl
	}
	u := makeURL(AdminUser, b.adminPW, b.bouncers[0].port, "pgbouncer") + "&default_query_exec_mode=simple_protocol"
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("testbed: pgbouncer admin console: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, cmd); err != nil {
		return fmt.Errorf("testbed: pgbouncer %s: %w", cmd, err)
	}
	return nil
}

// Filter selects client backends in pg_stat_activity. Empty fields match
// everything.
type Filter struct {
	// AppName matches application_name with any instance id folded
	// away (internal/appname): "web" matches web and web#k3x9q2 (a
	// pool's elastic routes), "web/heavy" matches web/heavy#k3x9q2.
	AppName string
	// AppPrefix matches application_name by prefix.
	AppPrefix string
	// State matches state exactly ("active", "idle", "idle in transaction").
	State string
	// QueryPrefix matches the start of the backend's current or last query.
	QueryPrefix string
	// User matches usename exactly.
	User string
}

// Backend is one client backend as pg_stat_activity shows it.
type Backend struct {
	PID     int32
	AppName string
	User    string
	State   string
	Query   string
	Port    int32 // client_port: which client socket the backend serves
}

func (f Filter) match(be Backend) bool {
	return (f.AppName == "" || be.AppName == f.AppName || withoutInstance(be.AppName) == f.AppName) &&
		(f.AppPrefix == "" || strings.HasPrefix(be.AppName, f.AppPrefix)) &&
		(f.State == "" || be.State == f.State) &&
		(f.QueryPrefix == "" || strings.HasPrefix(be.Query, f.QueryPrefix)) &&
		(f.User == "" || be.User == f.User)
}

// withoutInstance is an application_name with its instance id taken off.
func withoutInstance(name string) string {
	n := appname.Parse(name)
	n.Instance = ""
	return n.String()
}

// Backends lists the client backends matching f, excluding the one that
// asks.
func (b *Bed) Backends(ctx context.Context, f Filter) ([]Backend, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("testbed: connect as superuser: %w", err)
	}
	defer conn.Close(context.Background())
	return backends(ctx, conn, f)
}

func backends(ctx context.Context, conn *pgx.Conn, f Filter) ([]Backend, error) {
	rows, err := conn.Query(ctx, `select pid, coalesce(application_name, ''), coalesce(usename, ''),
		coalesce(state, ''), coalesce(query, ''), coalesce(client_port, 0)
		from pg_stat_activity
		where backend_type = 'client backend' and pid <> pg_backend_pid()`)
	if err != nil {
		return nil, fmt.Errorf("testbed: read pg_stat_activity: %w", err)
	}
	var out []Backend
	for rows.Next() {
		var be Backend
		if err := rows.Scan(&be.PID, &be.AppName, &be.User, &be.State, &be.Query, &be.Port); err != nil {
			return nil, fmt.Errorf("testbed: read pg_stat_activity: %w", err)
		}
		if f.match(be) {
			out = append(out, be)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("testbed: read pg_stat_activity: %w", err)
	}
	return out, nil
}

// Count is the number of client backends matching f.
func (b *Bed) Count(ctx context.Context, f Filter) (int, error) {
	bes, err := b.Backends(ctx, f)
	return len(bes), err
}

// CountByApp counts client backends per application_name and state.
func (b *Bed) CountByApp(ctx context.Context) (map[string]map[string]int, error) {
	bes, err := b.Backends(ctx, Filter{})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]int{}
	for _, be := range bes {
		if out[be.AppName] == nil {
			out[be.AppName] = map[string]int{}
		}
		out[be.AppName][be.State]++
	}
	return out, nil
}

// Terminate ends every client backend matching f with
// pg_terminate_backend and returns how many it ended. An empty Filter is
// refused, because ending every backend is never what a test means.
func (b *Bed) Terminate(ctx context.Context, f Filter) (int, error) {
	if f == (Filter{}) {
		return 0, fmt.Errorf("testbed: Terminate needs a non-empty Filter")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.AdminURL)
	if err != nil {
		return 0, fmt.Errorf("testbed: connect as superuser: %w", err)
	}
	defer conn.Close(context.Background())
	bes, err := backends(ctx, conn, f)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, be := range bes {
		var ok bool
		if err := conn.QueryRow(ctx, "select pg_terminate_backend($1)", be.PID).Scan(&ok); err != nil {
			return n, fmt.Errorf("testbed: pg_terminate_backend(%d): %w", be.PID, err)
		}
		if ok {
			n++
		}
	}
	return n, nil
}
