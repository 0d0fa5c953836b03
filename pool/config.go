package pool

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/internal/redact"
)

// Environment variables read by [ConfigFromEnv].
const (
	EnvDirectURL      = "DATABASE_URL"
	EnvPooledURL      = "DATABASE_POOLED_URL"
	EnvPooledMode     = "DATABASE_POOLED_MODE"
	EnvAppName        = "DATABASE_APP_NAME"
	EnvMaxConns       = "DATABASE_MAX_CONNS"
	EnvMaxDirectConns = "DATABASE_MAX_DIRECT_CONNS"
	EnvTxRoute        = "DATABASE_TX_ROUTE"
	// EnvMaxHeavyConns sets Config.MaxHeavyConns.
	EnvMaxHeavyConns = "DATABASE_MAX_HEAVY_CONNS"
	// EnvHeavyTimeout sets Config.HeavyTimeout, as a Go duration (90s, 5m).
	EnvHeavyTimeout = "DATABASE_HEAVY_TIMEOUT"
	// EnvReplicaURL sets Config.ReplicaURLs: one or more URLs,
	// comma-separated.
	EnvReplicaURL = "DATABASE_REPLICA_URL"
	// EnvMaxReplicaLag sets Config.MaxReplicaLag, as a Go duration.
	EnvMaxReplicaLag = "DATABASE_MAX_REPLICA_LAG"
	// EnvLogLevel sets the level of the JSON logger ConfigFromEnv gives
	// Config.Logger: debug, info, warn, error or off (the default when
	// unset: no logs unless a logger is passed, see WithLogger).
	EnvLogLevel = "SUPAPOOL_LOG_LEVEL"
	// EnvBudget names the budget spec file; it is budget.EnvVar.
	EnvBudget = budget.EnvVar
	// EnvElastic turns elastic sharing off when set to off (see
	// Config.NoElastic); on, the default, keeps it.
	EnvElastic = "DATABASE_ELASTIC"
)

// Defaults for Config's zero fields, each documented on its field. They
// suit serverless instances: no connection is opened before it is needed,
// and idle ones close quickly.
const (
	defaultMaxConns          int32 = 4
	defaultMaxDirectConns    int32 = 2
	defaultMaxHeavyConns     int32 = 1
	defaultHeavyTimeout            = 60 * time.Second
	defaultMaxReplicaLag           = 5 * time.Second
	defaultMaxConnIdleTime         = 30 * time.Second
	defaultMaxConnLifetime         = 30 * time.Minute
	defaultHealthCheckPeriod       = 15 * time.Second
	defaultYieldAfter              = 250 * time.Millisecond
	defaultListenerQueueSize       = 1024
	defaultListenerHeartbeat       = 30 * time.Second
)

