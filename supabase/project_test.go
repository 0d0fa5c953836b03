package supabase

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testRef = "abcdefghijklmnopqrst"

func testProject() Project {
	return Project{Ref: testRef, Password: "s3cret-pw", PoolerHost: "aws-1-us-east-2.pooler.supabase.com"}
}

func TestProjectURLs(t *testing.T) {
	t.Parallel()
	p := testProject()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"direct", p.DirectURL(), "postgresql://postgres:s3cret-pw@db.abcdefghijklmnopqrst.supabase.co:5432/postgres?sslmode=require"},
		{"session", p.SessionPoolerURL(), "postgresql://postgres.abcdefghijklmnopqrst:s3cret-pw@aws-1-us-east-2.pooler.supabase.com:5432/postgres?sslmode=require"},
		{"transaction", p.TransactionPoolerURL(), "postgresql://postgres.abcdefghijklmnopqrst:s3cret-pw@aws-1-us-east-2.pooler.supabase.com:6543/postgres?sslmode=require"},
		{"dedicated", p.DedicatedPoolerURL(), "postgresql://postgres:s3cret-pw@db.abcdefghijklmnopqrst.supabase.co:6543/postgres?sslmode=require"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

func TestProjectURLFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Project
		mode Mode
		want string
	}{
		{"region fallback guesses aws-0", Project{Ref: testRef, Password: "pw", Region: "eu-central-1"}, TransactionPooler,
			"postgresql://postgres.abcdefghijklmnopqrst:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres?sslmode=require"},
		{"pooler host wins over region", Project{Ref: testRef, Password: "pw", PoolerHost: "aws-1-eu-central-1.pooler.supabase.com", Region: "us-east-1"}, SessionPooler,
			"postgresql://postgres.abcdefghijklmnopqrst:pw@aws-1-eu-central-1.pooler.supabase.com:5432/postgres?sslmode=require"},
		{"custom role and database", Project{Ref: testRef, Password: "pw", PoolerHost: "aws-1-eu-central-1.pooler.supabase.com", User: "svc_orders", Database: "orders"}, TransactionPooler,
			"postgresql://svc_orders.abcdefghijklmnopqrst:pw@aws-1-eu-central-1.pooler.supabase.com:6543/orders?sslmode=require"},
		{"sslmode kept", Project{Ref: testRef, Password: "pw", SSLMode: "verify-full"}, Direct,
			"postgresql://postgres:pw@db.abcdefghijklmnopqrst.supabase.co:5432/postgres?sslmode=verify-full"},
		{"no password", Project{Ref: testRef}, Direct,
			"postgresql://postgres@db.abcdefghijklmnopqrst.supabase.co:5432/postgres?sslmode=require"},
		{"address override", Project{Ref: testRef, Password: "pw", DirectAddr: "127.0.0.1:15432", SSLMode: "disable"}, Direct,
			"postgresql://postgres:pw@127.0.0.1:15432/postgres?sslmode=disable"},
		{"pooler override without host", Project{Ref: testRef, Password: "pw", TransactionAddr: "[::1]:6432"}, TransactionPooler,
			"postgresql://postgres.abcdefghijklmnopqrst:pw@[::1]:6432/postgres?sslmode=require"},
		{"pooler without host or region", Project{Ref: testRef, Password: "pw"}, SessionPooler, ""},
		{"no ref", Project{Password: "pw", PoolerHost: "aws-1-us-east-2.pooler.supabase.com"}, TransactionPooler, ""},
		{"unknown mode", testProject(), Mode(99), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.URL(tt.mode))
		})
	}
}

// Passwords that break hand-assembled URLs. Each must come back exactly
// through net/url (what pgx uses) and through ParseURL.
var hardPasswords = []string{
	"p@ss:w/rd?#%",
	"with space",
	"plus+and&equals=semi;comma,dollar$",
	"pässwörd-ünïcode-🔑",
	"%41%zz",
	`quote"back\slash'`,
	"[brackets]{}|^`<>",
	"tab\tnewline\n",
	":",
	"@",
}

func TestPasswordEncoding(t *testing.T) {
	t.Parallel()
	for _, pw := range hardPasswords {
		t.Run(fmt.Sprintf("%q", pw), func(t *testing.T) {
			p := testProject()
			p.Password = pw
			for _, m := range Modes {
				raw := p.URL(m)
				u, err := url.Parse(raw)
				require.NoError(t, err)
				got, ok := u.User.Password()
				require.True(t, ok)
				assert.Equal(t, pw, got, "net/url reads the password back")
				assert.Contains(t, []string{"db." + testRef + ".supabase.co", p.PoolerHost}, u.Hostname(), "the password must not leak into the host")

				back, mode, err := ParseURL(raw)
				require.NoError(t, err)
				assert.Equal(t, m, mode)
				assert.Equal(t, pw, back.Password)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	projects := []Project{
		testProject(),
		{Ref: testRef, Password: "p@ss:w/rd?#% 🔑", PoolerHost: "aws-0-ap-southeast-1.pooler.supabase.com", User: "svc", Database: "app db", SSLMode: "verify-full"},
		{Ref: "z9", Password: "x", Region: "sa-east-1"},
	}
	for _, p := range projects {
		for _, m := range Modes {
			t.Run(p.Ref+"/"+m.String(), func(t *testing.T) {
				first := p.URL(m)
				require.NotEmpty(t, first)
				parsed, mode, err := ParseURL(first)
				require.NoError(t, err)
				assert.Equal(t, m, mode)
				assert.Equal(t, first, parsed.URL(m), "build → parse → build")
				assert.Equal(t, p.Ref, parsed.Ref)
				assert.Equal(t, p.Password, parsed.Password)
			})
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, testProject().Validate())
	bad := Project{
		Ref: "Not_A_Ref", Password: "topsecret", PoolerHost: "postgresql://x:topsecret@h", Region: "useast",
		User: "postgres.Not_A_Ref", SSLMode: "yes", DirectAddr: "127.0.0.1",
	}
	err := bad.Validate()
	require.Error(t, err)
	for _, field := range []string{"Ref", "PoolerHost", "Region", "User", "SSLMode", "DirectAddr"} {
		assert.Contains(t, err.Error(), field)
	}
	assert.NotContains(t, err.Error(), "topsecret")
	assert.ErrorContains(t, Project{}.Validate(), "Ref is empty")
}

func TestProjectNeverPrintsPassword(t *testing.T) {
	t.Parallel()
	p := testProject()
	p.Password = "hunter2-very-secret"
	for _, s := range []string{p.String(), fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s", p, p, p, p), fmt.Sprint(&p)} {
		assert.NotContains(t, s, p.Password)
		assert.Contains(t, s, testRef)
	}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.NotContains(t, string(b), p.Password)
	assert.Contains(t, string(b), testRef)
	assert.True(t, strings.Contains(Project{Ref: testRef, Region: "us-east-1"}.String(), "guessed"))
}
