package monitor

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/supapool/supapool/budget"
)

// DB runs the poll's one query. *pgxpool.Pool and supapool's *pool.Pool
// satisfy it, as does *pgx.Conn if the caller serialises its use.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Defaults for Config's zero fields; each field's comment states its own.
const (
	defaultInterval        = 10 * time.Second
	defaultMaxPollTimeout  = 5 * time.Second
	defaultIdleInTxAlert   = time.Minute
	defaultApplicationName = "supapool-monitor"
)

// Config configures a [Monitor]. Only one of DB and URL is set.
type Config struct {
	// DB runs the poll's query on a connection the caller already pools,
	// so the monitor costs no connection of its own. A poll borrows one
	// connection for one query; if none is free it waits at most Timeout,
	// then counts the poll as failed. The query needs no prepared
	// statement, so a DB behind a transaction-mode pooler works too
	// (supapool's *pool.Pool runs it on its pooled route); the poll then
	// runs on one of the pooler's server connections.
	DB DB

	// URL makes the monitor keep one connection of its own, opened on the
	// first poll and reopened after any failure or Close; it is the only
	// one it ever holds. Its application_name is "supapool-monitor" unless
	// the URL sets one. Use a direct URL, not a pooler's.
	URL string

	// Interval is the time between polls in Run. Default 10s.
	Interval time.Duration

	// Timeout bounds each poll, connecting included. Default the smaller
	// of Interval and 5 seconds: a poll never outlives its turn, so polls
	// never overlap and never queue behind a full server.
	Timeout time.Duration

	// Levels sets the Yellow and Red thresholds and their hysteresis.
	Levels Levels

	// Budget, when set, is compared with each app's live connections; an
	// app above its share raises AlertOverBudget. Apps are matched by
	// application_name, so each app must connect with its plan name.
	Budget *budget.Allocation

	// IdleInTxAlert raises AlertIdleInTransaction for an app with a
	// session idle inside a transaction for longer than this. Default 1
	// minute; negative turns the alert off.
	IdleInTxAlert time.Duration

	// QueryTexts, when above 0, makes each poll also read the text of
	// each group's oldest transaction's latest statement, cut on the
	// server to this many characters, into Group.Query; the JSON handler
	// and the dashboard then show it. Default 0: no query text is read,
	// because statements can hold personal data (literals in WHERE
	// clauses, inserted values). Turn it on only behind the same access
	// control as the data itself.
	QueryTexts int

	// OnChange is called after a poll changes the level (after
	// hysteresis), with the snapshot that changed it.
	//
	// It is called after the poll has ended and given back its turn, with
	// no lock held, so it may call Poll, Snapshot or Close. Calls to
	// OnChange and OnAlert are made one at a time, in the order of the
	// polls that caused them, none dropped, on the goroutine of Run or of
	// a Poll (not always the Poll whose poll caused the call: see
	// [Monitor.Poll]). A slow callback delays the goroutine running it:
	// under Run, the next poll.
	OnChange func(Snapshot)

	// OnAlert is called when an alert is raised or cleared, as OnChange
	// is; a poll's level change comes before its alerts.
	OnAlert func(Alert)

	// Logger receives a warning on each level change, raised alert and
	// first failed poll, and an info line when they clear. Default: none.
	Logger *zap.Logger
}
