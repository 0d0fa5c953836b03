package supabase

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/redact"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	const pooler = "aws-0-us-east-1.pooler.supabase.com"
	tests := []struct {
		name string
		in   string
		want Project
		mode Mode
	}{
		{"direct as in the docs", "postgresql://postgres:pw@db." + testRef + ".supabase.co:5432/postgres",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres"}, Direct},
		{"direct without port, postgres scheme", "postgres://postgres:pw@db." + testRef + ".supabase.co/postgres",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres"}, Direct},
		{"dedicated pooler", "postgresql://postgres:pw@db." + testRef + ".supabase.co:6543/postgres",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres"}, DedicatedPooler},
		{"transaction pooler", "postgresql://postgres." + testRef + ":pw@" + pooler + ":6543/postgres",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres", PoolerHost: pooler, Region: "us-east-1"}, TransactionPooler},
		{"session pooler", "postgresql://postgres." + testRef + ":pw@" + pooler + ":5432/postgres",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres", PoolerHost: pooler, Region: "us-east-1"}, SessionPooler},
		{"prisma seed form with pgbouncer=true", "postgresql://postgres." + testRef + ":pw@" + pooler + ":6543/postgres?pgbouncer=true&connection_limit=1",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres", PoolerHost: pooler, Region: "us-east-1"}, TransactionPooler},
		{"vercel workaround parameter", "postgresql://postgres." + testRef + ":pw@" + pooler + ":6543/postgres?workaround=supabase-pooler.vercel",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres", PoolerHost: pooler, Region: "us-east-1"}, TransactionPooler},
		{"custom role on the pooler", "postgresql://svc.orders." + testRef + ":pw@AWS-1-EU-WEST-2.pooler.supabase.com:6543/postgres?sslmode=verify-full",
			Project{Ref: testRef, Password: "pw", User: "svc.orders", Database: "postgres", PoolerHost: "aws-1-eu-west-2.pooler.supabase.com", Region: "eu-west-2", SSLMode: "verify-full"}, TransactionPooler},
		{"pooler host of another shape", "postgresql://postgres." + testRef + ":pw@fly-0-iad.pooler.supabase.com:5432/postgres",
			Project{Ref: testRef, Password: "pw", User: "postgres", Database: "postgres", PoolerHost: "fly-0-iad.pooler.supabase.com"}, SessionPooler},
		{"encoded password", "postgresql://postgres:p%40ss%3Aw%2Frd%3F%23%25%20%F0%9F%94%91@db." + testRef + ".supabase.co:5432/postgres",
			Project{Ref: testRef, Password: "p@ss:w/rd?#% 🔑", User: "postgres", Database: "postgres"}, Direct},
		{"no password, no database", "postgresql://postgres@db." + testRef + ".supabase.co:5432",
			Project{Ref: testRef, User: "postgres"}, Direct},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, m, err := ParseURL(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, p)
			assert.Equal(t, tt.mode, m)
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	t.Parallel()
	const pw = "Sup3rS3cretPw"
	tests := []struct {
		name, in, want string
	}{
		{"not a postgres url", "https://" + testRef + ".supabase.co", "must start with postgresql://"},
		{"not supabase", "postgresql://postgres:" + pw + "@localhost:5432/postgres", `host "localhost" is neither`},
		{"pooler user without ref", "postgresql://postgres:" + pw + "@aws-0-us-east-1.pooler.supabase.com:6543/postgres", "must be ROLE.PROJECTREF"},
		{"pooler user form on the db host", "postgresql://postgres." + testRef + ":" + pw + "@db." + testRef + ".supabase.co:5432/postgres", "shared pooler's form"},
		{"odd port", "postgresql://postgres:" + pw + "@db." + testRef + ".supabase.co:6432/postgres", "port 6432"},
		{"bad escape in password", "postgresql://postgres:" + pw + "%zz@db." + testRef + ".supabase.co/postgres", "not a valid URL"},
		{"pgbouncer not a bool", "postgresql://postgres." + testRef + ":" + pw + "@aws-0-us-east-1.pooler.supabase.com:6543/postgres?pgbouncer=yes please", "pgbouncer="},
		{"no user", "postgresql://db." + testRef + ".supabase.co/postgres", "no user name"},
		{"bad ref", "postgresql://postgres:" + pw + "@db.Bad_Ref.supabase.co/postgres", "is not a project ref"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseURL(tt.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "supabase: "), err.Error())
			assert.NotContains(t, err.Error(), pw)
		})
	}
}

// FuzzParseURL checks that no input panics, that a password never shows in
// an error, and that whatever parses builds back to an equivalent URL.
func FuzzParseURL(f *testing.F) {
	p := testProject()
	for _, pw := range hardPasswords {
		p.Password = pw
		for _, m := range Modes {
			f.Add(p.URL(m))
		}
	}
	f.Add("postgresql://postgres.ref:pw@aws-0-us-east-1.pooler.supabase.com:6543/postgres?pgbouncer=true")
	f.Add("postgresql://postgres:pw%zz@db.ref.supabase.co:5432/postgres")
	f.Add("postgres://u:p@[::1]:5432/x")
	f.Add("postgresql://postgres:secret@db.x.supabase.co:99999/postgres")
	f.Fuzz(func(t *testing.T, s string) {
		p, m, err := ParseURL(s)
		if err != nil {
			// The fixed hint may happen to hold a password's text.
			msg := strings.ReplaceAll(err.Error(), redact.EncodeHint, "<hint>")
			for _, pw := range fuzzPassword(s) {
				assert.NotContains(t, msg, pw)
			}
			return
		}
		again, m2, err := ParseURL(p.URL(m))
		require.NoError(t, err, "a parsed Project must build a parsable URL")
		assert.Equal(t, m, m2)
		assert.Equal(t, p.Password, again.Password)
		assert.Equal(t, p.Ref, again.Ref)
	})
}

// fuzzPassword returns s's password in its decoded and raw forms when it is
// long enough to search for and appears nowhere else in s, so that finding
// it in an error can only mean the error leaked it.
func fuzzPassword(s string) []string {
	i := strings.Index(s, "://")
	if i < 0 {
		return nil
	}
	rest := s[i+3:]
	at := strings.LastIndex(rest, "@")
	if j := strings.IndexAny(rest, "/?#"); j >= 0 && j < at {
		return nil
	}
	if at < 0 {
		return nil
	}
	userinfo := rest[:at]
	colon := strings.Index(userinfo, ":")
	if colon < 0 {
		return nil
	}
	raw := userinfo[colon+1:]
	pw, err := url.PathUnescape(raw)
	if err != nil {
		pw = raw
	}
	if len(pw) < 6 || len(raw) < 6 {
		return nil
	}
	others := s[:i+3] + userinfo[:colon] + rest[at:]
	if strings.Contains(others, pw) || strings.Contains(others, raw) || strings.Contains(strings.ToLower(others), strings.ToLower(pw)) {
		return nil
	}
	return []string{pw, raw}
}
