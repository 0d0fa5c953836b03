package pool

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/supapool/supapool/internal/redact"
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
	// Echo s only when it cannot hold a secret (a URL in the wrong place).
	shown := redact.Value(s)
	if strings.HasPrefix(shown, `"`) {
		return DetectMode, fmt.Errorf("pool: unknown pooler mode %s, expected transaction, session or direct", shown)
	}
	return DetectMode, fmt.Errorf("pool: the pooler mode is %s, expected transaction, session or direct", shown)
}

// dsn is a connection string as pasted by a user, cleaned for pgx. It
// holds the password, so it formats itself redacted.
type dsn struct {
	url  string     // what pgx gets: Prisma-only parameters removed
	mode PoolerMode // detected from the URL
	// Prisma's knobs, honoured rather than passed to the server (which
	// would refuse them as unknown startup parameters).
	connectionLimit int32
	poolTimeout     time.Duration
	host            string
	// searchPathFrom is the parameter (schema or search_path) that makes
	// pgx send search_path as a startup parameter, which poolers refuse;
	// searchPath is its value.
	searchPathFrom, searchPath string
}

// Format prints d with its password masked, whatever the verb.
func (d dsn) Format(f fmt.State, verb rune) {
	_, _ = io.WriteString(f, "dsn{"+redact.ConnString(d.url)+" "+d.mode.String()+"}")
}

// Parameters Prisma (and Supabase's docs for it) put in URLs that PostgreSQL
// and poolers reject as unknown startup parameters.
var prismaParams = []string{"pgbouncer", "connection_limit", "pool_timeout", "schema", "workaround", "statement_cache_size", "socket_timeout"}

// parseDSN normalises one connection string. name is the variable or field
// it came from, so errors say where to look; no error contains the
// password, and none quotes the string.
func parseDSN(name, raw string) (dsn, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return dsn{}, fmt.Errorf("pool: %s is empty, expected a PostgreSQL URL such as postgresql://user:password@host:5432/postgres", name)
	}
	if strings.ContainsRune("\"'`", rune(raw[0])) {
		return dsn{}, fmt.Errorf("pool: %s starts with a quote; remove the quotes around the URL", name)
	}
	if !strings.HasPrefix(raw, "postgres://") && !strings.HasPrefix(raw, "postgresql://") {
		if !strings.Contains(raw, "://") && strings.Contains(raw, "=") {
			return parseKeywordDSN(name, raw)
		}
		return dsn{}, fmt.Errorf("pool: %s must start with postgres:// or postgresql://", name)
	}
	if redact.Unencoded(raw) {
		return dsn{}, fmt.Errorf("pool: %s is not a valid URL: %s", name, redact.EncodeHint)
	}
	raw, socketDir := socketInHost(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return dsn{}, fmt.Errorf("pool: %s is not a valid URL: %s", name, redact.URLError(err))
	}
	q := u.Query()
	if socketDir != "" && !q.Has("host") {
		q.Set("host", socketDir)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		// libpq's forms for a Unix socket: ?host=/dir, or %2Fdir as the host.
		host = q.Get("host")
	}
	if port == "" {
		port = q.Get("port")
	}
	if host == "" {
		return dsn{}, fmt.Errorf("pool: %s has no host", name)
	}
	d := dsn{mode: NoPooler, host: host}
	if v := q.Get("pgbouncer"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return dsn{}, fmt.Errorf("pool: %s: %s, expected true or false", name, setTo("pgbouncer", v))
		}
		if b {
			d.mode = TransactionPooler
		}
	}
	if v := q.Get("connection_limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			return dsn{}, fmt.Errorf("pool: %s: %s, expected a whole number of at least 1", name, setTo("connection_limit", v))
		}
		d.connectionLimit = int32(n)
	}
	if v := q.Get("pool_timeout"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return dsn{}, fmt.Errorf("pool: %s: %s, expected seconds (0 waits as long as the context allows)", name, setTo("pool_timeout", v))
		}
		d.poolTimeout = time.Duration(n * float64(time.Second))
	}
	switch {
	case q.Has("search_path"):
		d.searchPathFrom, d.searchPath = "search_path", q.Get("search_path")
	case q.Get("schema") != "":
		// Prisma's schema parameter means search_path.
		q.Set("search_path", q.Get("schema"))
		d.searchPathFrom, d.searchPath = "schema", q.Get("schema")
	}
	for _, p := range prismaParams {
		q.Del(p)
	}
	if d.mode == NoPooler {
		d.mode = detectMode(host, port)
	}
	u.RawQuery = q.Encode()
	d.url = u.String()
	return d, nil
}

