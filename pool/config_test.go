package pool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/budget"
)

func lookupFrom(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

const secret = "s3cr3t-PW"

func TestParseDSN(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		mode  PoolerMode
		limit int32
		wait  time.Duration
		url   string // expected cleaned URL ("" = don't check)
	}{
		{"plain direct", "postgres://u:pw@localhost:5432/db", NoPooler, 0, 0, "postgres://u:pw@localhost:5432/db"},
		{"seed prisma form", "postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres?pgbouncer=true&connection_limit=1&pool_timeout=5",
			TransactionPooler, 1, 5 * time.Second, "postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"},
		{"pgbouncer=true anywhere", "postgres://u:pw@10.0.0.1:6432/db?pgbouncer=true&sslmode=disable", TransactionPooler, 0, 0, "postgres://u:pw@10.0.0.1:6432/db?sslmode=disable"},
		{"supavisor transaction port", "postgres://postgres.ref:pw@aws-1-us-east-2.pooler.supabase.com:6543/postgres", TransactionPooler, 0, 0, ""},
		{"supavisor session port", "postgres://postgres.ref:pw@aws-1-us-east-2.pooler.supabase.com:5432/postgres", SessionPooler, 0, 0, ""},
		{"dedicated pgbouncer", "postgres://postgres:pw@db.ref.supabase.co:6543/postgres", TransactionPooler, 0, 0, ""},
		{"supabase direct", "postgres://postgres:pw@db.ref.supabase.co:5432/postgres", NoPooler, 0, 0, ""},
		{"prisma schema becomes search_path", "postgres://u:pw@h/db?schema=app", NoPooler, 0, 0, "postgres://u:pw@h/db?search_path=app"},
		{"vercel workaround param dropped", "postgres://u:pw@h/db?workaround=supabase-pooler.vercel", NoPooler, 0, 0, "postgres://u:pw@h/db"},
		{"keyword form passes through", "host=h user=u password=pw dbname=db", NoPooler, 0, 0, "host=h user=u password=pw dbname=db"},
		{"keyword form on the transaction pooler", "host=aws-0-eu-west-1.pooler.supabase.com port = 6543 user=postgres.ref password='p w'", TransactionPooler, 0, 0, ""},
		{"socket directory as a parameter", "postgres://u:pw@/db?host=/run/postgresql", NoPooler, 0, 0, "postgres://u:pw@/db?host=%2Frun%2Fpostgresql"},
		{"socket directory as the host", "postgres://u:pw@%2Frun%2Fpostgresql:5433/db", NoPooler, 0, 0, "postgres://u:pw@:5433/db?host=%2Frun%2Fpostgresql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := parseDSN("X", tt.raw)
			require.NoError(t, err)
			assert.Equal(t, tt.mode, d.mode)
			assert.Equal(t, tt.limit, d.connectionLimit)
			assert.Equal(t, tt.wait, d.poolTimeout)
			if tt.url != "" {
				assert.Equal(t, tt.url, d.url)
			}
			_, err = pgx.ParseConfig(d.url)
			assert.NoError(t, err, "pgx accepts the cleaned URL")
		})
	}
}

func TestParseDSNErrors(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"", "DATABASE_URL is empty"},
		{"mysql://u:" + secret + "@h/db", "must start with postgres://"},
		{"postgres://u:" + secret + "@h/db?pgbouncer=maybe", `pgbouncer="maybe"`},
		{"postgres://u:" + secret + "@h/db?connection_limit=0", "connection_limit"},
		{"postgres://u:" + secret + "@h/db?pool_timeout=-1", "pool_timeout"},
		{"postgres://u:" + secret + "@/db", "has no host"},
		{"postgres://u:" + secret + "@h:port/db", "DATABASE_URL is not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := parseDSN("DATABASE_URL", tt.raw)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "DATABASE_URL")
			assert.NotContains(t, err.Error(), secret)
		})
	}
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "postgres://u:xxxxx@h:5432/db?sslmode=require", Redact("postgres://u:"+secret+"@h:5432/db?sslmode=require"))
	assert.Equal(t, "postgres://h/db?password=xxxxx", Redact("postgres://h/db?password="+secret))
	assert.Equal(t, "host=h password=xxxxx", Redact("host=h password="+secret))
}