// Config configures a [Pool]. The zero value of each field means its
// documented default; only DirectURL is required.
type Config struct {
	// AppName is sent as application_name on every connection, so
	// pg_stat_activity (and supapool's monitor) shows who holds them.
	// Default: the executable's name.
	AppName string

	// DirectURL reaches PostgreSQL without a transaction pooler
	// (Supabase: db.REF.supabase.co:5432, or the session pooler on
	// port 5432). Session work always goes here. Required.
	DirectURL string

	// PooledURL reaches PostgreSQL through a pooler (Supabase: the
	// transaction pooler on port 6543). Ordinary queries go here. Empty
	// means every call goes to DirectURL, through a pool of its own capped
	// at MaxConns, so code behaves the same when a pooler is added later.
	// Prisma's schema= (which pgx would send as the search_path startup
	// parameter) and search_path= are refused on a URL to a pooler, which
	// rejects that parameter; on a direct URL schema= becomes search_path.
	PooledURL string

	// PooledMode says what kind of pooler PooledURL reaches. Default:
	// detected from the URL (?pgbouncer=true and Supabase's port 6543 mean
	// transaction mode, Supabase's pooler on 5432 means session mode), and
	// a PooledURL with no marker is taken to be a transaction pooler,
	// which is the safe assumption.
	PooledMode PoolerMode

	// MaxConns caps the pooled route's connections per instance.
	// Default 4, or Prisma's connection_limit in PooledURL (in DirectURL
	// when there is no PooledURL).
	MaxConns int32

	// MaxDirectConns caps the direct route's connections per instance,
	// the listener's included. Default 2, or connection_limit in
	// DirectURL.
	MaxDirectConns int32

	// MaxHeavyConns caps the heavy lane's connections per instance (see
	// Pool.Heavy): heavy queries beyond it wait for each other, not for
	// the pooled route. Default 1.
	MaxHeavyConns int32

	// MaxReplicaConns caps each replica route's connections per
	// instance. Default MaxConns; ConfigFromEnv sets it from a budget
	// (SUPAPOOL_BUDGET) that names replicas, as apps[].replica, when
	// DATABASE_REPLICA_URL is set.
	MaxReplicaConns int32

	// HeavyTimeout is the statement_timeout of every transaction on the
	// heavy lane (SET LOCAL, so it works through a transaction pooler);
	// a statement that runs longer fails with a *HeavyTimeoutError.
	// Default 60s; negative means no limit.
	HeavyTimeout time.Duration

	// ReplicaURLs are read replicas (pooled or direct URLs) that
	// Pool.Replica reads from, each through a pool of its own capped at
	// MaxConns. Default none: Replica reads from the pooled route.
	ReplicaURLs []string

	// MaxReplicaLag is how far behind the primary a replica may be and
	// still get reads; the lag is measured in the background about once
	// a second. Default 5s.
	MaxReplicaLag time.Duration

	// NoHeavy turns the heavy lane off, for an app whose budget gives it
	// no heavy connections: Heavy's calls then fail with ErrNoHeavyLane.
	// A SUPAPOOL_BUDGET plan with heavy: 0 (or none) for the app sets it.
	NoHeavy bool

	// NoDirect turns the direct route off, for an app whose budget gives
	// it no direct connections: Begin then goes to the pooled route, and
	// Acquire(ctx, Direct), the Listener and DirectDB fail with
	// ErrNoDirectRoute. A SUPAPOOL_BUDGET plan with direct: 0 for the app
	// sets it.
	NoDirect bool

	// TxRoute is where Begin and BeginTx go. Default Direct (Pooled when
	// NoDirect is set): a direct transaction may use session features and
	// never waits for a pooler slot. Pooled is safe for ordinary transactions, because a
	// transaction-mode pooler keeps a transaction on one server
	// connection, and it saves direct connections. Session state set
	// inside it (SET without LOCAL, LISTEN, session advisory locks) would
	// outlive the transaction on the pooler's server connection and reach
	// its next client, so a pooled transaction refuses those statements
	// with ErrSessionStatement, as the pooled route's other calls do.
	TxRoute Route

	// ExecMode is how the pooled route sends queries. Default: on a
	// transaction pooler, detected by a probe on the route's first
	// connection (execmode.go): pgx.QueryExecModeCacheStatement where the
	// pooler keeps each client's statement names to itself (PgBouncer
	// 1.21+ with max_prepared_statements above 0), otherwise
	// pgx.QueryExecModeCacheDescribe, which cannot collide with other
	// clients' prepared statements; never describe_exec. Off a transaction
	// pooler, pgx's default. A default_query_exec_mode in PooledURL is
	// kept as the user's choice, as this field is; a choice of
	// cache_statement or describe_exec is logged as a warning when the
	// probe finds named statements unsafe.
	ExecMode pgx.QueryExecMode

	// AcquireTimeout bounds the wait for a connection when the caller's
	// context has no earlier deadline. Default 0: the context alone
	// decides, or Prisma's pool_timeout when the URL has one.
	AcquireTimeout time.Duration

	// MaxConnIdleTime closes connections idle this long. Default 30s.
	MaxConnIdleTime time.Duration

	// MaxConnLifetime closes connections this old (with 10% jitter).
	// Default 30m.
	MaxConnLifetime time.Duration

	// HealthCheckPeriod is how often idle connections are checked against
	// MaxConnIdleTime and MaxConnLifetime. Default 15s. It sends nothing
	// to the server.
	HealthCheckPeriod time.Duration

	// YieldAfter is how long a route must go unused before it asks the
	// server whether any connection slot is left (one small query on a
	// connection it already holds, at most once a second) and, if none
	// is, closes its idle connections so that other instances and apps
	// can have them. Without it an instance that got its connections
	// first keeps them idle for MaxConnIdleTime while others queue.
	// Routes through a pooler never do this: closing a client
	// connection to a pooler frees no server slot. Default 250ms;
	// negative turns it off.
	YieldAfter time.Duration

	// NoElastic turns elastic sharing off (elastic.go): by default each
	// route that connects to PostgreSQL itself (not through a pooler)
	// tags its connections' application_name with an instance id, reads
	// from pg_stat_activity how many connections each instance holds
	// while the route is busy or the server is nearly full (one small
	// query, at most once a second), and when the server is full gives
	// back, as they are released, connections above its fair share. Set
	// it for a role that must not read pg_stat_activity, or to keep
	// application_name exactly AppName. DATABASE_ELASTIC=off sets it.
	NoElastic bool

	// ConfigurePooled and ConfigureDirect may change each route's pgxpool
	// configuration after supapool has set it up (tracers, TLS, type
	// registration in AfterConnect, ...). MaxConns set here is ignored:
	// the caps above rule.
	ConfigurePooled func(*pgxpool.Config) error
	ConfigureDirect func(*pgxpool.Config) error

	// Logger receives supapool's logs, with the app and route as fields.
	// Default: zap.NewNop(), or, from ConfigFromEnv, a JSON logger to
	// standard error at SUPAPOOL_LOG_LEVEL when that is set.
	// Default: zap.NewNop().
	Logger *zap.Logger

	// ListenerQueueSize bounds each listened channel's queue of
	// notifications waiting for its handler. Default 1024. When a queue is
	// full, notifications are dropped, counted, and reported through
	// OnListenerGap: never silently.
	ListenerQueueSize int

	// OnListenerReconnect is called after the listener lost its
	// connection and has listened to every channel again. PostgreSQL
	// does not keep notifications for a listener that is gone, so the
	// service must resync whatever the notifications kept fresh.
	OnListenerReconnect func(ctx context.Context)

	// OnListenerGap is called, on the channel's own delivery goroutine and
	// in order with its notifications, when dropped notifications of that
	// channel were lost because its queue was full. Default: a warning in
	// the log (the drop is always counted in Stat).
	OnListenerGap func(ctx context.Context, channel string, dropped int64)

	// ListenerHeartbeat is how often an idle listener proves its session:
	// it sends itself a notification and waits for it to come back on the
	// same connection, so a connection that went half-open or silently
	// stopped delivering (a pooler in DATABASE_URL, say) is replaced and
	// OnListenerReconnect is called. Default 30s; negative turns the
	// periodic check off (Listen still proves the session once).
	ListenerHeartbeat time.Duration

	// Where the caps came from, for New to log.
	maxConnsFrom, maxDirectConnsFrom string

	// weights is each app's weight in elastic sharing, from the budget
	// plan (nil without one: every instance weighs the same).
	weights map[string]int
	// instances is each app's planned instance count, from the same plan.
	instances map[string]int
}

