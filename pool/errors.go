package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

var (
	// ErrSessionStatement is matched (errors.Is) by the error returned when
	// a statement that needs a session is sent on the pooled route.
	ErrSessionStatement = errors.New("pool: statement needs a session")

	// ErrServerFull is matched by the error returned when the server or the
	// pooler had no connection to give before the caller's context ended.
	ErrServerFull = errors.New("pool: server has no free connections")

	// ErrNoDirectRoute is returned by calls that need the direct route
	// when Config.NoDirect is set.
	ErrNoDirectRoute = errors.New("pool: direct route is off (NoDirect: the budget gives this app no direct connections)")

	// ErrClosed is returned by calls on a closed Pool.
	ErrClosed = errors.New("pool: closed")
)

// SessionStatementError says which session statement was refused on the
// pooled route and what to use instead.
type SessionStatementError struct {
	Statement string // e.g. "LISTEN", "SET"
	Hint      string
}

func (e *SessionStatementError) Error() string {
	return "pool: " + e.Statement + " needs a session, which the pooled route does not keep; " + e.Hint
}

// Is makes errors.Is(err, ErrSessionStatement) true.
func (e *SessionStatementError) Is(target error) bool { return target == ErrSessionStatement }

// ServerFullError is returned when a route could not get a connection
// because the server (SQLSTATE 53300) or the pooler refused new clients
// for as long as the caller's context allowed. It matches ErrServerFull and
// the context's error.
type ServerFullError struct {
	Route   Route
	Code    string // SQLSTATE of the last refusal: 53300, or XX000/08P01 from a pooler
	Message string // the server's or pooler's message
	Retries int    // attempts made
	Err     error  // why the wait ended: the context's error
}

func (e *ServerFullError) Error() string {
	return fmt.Sprintf("pool: %s route: server full after %d attempts (SQLSTATE %s: %s): %v", e.Route, e.Retries, e.Code, e.Message, e.Err)
}

// Is makes errors.Is(err, ErrServerFull) true.
func (e *ServerFullError) Is(target error) bool { return target == ErrServerFull }

// Unwrap gives the context's error.
func (e *ServerFullError) Unwrap() error { return e.Err }

// connErrKind sorts the errors of a connection attempt.
type connErrKind int

const (
	otherErr   connErrKind = iota
	serverFull             // lower the cap, wait for a held connection, retry within the context
	transient              // the server is coming back: back off and retry within the context
	configErr              // fail at once, with a hint
)

// classifyConnErr decides whether a failed acquire is worth waiting for,
// from what servers and poolers actually send:
//
//   - PostgreSQL refuses a client with SQLSTATE 53300 ("sorry, too many
//     clients already", "remaining connection slots are reserved ...").
//   - PgBouncer relays that refusal as FATAL 08P01 with PostgreSQL's text,
//     and says "server login has been failing, try again later
//     (server_login_retry)" (08P01) for a while after the server was down.
//   - Supavisor answers FATAL XX000 "(EMAXCONN) ..." and friends, older
//     versions plain-text messages.
func classifyConnErr(err error) (connErrKind, *pgconn.PgError) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := pgErr.Message
		switch {
		case pgErr.Code == "53300",
			strings.HasPrefix(msg, "sorry, too many clients already"),
			strings.HasPrefix(msg, "remaining connection slots are reserved"),
			strings.HasPrefix(msg, "(EMAXCONN"), strings.HasPrefix(msg, "(ECHECKOUTTIMEOUT"),
			strings.HasPrefix(msg, "(EDBHANDLEREXITED"), strings.HasPrefix(msg, "(ECIRCUITBREAKER"),
			strings.HasPrefix(msg, "(EMAXPOOLSREACHED"),
			strings.Contains(msg, "Max client connections reached"),
			strings.HasPrefix(msg, "MaxClientsInSessionMode"),
			strings.Contains(msg, "Unable to check out process from the pool"),
			strings.Contains(msg, "no more connections allowed"):
			return serverFull, pgErr
		case strings.HasPrefix(msg, "server login has been failing"),
			pgErr.Code == "57P03": // the database system is starting up / shutting down
			return transient, pgErr
		case pgErr.Code == "28P01", pgErr.Code == "28000", pgErr.Code == "3D000",
			// PgBouncer reports a wrong password as 08P01.
			strings.Contains(msg, "authentication failed"),
			strings.HasPrefix(msg, "(ENOTFOUND)"), strings.Contains(msg, "Tenant or user not found"):
			return configErr, pgErr
		}
		return otherErr, pgErr
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return configErr, nil
	}
	if isTLSRefused(err) {
		return configErr, nil
	}
	return otherErr, nil
}

// isTLSRefused reports pgconn's error for a server that declined the TLS
// the URL's sslmode requires (pgconn does not export it; only its text
// identifies it), or whose certificate was not accepted.
func isTLSRefused(err error) bool {
	var certErr *tls.CertificateVerificationError
	return err != nil && (strings.Contains(err.Error(), "server refused TLS connection") || errors.As(err, &certErr))
}

// connectHint explains a configuration error in terms of the setting to
// fix. It never repeats the URL.
func connectHint(r Route, err error, pgErr *pgconn.PgError, mode PoolerMode) string {
	env := EnvDirectURL
	if (r == Pooled || r == Heavy) && mode != NoPooler {
		env = EnvPooledURL
	}
	switch {
	case pgErr == nil && isTLSRefused(err):
		return "the server does not accept TLS or its certificate was refused; check sslmode (and sslrootcert) in " + env
	case pgErr == nil:
		return "the host name does not resolve; check the host in " + env
	case pgErr.Code == "28P01", strings.Contains(pgErr.Message, "authentication failed"):
		h := "check the password in " + env
		if mode != NoPooler {
			h += "; on Supabase's shared pooler the user must be postgres.<project-ref>"
		}
		return h
	case strings.HasPrefix(pgErr.Message, "(ENOTFOUND)"), strings.Contains(pgErr.Message, "Tenant or user not found"):
		return "the pooler does not know this user: on Supabase's shared pooler the user must be postgres.<project-ref> and the host must be the one in the dashboard's Connect dialog (" + env + ")"
	case pgErr.Code == "3D000":
		return "the database in " + env + " does not exist"
	}
	return "check " + env
}

// wrapAcquireErr turns a failed acquire into the error the caller sees.
func wrapAcquireErr(r *route, err error) error {
	if errors.Is(err, puddle.ErrClosedPool) {
		return ErrClosed
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pool: %s route: acquire: %w", r.name, err)
	}
	kind, pgErr := classifyConnErr(err)
	if kind == configErr {
		return fmt.Errorf("pool: %s route: connect: %w (%s)", r.name, err, connectHint(r.name, err, pgErr, r.mode))
	}
	return fmt.Errorf("pool: %s route: %w", r.name, err)
}
