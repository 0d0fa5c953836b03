package pool

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PoolerMode is what sits behind a URL: the server itself or a pooler in
// one of its modes.
type PoolerMode int

const (
	// DetectMode asks supapool to read the mode from the URL (the zero
	// value of Config.PooledMode).
	DetectMode PoolerMode = iota
	// NoPooler is a direct connection to PostgreSQL.
	NoPooler
	// TransactionPooler hands a server connection to a client for one
	// transaction only (Supavisor on port 6543, PgBouncer pool_mode =
	// transaction). Session state, LISTEN and named prepared statements do
	// not survive between transactions.
	TransactionPooler
	// SessionPooler keeps one server connection per client connection
	// (Supavisor on port 5432). It behaves like a direct connection.
	SessionPooler
)

func (m PoolerMode) String() string {
	switch m {
	case NoPooler:
		return "direct"
	case TransactionPooler:
		return "transaction"
	case SessionPooler:
		return "session"
	default:
		return "detect"
	}
}

// ParsePoolerMode reads "transaction", "session" or "direct".
func ParsePoolerMode(s string) (PoolerMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "transaction":
		return TransactionPooler, nil
	case "session":
		return SessionPooler, nil
	case "direct", "none":
		return NoPooler, nil
	case "", "detect":
		return DetectMode, nil
	}
	return DetectMode, fmt.Errorf("pool: unknown pooler mode %q, expected transaction, session or direct", s)
}

// dsn is a connection URL as pasted by a user, cleaned for pgx.
type dsn struct {
	url  string     // what pgx gets: Prisma-only parameters removed
	mode PoolerMode // detected from the URL
	// Prisma's knobs, honoured rather than passed to the server (which
	// would refuse them as unknown startup parameters).
	connectionLimit int32
	poolTimeout     time.Duration
	host            string
}

// Parameters Prisma (and Supabase's docs for it) put in URLs that PostgreSQL
// and poolers reject as unknown startup parameters.
var prismaParams = []string{"pgbouncer", "connection_limit", "pool_timeout", "schema", "workaround", "statement_cache_size", "socket_timeout"}

// parseDSN normalises one URL. name is the variable or field the URL came
// from, so errors say where to look; no error contains the password.
func parseDSN(name, raw string) (dsn, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return dsn{}, fmt.Errorf("pool: %s is empty, expected a PostgreSQL URL such as postgresql://user:password@host:5432/postgres", name)
	}
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		// Keyword/value strings ("host=... user=...") carry no Prisma
		// parameters; pgx reads them as they are.
		if strings.Contains(raw, "=") && !strings.Contains(raw, "://") {
			return dsn{url: raw, mode: NoPooler}, nil
		}
		return dsn{}, fmt.Errorf("pool: %s must start with postgres:// or postgresql://", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return dsn{}, fmt.Errorf("pool: %s is not a valid URL: %s", name, scrubURLError(err))
	}
	if u.Hostname() == "" {
		return dsn{}, fmt.Errorf("pool: %s has no host", name)
	}
	d := dsn{mode: NoPooler, host: u.Hostname()}
	q := u.Query()
	if v := q.Get("pgbouncer"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return dsn{}, fmt.Errorf("pool: %s: pgbouncer=%q, expected true or false", name, v)
		}
		if b {
			d.mode = TransactionPooler
		}
	}
	if v := q.Get("connection_limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			return dsn{}, fmt.Errorf("pool: %s: connection_limit=%q, expected a whole number of at least 1", name, v)
		}
		d.connectionLimit = int32(n)
	}
	if v := q.Get("pool_timeout"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return dsn{}, fmt.Errorf("pool: %s: pool_timeout=%q, expected seconds (0 waits as long as the context allows)", name, v)
		}
		d.poolTimeout = time.Duration(n * float64(time.Second))
	}
	if v := q.Get("schema"); v != "" && q.Get("search_path") == "" {
		// Prisma's schema parameter means search_path.
		q.Set("search_path", v)
	}
	for _, p := range prismaParams {
		q.Del(p)
	}
	if d.mode == NoPooler {
		d.mode = detectMode(u.Hostname(), u.Port())
	}
	u.RawQuery = q.Encode()
	d.url = u.String()
	return d, nil
}

// detectMode knows Supabase's hosts: the shared pooler (Supavisor) serves
// transaction mode on 6543 and session mode on 5432, and the dedicated
// PgBouncer listens on the database host's port 6543.
func detectMode(host, port string) PoolerMode {
	host = strings.ToLower(host)
	switch {
	case strings.HasSuffix(host, ".pooler.supabase.com") && port == "6543":
		return TransactionPooler
	case strings.HasSuffix(host, ".pooler.supabase.com"):
		return SessionPooler
	case strings.HasSuffix(host, ".supabase.co") && port == "6543":
		return TransactionPooler
	}
	return NoPooler
}

// Redact returns a URL with its password replaced by "xxxxx", for logs and
// errors. Strings that do not parse as URLs are replaced whole, because a
// password in them cannot be found reliably.
func Redact(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Opaque != "" || u.Host == "" {
		return "(unparseable connection string)"
	}
	// A '#' typed into a password unescaped starts a fragment.
	u.Fragment, u.RawFragment = "", ""
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// scrubURLError keeps the reason of a net/url error but drops the URL it
// quotes, which holds the password.
func scrubURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	// Some net/url errors quote the offending part, which can be the
	// password itself; say only what kind of problem it is.
	if i := strings.Index(msg, "\""); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	return msg
}

func hasParam(raw, key string) bool {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return u.Query().Has(key)
	}
	return strings.Contains(raw, key+"=")
}

// scrubParseError keeps pgx's message, which names the parameter that
// failed and shows the connection string with its password redacted, and
// removes the password again in case pgx's redaction missed a form of it.
func scrubParseError(err error, raw string) string {
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
				msg = strings.ReplaceAll(msg, form, "xxxxx")
			}
		}
	}
	return msg
}