// ConfigFromEnv reads a Config from the environment; see the package
// documentation and README for each variable.
func ConfigFromEnv() (Config, error) {
	return ConfigFromLookup(os.LookupEnv)
}

// ConfigFromLookup is ConfigFromEnv reading variables through lookup, so
// that callers (the supabase package, tests) can supply or derive values.
func ConfigFromLookup(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	c := Config{
		DirectURL: get(EnvDirectURL),
		PooledURL: get(EnvPooledURL),
		AppName:   get(EnvAppName),
	}
	if c.DirectURL == "" {
		return Config{}, fmt.Errorf("pool: %s is not set; it must hold the direct PostgreSQL URL (Supabase: postgresql://postgres:PASSWORD@db.REF.supabase.co:5432/postgres)", EnvDirectURL)
	}
	// Errors echo a value only when it cannot hold a secret: a URL pasted
	// into the wrong variable is described, not printed.
	var err error
	if v := get(EnvPooledMode); v != "" {
		if c.PooledMode, err = ParsePoolerMode(v); err != nil {
			return Config{}, fmt.Errorf("pool: %s, expected transaction, session or direct", setTo(EnvPooledMode, v))
		}
	}
	if v := get(EnvTxRoute); v != "" {
		if c.TxRoute, err = ParseRoute(v); err != nil {
			return Config{}, fmt.Errorf("pool: %s, expected pooled or direct", setTo(EnvTxRoute, v))
		}
	}
	if c.AppName == "" {
		c.AppName = defaultAppName()
	}
	if err := checkAppName(c.AppName, EnvAppName); err != nil {
		return Config{}, err
	}
	if err := envDuration(get, EnvHeavyTimeout, "60s or 5m", &c.HeavyTimeout); err != nil {
		return Config{}, err
	}
	if v := get(EnvReplicaURL); v != "" {
		for i, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u == "" {
				return Config{}, fmt.Errorf("pool: %s: URL %d of the comma-separated list is empty", EnvReplicaURL, i+1)
			}
			c.ReplicaURLs = append(c.ReplicaURLs, u)
		}
	}
	if err := envDuration(get, EnvMaxReplicaLag, "5s", &c.MaxReplicaLag); err != nil {
		return Config{}, err
	}
	// After the replica URLs: a budget that plans replicas caps them.
	if err := applyBudget(&c, get(EnvBudget)); err != nil {
		return Config{}, err
	}
	if v := get(EnvElastic); v != "" {
		switch strings.ToLower(v) {
		case "on":
		case "off":
			c.NoElastic = true
		default:
			return Config{}, fmt.Errorf("pool: %s, expected on or off", setTo(EnvElastic, v))
		}
	}
	if v := get(EnvLogLevel); v != "" {
		if c.Logger, err = levelLogger(v); err != nil {
			return Config{}, err
		}
	}
	for _, v := range []struct {
		name string
		dst  *int32
		from *string
	}{{EnvMaxConns, &c.MaxConns, &c.maxConnsFrom}, {EnvMaxDirectConns, &c.MaxDirectConns, &c.maxDirectConnsFrom}, {EnvMaxHeavyConns, &c.MaxHeavyConns, new(string)}} {
		s := get(v.name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("pool: %s, expected a whole number of at least 1", setTo(v.name, s))
		}
		*v.dst = int32(n)
		*v.from = v.name
	}
	return c, nil
}