// No error, log line, redacted string or formatted Config may ever contain
// the password, whatever its bytes and whatever the rest of the connection
// string looks like: URLs (password percent-encoded, or as a parameter),
// keyword/value strings (quoted, or bare with backslash escapes), each
// environment variable holding such a string, and Configs holding them
// printed with fmt, zap and slog.
func FuzzNoPasswordInErrors(f *testing.F) {
	for _, rest := range []string{"h:5432/db", "h:65536/db?pgbouncer=x", "[::1/db", "h/db?connection_limit=x", "h/db?sslmode=require&password=x", "", "h:port", "%zz",
		"h/db?schema=app&pgbouncer=true", "/db?host=/run/postgresql", "%2Frun%2Fpostgresql/db", "dbname=d port=x", "sslmode=sometimes", "host='h"} {
		f.Add("postgres", "p@ss:w/rd#?", rest)
		f.Add("postgresql", "se cr'et\\ x=y", rest)
	}
	f.Add("postgres", "pass word", "h/db")
	f.Add("mysql", "\x00\xff\n\tpw", "h/db")
	kv := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	bare := strings.NewReplacer(`\`, `\\`, `'`, `\'`, " ", `\ `, "\t", "\\\t", "\n", "\\\n", "\r", "\\\r", "\v", "\\\v", "\f", "\\\f")
	f.Fuzz(func(t *testing.T, scheme, password, rest string) {
		if len(password) < 4 {
			return
		}
		builds := []func(pw string) string{
			func(pw string) string { return scheme + "://user:" + url.QueryEscape(pw) + "@" + rest },
			func(pw string) string { return scheme + "://user:" + url.PathEscape(pw) + "@" + rest },
			func(pw string) string { return scheme + "://h/db?password=" + url.QueryEscape(pw) + "&" + rest },
			func(pw string) string { return "host=h user=u password='" + kv.Replace(pw) + "' " + rest },
			func(pw string) string { return "host=h password = " + bare.Replace(pw) + " " + rest },
		}
		envVars := []string{EnvMaxConns, EnvMaxDirectConns, EnvPooledMode, EnvTxRoute, EnvBudget, EnvAppName}
		outputs := func(raw string) []string {
			out := []string{Redact(raw)}
			if _, err := parseDSN("DATABASE_URL", raw); err != nil {
				out = append(out, err.Error())
			}
			if _, err := (Config{DirectURL: raw}).resolve(); err != nil {
				out = append(out, err.Error())
			}
			// New parses with pgx too (it opens no connection).
			core, logs := observer.New(zap.DebugLevel)
			if p, err := New(context.Background(), Config{DirectURL: raw, PooledURL: raw, Logger: zap.New(core)}); err != nil {
				out = append(out, err.Error())
			} else {
				p.Close()
			}
			for _, e := range logs.All() {
				out = append(out, e.Message+" "+fmt.Sprint(e.ContextMap()))
			}
			for _, v := range envVars {
				env := map[string]string{EnvDirectURL: "postgres://u:pw@h/db", v: raw}
				if _, err := ConfigFromLookup(lookupFrom(env)); err != nil {
					out = append(out, err.Error())
				}
			}
			cfg := Config{DirectURL: raw, PooledURL: raw}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
				out = append(out, fmt.Sprintf(verb, cfg))
			}
			// JSON lines without their times, which would differ between runs.
			var zbuf, sbuf bytes.Buffer
			encCfg := zap.NewProductionEncoderConfig()
			encCfg.TimeKey = ""
			zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), zapcore.AddSync(&zbuf), zap.DebugLevel))
			zl.Info("config", zap.Object("config", cfg))
			noTime := func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}
			slog.New(slog.NewJSONHandler(&sbuf, &slog.HandlerOptions{ReplaceAttr: noTime})).Info("config", "config", cfg)
			return append(out, zbuf.String(), sbuf.String())
		}
		for _, build := range builds {
			// What the same string prints with another password tells apart
			// a leak from a password that happens to match other text.
			other := strings.Join(outputs(build("\x01other\x01")), "\n")
			for _, s := range outputs(build(password)) {
				for _, bad := range []string{password, url.QueryEscape(password), url.PathEscape(password), kv.Replace(password), bare.Replace(password)} {
					if strings.Contains(s, bad) && !strings.Contains(other, bad) {
						t.Fatalf("password leaked in %q", s)
					}
				}
			}
		}
	})
}

