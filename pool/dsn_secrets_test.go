package pool

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// errorsOf collects what parseDSN, resolve and New say about raw as
// DirectURL, with every log line New writes.
func errorsOf(t *testing.T, raw string) []string {
	t.Helper()
	var out []string
	if _, err := parseDSN(fieldName("DirectURL", EnvDirectURL), raw); err != nil {
		out = append(out, err.Error())
	}
	core, logs := observer.New(zap.DebugLevel)
	p, err := New(context.Background(), Config{DirectURL: raw, Logger: zap.New(core)})
	if err != nil {
		out = append(out, err.Error())
	} else {
		p.Close()
	}
	for _, e := range logs.All() {
		out = append(out, e.Message)
		for k, v := range e.ContextMap() {
			out = append(out, k+"="+toString(v))
		}
	}
	return out
}

func toString(v any) string { return fmt.Sprint(v) }

func TestKeywordDSNErrorsHideThePassword(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"space in bare password", "host=h user=u password=se " + secret + " dbname=d", "text after password= is not a key=value pair; a value with a space in it must be in single quotes"},
		{"spaces around = and a space in it", "host=h password = se " + secret + " dbname=d", "single quotes"},
		{"unterminated quote", "host=h password='" + secret + " dbname=d", "the quoted value of password has no closing quote"},
		{"escaped quote left open", `host=h password='se\'` + secret + `\' dbname=d`, "no closing quote"},
		{"bad port after a quoted password", `host=h port=x password='se \'cr` + secret + `' dbname=d`, "invalid port"},
		{"bad sslmode after a spaced password", "host=h password = " + secret + " sslmode=sometimes", "sslmode"},
		{"unknown target_session_attrs", `password='` + secret + `\\' host=h target_session_attrs=` + secret[:3], "target_session_attrs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := errorsOf(t, tt.raw)
			require.NotEmpty(t, out)
			joined := strings.Join(out, "\n")
			assert.Contains(t, joined, tt.want)
			assert.Contains(t, joined, "DirectURL (DATABASE_URL)")
			assert.NotContains(t, joined, secret)
		})
	}
}

func TestDSNUnencodedPassword(t *testing.T) {
	for _, c := range []string{"/", "#", "?", "@", " ", "%", "/x@", "?a=b@"} {
		raw := "postgres://u:pa" + c + secret + "@db.example.com:5432/db?sslmode=disable"
		t.Run(c, func(t *testing.T) {
			out := errorsOf(t, raw)
			require.NotEmpty(t, out)
			joined := strings.Join(out, "\n")
			assert.Contains(t, joined, "pool: DirectURL (DATABASE_URL) is not a valid URL: the password must be percent-encoded")
			assert.NotContains(t, joined, secret)
		})
		t.Run(c+" encoded works", func(t *testing.T) {
			enc := "postgres://u:" + url.QueryEscape("pa"+c+secret) + "@db.example.com:5432/db?sslmode=disable"
			d, err := parseDSN("X", enc)
			require.NoError(t, err)
			assert.Equal(t, "db.example.com", d.host)
		})
	}
}

func TestDSNQuotedURL(t *testing.T) {
	for _, raw := range []string{`"postgres://u:` + secret + `@h/db"`, `'postgres://u:` + secret + `@h/db'`, "`postgres://u:" + secret + "@h/db"} {
		_, err := parseDSN("DATABASE_URL", raw)
		require.Error(t, err)
		assert.Equal(t, "pool: DATABASE_URL starts with a quote; remove the quotes around the URL", err.Error())
	}
}

// pgx's ParseConfigError quotes the connection string with pgx's own
// best-effort redaction; scrubParseError uses supapool's.
func TestScrubParseError(t *testing.T) {
	raws := []string{
		"host=h password = " + secret + " port=x",
		`host=h password='a b\'` + secret + `' port=x`,
		"postgres://u:" + url.PathEscape("p/"+secret) + "@h:1/db?pool_max_conns=x",
		"postgres://u@h:1/db?password=" + secret + "&pool_max_conns=x",
	}
	for _, raw := range raws {
		t.Run(raw, func(t *testing.T) {
			_, err := pgconn.ParseConfig(raw)
			if err == nil {
				_, err = pgxpool.ParseConfig(raw)
			}
			require.Error(t, err)
			var pce *pgconn.ParseConfigError
			require.True(t, errors.As(err, &pce))
			msg := scrubParseError(err, raw)
			assert.NotContains(t, msg, secret)
			assert.Contains(t, msg, "xxxxx")
		})
	}
}

func TestRedactForms(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"postgres://u:" + secret + "@h:5432/db", "postgres://u:xxxxx@h:5432/db"},
		{"postgres://u:" + url.QueryEscape(secret+"/?#") + "@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://h/db?password=" + secret + "&sslmode=require", "postgres://h/db?password=xxxxx&sslmode=require"},
		{"postgres://h/db?sslpassword=" + secret, "postgres://h/db?sslpassword=xxxxx"},
		{"postgres://u:p/" + secret + "@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:p@" + secret + "@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:" + secret + "@/db?host=/run/postgresql", "postgres://u:xxxxx@/db?host=/run/postgresql"},
		{"host=h password=" + secret + " dbname=d", "host=h password=xxxxx dbname=d"},
		{"host=h password = '" + secret + " x' dbname=d", "host=h password = xxxxx dbname=d"},
		{`host=h password='\'` + secret + `' dbname=d`, "host=h password=xxxxx dbname=d"},
		{"", ""},
		{"not a connection string " + secret, "(unparseable connection string)"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			assert.Equal(t, tt.want, Redact(tt.raw))
		})
	}
}

// The parsed forms hold the password too; they print redacted.
func TestDSNFormatsRedacted(t *testing.T) {
	r, err := Config{DirectURL: "postgres://u:" + secret + "@h/db", PooledURL: "host=p password='" + secret + "'"}.resolve()
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, v := range []any{r, &r, r.direct, r.pooled, []dsn{r.direct}} {
			assert.NotContains(t, fmt.Sprintf(verb, v), secret, verb)
		}
	}
	assert.Equal(t, "dsn{postgres://u:xxxxx@h/db direct}", fmt.Sprint(r.direct))
}