// setTo says what variable name is set to: NAME="value" when the value
// cannot hold a secret, and otherwise NAME holds a value that looks like a
// connection string (or one that may hold a secret).
func setTo(name, v string) string {
	shown := redact.Value(v)
	if strings.HasPrefix(shown, `"`) {
		return name + "=" + shown
	}
	return name + " holds " + shown
}

// envDuration sets *d from the variable name when it is set: a positive
// Go duration, such as example.
func envDuration(get func(string) string, name, example string, d *time.Duration) error {
	v := get(name)
	if v == "" {
		return nil
	}
	x, err := time.ParseDuration(v)
	if err != nil || x <= 0 {
		return fmt.Errorf("pool: %s, expected a positive duration such as %s", setTo(name, v), example)
	}
	*d = x
	return nil
}

// checkAppName refuses an application name that is a connection string
// (a URL, user:password@host, or a keyword/value string with a password):
// it is sent to the server, shown in pg_stat_activity and logged. A name
// that merely mentions a password ("password-reset") is fine.
func checkAppName(name, from string) error {
	if strings.Contains(name, "://") || (strings.Contains(name, "@") && strings.Contains(name, ":")) || len(redact.Passwords(name)) > 0 {
		return fmt.Errorf("pool: %s holds a value that looks like a connection string, expected a short name such as web", from)
	}
	return nil
}