// socketInHost moves a Unix socket directory written as the host
// (postgres://u:pw@%2Frun%2Fpostgresql:5432/db), which pgx accepts but
// net/url does not, out of the URL, and returns it to be put in ?host=.
func socketInHost(raw string) (string, string) {
	n := strings.Index(raw, "://") + 3
	p := raw[n:]
	start := 0
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		start = i + 1
	}
	hp := p[start:]
	end := strings.IndexAny(hp, "/?#")
	if end < 0 {
		end = len(hp)
	}
	if !strings.HasPrefix(strings.ToLower(hp[:end]), "%2f") {
		return raw, ""
	}
	host, port, hasPort := strings.Cut(hp[:end], ":")
	dir, err := url.PathUnescape(host)
	if err != nil || strings.Contains(dir, ",") {
		return raw, ""
	}
	out := raw[:n] + p[:start]
	if hasPort {
		out += ":" + port
	}
	return out + hp[end:], dir
}

// parseKeywordDSN checks a keyword/value string (host=... user=...) the
// way libpq reads it, so that pgx never quotes a piece of a password in a
// parse error, and reads the host and port to detect a pooler.
func parseKeywordDSN(name, raw string) (dsn, error) {
	settings, err := keywordSettings(raw)
	if err != nil {
		return dsn{}, fmt.Errorf("pool: %s: %w", name, err)
	}
	d := dsn{url: raw, mode: NoPooler, host: settings["host"]}
	if v, ok := settings["search_path"]; ok {
		d.searchPathFrom, d.searchPath = "search_path", v
	}
	if !strings.Contains(d.host, ",") {
		d.mode = detectMode(d.host, settings["port"])
	}
	return d, nil
}

// keywordSettings reads key=value pairs as libpq does: spaces around =
// allowed, values bare or in single quotes, a backslash escaping the next
// character. Its errors name keys, never values.
func keywordSettings(s string) (map[string]string, error) {
	const spaces = redact.Spaces
	settings := map[string]string{}
	prev := ""
	for s = strings.TrimLeft(s, spaces); s != ""; s = strings.TrimLeft(s, spaces) {
		eq := strings.IndexByte(s, '=')
		key := ""
		if eq >= 0 {
			key = strings.TrimRight(s[:eq], spaces)
		}
		if key == "" || strings.ContainsAny(key, spaces) {
			if prev == "" {
				return nil, errors.New("not a URL nor key=value pairs")
			}
			return nil, fmt.Errorf("text after %s= is not a key=value pair; a value with a space in it must be in single quotes (%s='...', with \\' for a quote and \\\\ for a backslash)", safeKey(prev), safeKey(prev))
		}
		_, val, rest, ok := redact.KeywordValue(strings.TrimLeft(s[eq+1:], spaces))
		if !ok {
			return nil, fmt.Errorf("the quoted value of %s has no closing quote (write \\' for a quote inside it)", safeKey(key))
		}
		s = rest
		if key == "dbname" {
			key = "database"
		}
		settings[key] = val
		prev = key
	}
	return settings, nil
}

// safeKey is a key for an error message: keys are words, and anything
// else may be a stray piece of a value.
func safeKey(k string) string {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return "a key"
		}
	}
	return k
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

// Redact returns a connection string with its passwords replaced by
// "xxxxx", for logs and errors: the password of a URL (also one that does not
// parse, where everything up to the last @ is masked) and its password= and
// sslpassword= parameters, and the password= and sslpassword= values of a
// keyword/value string, quoted or not. A string that is neither is replaced
// by "(unparseable connection string)".
func Redact(raw string) string { return redact.ConnString(raw) }

// hasParam reports whether the connection string raw sets key.
func hasParam(raw, key string) bool {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return u.Query().Has(key)
	}
	settings, err := keywordSettings(raw)
	if err != nil {
		return strings.Contains(raw, key+"=")
	}
	_, ok := settings[key]
	return ok
}

// scrubParseError keeps pgx's message, which names the parameter that
// failed, with the connection string it quotes redacted by supapool
// instead of pgx (whose redaction is best effort), and every form of the
// passwords raw holds masked in what is left.
func scrubParseError(err error, raw string) string {
	msg := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		own := *pce
		own.ConnString = redact.ConnString(pce.ConnString)
		msg = strings.Replace(msg, pce.Error(), own.Error(), 1)
	}
	return redact.Text(msg, redact.Passwords(raw)...)
}
