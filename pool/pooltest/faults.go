package pooltest

import (
	"context"

	"github.com/supapool/supapool/internal/testbed"
)

// RestartPostgres stops PostgreSQL in the given mode and starts it again
// on the same port, so pools under test can reconnect.
func (s *Servers) RestartPostgres(ctx context.Context, mode Shutdown) error {
	return s.bed.RestartPostgres(ctx, mode)
}

// StopPooler stops the transaction-mode PgBouncer.
func (s *Servers) StopPooler() error { return s.bed.StopPooler() }

// StartPooler starts the transaction-mode PgBouncer again on its port.
func (s *Servers) StartPooler(ctx context.Context) error { return s.bed.StartPooler(ctx) }

// Terminate ends every client backend whose application_name is app and
// returns how many it ended.
func (s *Servers) Terminate(ctx context.Context, app string) (int, error) {
	return s.bed.Terminate(ctx, testbed.Filter{AppName: app})
}

// Count returns how many client backends have application_name app and
// the given state ("active", "idle", ...); empty arguments match all.
func (s *Servers) Count(ctx context.Context, app, state string) (int, error) {
	return s.bed.Count(ctx, testbed.Filter{AppName: app, State: state})
}

// HangPostgres freezes PostgreSQL and every backend (docker pause, or
// SIGSTOP to its process group): connections stay open and nothing
// answers, as when a host stalls, until [Servers.ResumePostgres].
func (s *Servers) HangPostgres() error { return s.bed.HangPostgres() }

// ResumePostgres ends a [Servers.HangPostgres].
func (s *Servers) ResumePostgres() error { return s.bed.ResumePostgres() }

// HangPooler freezes the transaction-mode PgBouncer (docker pause, or
// SIGSTOP): clients' connections stay open and nothing answers until
// [Servers.ResumePooler].
func (s *Servers) HangPooler() error { return s.bed.HangPooler() }

// ResumePooler ends a [Servers.HangPooler].
func (s *Servers) ResumePooler() error { return s.bed.ResumeHungPooler() }