// levelLogger is the logger SUPAPOOL_LOG_LEVEL asks for: zap's production
// JSON encoding to standard error, at that level; "off" is none.
func levelLogger(v string) (*zap.Logger, error) {
	if strings.EqualFold(v, "off") || strings.EqualFold(v, "none") {
		return zap.NewNop(), nil
	}
	lvl, err := zapcore.ParseLevel(strings.ToLower(v))
	if err != nil || lvl > zapcore.ErrorLevel {
		return nil, fmt.Errorf("pool: %s, expected debug, info, warn, error or off", setTo(EnvLogLevel, v))
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil // supapool logs rarely; every line matters
	return cfg.Build()
}

func defaultAppName() string {
	exe, err := os.Executable()
	if err != nil {
		return "supapool"
	}
	return filepath.Base(exe)
}

// resolved is a validated Config with defaults applied and URLs cleaned.
type resolved struct {
	Config
	direct   dsn
	pooled   dsn // url empty when there is no PooledURL
	replicas []dsn
}

func (c Config) resolve() (resolved, error) {
	r := resolved{Config: c}
	var err error
	if r.direct, err = parseDSN(fieldName("DirectURL", EnvDirectURL), c.DirectURL); err != nil {
		return r, err
	}
	if r.direct.mode == TransactionPooler {
		return r, fmt.Errorf("pool: DirectURL (%s) points at a transaction pooler (host %s), where LISTEN, session state and multi-statement work break silently; use the direct URL (port 5432) there and put this one in PooledURL (%s)", EnvDirectURL, r.direct.host, EnvPooledURL)
	}
	if c.PooledURL != "" {
		if r.pooled, err = parseDSN(fieldName("PooledURL", EnvPooledURL), c.PooledURL); err != nil {
			return r, err
		}
		switch {
		case c.PooledMode != DetectMode:
			r.pooled.mode = c.PooledMode
		case r.pooled.mode == NoPooler:
			r.pooled.mode = TransactionPooler
		}
	}
	for _, d := range []struct {
		field string
		dsn   dsn
	}{{fieldName("DirectURL", EnvDirectURL), r.direct}, {fieldName("PooledURL", EnvPooledURL), r.pooled}} {
		if d.dsn.searchPathFrom != "" && (d.dsn.mode == TransactionPooler || d.dsn.mode == SessionPooler) {
			return r, searchPathError(d.field, d.dsn)
		}
	}
	for i, u := range c.ReplicaURLs {
		d, err := parseDSN(replicaField(i), u)
		if err != nil {
			return r, err
		}
		if d.searchPathFrom != "" && d.mode != NoPooler {
			return r, searchPathError(replicaField(i), d)
		}
		r.replicas = append(r.replicas, d)
	}
	if r.MaxReplicaLag == 0 {
		r.MaxReplicaLag = defaultMaxReplicaLag
	}
	if r.AppName == "" {
		r.AppName = defaultAppName()
	}
	if err := checkAppName(r.AppName, "AppName"); err != nil {
		return r, err
	}
	if r.MaxConns < 0 || r.MaxDirectConns < 0 || r.MaxHeavyConns < 0 || r.MaxReplicaConns < 0 {
		return r, fmt.Errorf("pool: MaxConns (%d), MaxDirectConns (%d), MaxHeavyConns (%d) and MaxReplicaConns (%d) must not be negative", r.MaxConns, r.MaxDirectConns, r.MaxHeavyConns, r.MaxReplicaConns)
	}
	if r.MaxHeavyConns == 0 {
		r.MaxHeavyConns = defaultMaxHeavyConns
	}
	if r.HeavyTimeout == 0 {
		r.HeavyTimeout = defaultHeavyTimeout
	}
	if r.MaxConns == 0 {
		r.MaxConns, r.maxConnsFrom = defaultMaxConns, "default"
		if r.pooled.connectionLimit > 0 {
			r.MaxConns, r.maxConnsFrom = r.pooled.connectionLimit, "connection_limit in PooledURL"
		} else if r.pooled.url == "" && r.direct.connectionLimit > 0 {
			r.MaxConns, r.maxConnsFrom = r.direct.connectionLimit, "connection_limit in DirectURL"
		}
	}
	if r.MaxDirectConns == 0 {
		r.MaxDirectConns, r.maxDirectConnsFrom = defaultMaxDirectConns, "default"
		if r.direct.connectionLimit > 0 {
			r.MaxDirectConns, r.maxDirectConnsFrom = r.direct.connectionLimit, "connection_limit in DirectURL"
		}
	}
	if r.maxConnsFrom == "" {
		r.maxConnsFrom = "Config"
	}
	if r.maxDirectConnsFrom == "" {
		r.maxDirectConnsFrom = "Config"
	}
	switch r.TxRoute {
	case 0:
		r.TxRoute = Direct
		if r.NoDirect {
			r.TxRoute = Pooled
		}
	case Direct:
		if r.NoDirect {
			return r, fmt.Errorf("pool: TxRoute is Direct but NoDirect is set (the budget gives this app no direct connections); use pool.Pooled")
		}
	case Pooled:
	default:
		return r, fmt.Errorf("pool: TxRoute %d is not a route, expected pool.Pooled or pool.Direct", r.TxRoute)
	}
	if r.AcquireTimeout == 0 {
		r.AcquireTimeout = r.pooled.poolTimeout
		if r.pooled.url == "" {
			r.AcquireTimeout = r.direct.poolTimeout
		}
	}
	if r.MaxConnIdleTime == 0 {
		r.MaxConnIdleTime = defaultMaxConnIdleTime
	}
	if r.MaxConnLifetime == 0 {
		r.MaxConnLifetime = defaultMaxConnLifetime
	}
	if r.HealthCheckPeriod == 0 {
		r.HealthCheckPeriod = defaultHealthCheckPeriod
	}
	if r.YieldAfter == 0 {
		r.YieldAfter = defaultYieldAfter
	}
	if r.Logger == nil {
		r.Logger = zap.NewNop()
	}
	if r.ListenerQueueSize < 0 {
		return r, fmt.Errorf("pool: ListenerQueueSize %d must not be negative", r.ListenerQueueSize)
	}
	if r.ListenerQueueSize == 0 {
		r.ListenerQueueSize = defaultListenerQueueSize
	}
	if r.ListenerHeartbeat == 0 {
		r.ListenerHeartbeat = defaultListenerHeartbeat
	}
	return r, nil
}

func fieldName(field, env string) string { return field + " (" + env + ")" }

// searchPathError refuses a search_path startup parameter on a URL to a
// pooler: PgBouncer and Supavisor reject it ("unsupported startup
// parameter: search_path") when the first connection is opened.
func searchPathError(field string, d dsn) error {
	schema := d.searchPath
	if !safeIdent(schema) {
		schema = "<schema>"
	}
	return fmt.Errorf("pool: %s: %s= is sent as the search_path startup parameter, which PgBouncer and Supavisor reject; remove it and run ALTER ROLE <role> SET search_path = %s (the server applies it to each connection the pooler opens from then on), or use schema-qualified names", field, d.searchPathFrom, schema)
}

// safeIdent reports whether a search_path can be shown in an error as SQL.
func safeIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == ',' || c == ' ' || c == '$') {
			return false
		}
	}
	return true
}