func TestConfigFromLookup(t *testing.T) {
	base := map[string]string{
		EnvDirectURL: "postgres://postgres:" + secret + "@db.ref.supabase.co:5432/postgres",
		EnvPooledURL: "postgres://postgres.ref:" + secret + "@aws-0-eu-west-1.pooler.supabase.com:6543/postgres?pgbouncer=true",
		EnvAppName:   "web",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}

	t.Run("defaults", func(t *testing.T) {
		c, err := ConfigFromLookup(lookupFrom(base))
		require.NoError(t, err)
		r, err := c.resolve()
		require.NoError(t, err)
		assert.Equal(t, "web", r.AppName)
		assert.Equal(t, defaultMaxConns, r.MaxConns)
		assert.Equal(t, defaultMaxDirectConns, r.MaxDirectConns)
		assert.Equal(t, Direct, r.TxRoute)
		assert.Equal(t, TransactionPooler, r.pooled.mode)
		assert.Equal(t, "default", r.maxConnsFrom)
	})
	t.Run("overrides", func(t *testing.T) {
		c, err := ConfigFromLookup(lookupFrom(with(EnvMaxConns, "7", EnvMaxDirectConns, "3", EnvTxRoute, "pooled", EnvPooledMode, "session")))
		require.NoError(t, err)
		r, err := c.resolve()
		require.NoError(t, err)
		assert.EqualValues(t, 7, r.MaxConns)
		assert.EqualValues(t, 3, r.MaxDirectConns)
		assert.Equal(t, Pooled, r.TxRoute)
		assert.Equal(t, SessionPooler, r.pooled.mode)
		assert.Equal(t, EnvMaxConns, r.maxConnsFrom)
	})
	t.Run("app name defaults to the executable", func(t *testing.T) {
		c, err := ConfigFromLookup(lookupFrom(with(EnvAppName, "")))
		require.NoError(t, err)
		exe, _ := os.Executable()
		assert.Equal(t, filepath.Base(exe), c.AppName)
	})

	errs := []struct {
		env  map[string]string
		want string
	}{
		{with(EnvDirectURL, ""), "DATABASE_URL is not set"},
		{with(EnvMaxConns, "many"), `DATABASE_MAX_CONNS="many", expected a whole number`},
		{with(EnvMaxDirectConns, "0"), "DATABASE_MAX_DIRECT_CONNS"},
		{with(EnvTxRoute, "sideways"), "DATABASE_TX_ROUTE"},
		{with(EnvPooledMode, "statement"), "DATABASE_POOLED_MODE"},
		{with(EnvBudget, "/nonexistent/budget.yaml"), "SUPAPOOL_BUDGET"},
	}
	for _, e := range errs {
		t.Run(e.want, func(t *testing.T) {
			_, err := ConfigFromLookup(lookupFrom(e.env))
			require.Error(t, err)
			assert.Contains(t, err.Error(), e.want)
			assert.NotContains(t, err.Error(), secret)
		})
	}

	t.Run("direct URL on a transaction pooler is refused", func(t *testing.T) {
		c, err := ConfigFromLookup(lookupFrom(with(EnvDirectURL, base[EnvPooledURL])))
		require.NoError(t, err)
		_, err = New(context.Background(), c)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "transaction pooler")
		assert.NotContains(t, err.Error(), secret)
	})
}

func TestConfigFromBudget(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "budget.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(`
limit: 60
reserved: 10
pooler: {server_conns: 15, max_clients: 200}
apps:
  - {name: web, instances: 4, weight: 2, direct: 1}
  - {name: worker, instances: 2, weight: 1, direct: 2}
`), 0o600))
	s, err := budget.LoadFile(spec)
	require.NoError(t, err)
	plan, err := budget.Plan(s)
	require.NoError(t, err)
	want := plan.For("web")

	env := map[string]string{EnvDirectURL: "postgres://u:pw@h/db", EnvAppName: "web", EnvBudget: spec}
	c, err := ConfigFromLookup(lookupFrom(env))
	require.NoError(t, err)
	assert.Equal(t, want.MaxConns, c.MaxConns)
	assert.Equal(t, want.MaxDirectConns, c.MaxDirectConns)
	assert.Equal(t, EnvBudget, c.maxConnsFrom)

	env[EnvMaxConns] = "2"
	c, err = ConfigFromLookup(lookupFrom(env))
	require.NoError(t, err)
	assert.EqualValues(t, 2, c.MaxConns, "DATABASE_MAX_CONNS overrides the plan")
	assert.Equal(t, EnvMaxConns, c.maxConnsFrom)
	assert.Equal(t, want.MaxDirectConns, c.MaxDirectConns)

	env[EnvAppName] = "billing"
	_, err = ConfigFromLookup(lookupFrom(env))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `app "billing"`)
	assert.Contains(t, err.Error(), "web, worker")

	require.NoError(t, os.WriteFile(spec, []byte("limit: 10\nreserved: 9\napps: [{name: web, instances: 4, direct: 1}]\n"), 0o600))
	env[EnvAppName] = "web"
	_, err = ConfigFromLookup(lookupFrom(env))
	var inf *budget.InfeasibleError
	require.ErrorAs(t, err, &inf)
	assert.Contains(t, err.Error(), "SUPAPOOL_BUDGET")
}

func TestParseErrorsNameTheParameter(t *testing.T) {
	_, err := New(context.Background(), Config{DirectURL: "postgres://u:" + secret + "@h/db?pool_max_conns=many"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pool_max_conns")
	assert.Contains(t, err.Error(), "DATABASE_URL")
	assert.NotContains(t, err.Error(), secret)
}