// cfgField is one Config field as Config's String, GoString, LogValue and
// MarshalLogObject show it: a Config prints and logs, through every fmt
// verb, log/slog and zap, with its URLs' passwords masked (see [Redact]) and
// its func and Logger fields shown as set or unset.
type cfgField struct {
	name, key string
	val       any // string, int32, int, bool, time.Duration or fmt.Stringer
}

// presence stands for a func or pointer field.
type presence struct {
	set bool
	typ string
}

func (p presence) String() string {
	if p.set {
		return "set"
	}
	return "unset"
}

func (p presence) GoString() string {
	if p.set {
		return "(" + p.typ + ")(set)"
	}
	return "nil"
}

// orDefault shows a zero enum as "default" rather than as an invalid name.
type orDefault struct {
	v    fmt.Stringer
	n    int // v's number, for GoString
	zero bool
}

func (d orDefault) String() string {
	if d.zero {
		return "default"
	}
	return d.v.String()
}

func (d orDefault) GoString() string { return strconv.Itoa(d.n) }

func (c Config) fields() []cfgField {
	return []cfgField{
		{"AppName", "app_name", c.AppName},
		{"DirectURL", "direct_url", Redact(c.DirectURL)},
		{"PooledURL", "pooled_url", Redact(c.PooledURL)},
		{"PooledMode", "pooled_mode", c.PooledMode},
		{"MaxConns", "max_conns", c.MaxConns},
		{"MaxDirectConns", "max_direct_conns", c.MaxDirectConns},
		{"MaxHeavyConns", "max_heavy_conns", c.MaxHeavyConns},
		{"MaxReplicaConns", "max_replica_conns", c.MaxReplicaConns},
		{"HeavyTimeout", "heavy_timeout", c.HeavyTimeout},
		{"NoHeavy", "no_heavy", c.NoHeavy},
		{"ReplicaURLs", "replica_urls", redactList(c.ReplicaURLs)},
		{"MaxReplicaLag", "max_replica_lag", c.MaxReplicaLag},
		{"NoDirect", "no_direct", c.NoDirect},
		{"TxRoute", "tx_route", orDefault{c.TxRoute, int(c.TxRoute), c.TxRoute == 0}},
		{"ExecMode", "exec_mode", orDefault{c.ExecMode, int(c.ExecMode), c.ExecMode == 0}},
		{"AcquireTimeout", "acquire_timeout", c.AcquireTimeout},
		{"MaxConnIdleTime", "max_conn_idle_time", c.MaxConnIdleTime},
		{"MaxConnLifetime", "max_conn_lifetime", c.MaxConnLifetime},
		{"HealthCheckPeriod", "health_check_period", c.HealthCheckPeriod},
		{"YieldAfter", "yield_after", c.YieldAfter},
		{"NoElastic", "no_elastic", c.NoElastic},
		{"ConfigurePooled", "configure_pooled", presence{c.ConfigurePooled != nil, "func(*pgxpool.Config) error"}},
		{"ConfigureDirect", "configure_direct", presence{c.ConfigureDirect != nil, "func(*pgxpool.Config) error"}},
		{"Logger", "logger", presence{c.Logger != nil, "*zap.Logger"}},
		{"ListenerQueueSize", "listener_queue_size", c.ListenerQueueSize},
		{"OnListenerReconnect", "on_listener_reconnect", presence{c.OnListenerReconnect != nil, "func(context.Context)"}},
		{"OnListenerGap", "on_listener_gap", presence{c.OnListenerGap != nil, "func(context.Context, string, int64)"}},
		{"ListenerHeartbeat", "listener_heartbeat", c.ListenerHeartbeat},
	}
}

// String shows every field by name, as %+v would, with the URLs'
// passwords masked.
func (c Config) String() string { return c.join("{", " ", "%s:%v") }

// GoString shows c as %#v would, with the URLs' passwords masked and set
// func and Logger fields as (type)(set).
func (c Config) GoString() string { return c.join("pool.Config{", ", ", "%s:%#v") }

// join writes every field with format (name, then value), separated by sep.
func (c Config) join(open, sep, format string) string {
	var b strings.Builder
	b.WriteString(open)
	for i, f := range c.fields() {
		if i > 0 {
			b.WriteString(sep)
		}
		fmt.Fprintf(&b, format, f.name, f.val)
	}
	b.WriteByte('}')
	return b.String()
}

// Format makes every verb redact: %v, %+v and %s print String, %#v
// GoString, %q String quoted; other verbs report a bad verb as fmt does.
func (c Config) Format(f fmt.State, verb rune) {
	switch verb {
	case 'v':
		if f.Flag('#') {
			_, _ = io.WriteString(f, c.GoString())
			return
		}
		fmt.Fprintf(f, fmt.FormatString(f, 's'), c.String())
	case 's', 'q':
		fmt.Fprintf(f, fmt.FormatString(f, verb), c.String())
	default:
		fmt.Fprintf(f, "%%!%c(pool.Config=%s)", verb, c.String())
	}
}

// LogValue logs c as a group of its fields for log/slog, redacted as
// String is.
func (c Config) LogValue() slog.Value {
	fields := c.fields()
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		var v slog.Value
		switch x := f.val.(type) {
		case string:
			v = slog.StringValue(x)
		case int32:
			v = slog.Int64Value(int64(x))
		case int:
			v = slog.IntValue(x)
		case bool:
			v = slog.BoolValue(x)
		case time.Duration:
			v = slog.DurationValue(x)
		case fmt.Stringer:
			v = slog.StringValue(x.String())
		}
		attrs = append(attrs, slog.Attr{Key: f.key, Value: v})
	}
	return slog.GroupValue(attrs...)
}

// MarshalLogObject logs c as an object of its fields for zap (zap.Object,
// zap.Any), redacted as String is.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, f := range c.fields() {
		switch x := f.val.(type) {
		case string:
			enc.AddString(f.key, x)
		case int32:
			enc.AddInt32(f.key, x)
		case int:
			enc.AddInt(f.key, x)
		case bool:
			enc.AddBool(f.key, x)
		case time.Duration:
			enc.AddDuration(f.key, x)
		case fmt.Stringer:
			enc.AddString(f.key, x.String())
		}
	}
	return nil
}
