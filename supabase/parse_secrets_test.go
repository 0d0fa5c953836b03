package supabase

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A password with characters that need percent-encoding is refused with
// what to do, and never shown.
func TestParseURLUnencodedPassword(t *testing.T) {
	const pw = "Sup3rS3cretPw"
	for _, c := range []string{"/", "#", "?", "@", " ", "%", "/x@", "1234/"} {
		t.Run(c, func(t *testing.T) {
			raw := "postgresql://postgres:" + c + pw + "@db." + testRef + ".supabase.co:5432/postgres"
			_, _, err := ParseURL(raw)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "supabase: connection string is not a valid URL: the password must be percent-encoded")
			assert.NotContains(t, err.Error(), pw)

			p, _, err := ParseURL("postgresql://" + url.UserPassword("postgres", c+pw).String() + "@db." + testRef + ".supabase.co:5432/postgres")
			require.NoError(t, err, "percent-encoded, it parses")
			assert.Equal(t, c+pw, p.Password)
		})
	}
}

func TestConfigFromEnvHidesMisplacedSecrets(t *testing.T) {
	const dbURL = "postgresql://postgres:" + envPW + "@db." + testRef + ".supabase.co:5432/postgres"
	keyword := "host=db." + testRef + ".supabase.co password='" + envPW + "'"
	tests := []struct{ name, key, val, want string }{
		{"database URL in SUPABASE_URL", EnvURL, dbURL, "SUPABASE_URL holds a database URL with a password"},
		{"unencoded URL in SUPABASE_URL", EnvURL, "postgresql://postgres:" + envPW + "/x@db." + testRef + ".supabase.co/postgres", "SUPABASE_URL holds a database URL"},
		{"keyword DSN in SUPABASE_POOLER_HOST", EnvPoolerHost, keyword, "SUPABASE_POOLER_HOST must be a host name"},
		{"URL in SUPABASE_POOLER_HOST", EnvPoolerHost, dbURL, "SUPABASE_POOLER_HOST must be a host name"},
		{"URL in SUPABASE_REGION", EnvRegion, dbURL, "SUPABASE_REGION a value that looks like a connection string is not a region"},
		{"URL in SUPABASE_DIRECT_MODE", EnvDirectMode, dbURL, "SUPABASE_DIRECT_MODE a value that looks like a connection string is neither direct nor session"},
		{"URL in DATABASE_MAX_CONNS", "DATABASE_MAX_CONNS", dbURL, "supabase: pool: DATABASE_MAX_CONNS holds a value that looks like a connection string"},
		{"keyword DSN in DATABASE_TX_ROUTE", "DATABASE_TX_ROUTE", keyword, "DATABASE_TX_ROUTE holds a value that looks like a connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := supabaseEnv()
			if tt.key == EnvRegion {
				delete(env, EnvPoolerHost)
			}
			env[tt.key] = tt.val
			_, _, err := configFromMap(t, env) // checks every log line and the error
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// The Config derived from SUPABASE_* prints and logs without the password.
func TestConfigFromEnvFormatsRedacted(t *testing.T) {
	cfg, _, err := configFromMap(t, supabaseEnv())
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		s := fmt.Sprintf(verb, cfg)
		assert.NotContains(t, s, envPW, verb)
		assert.NotContains(t, s, escape(envPW), verb)
		assert.Contains(t, s, "xxxxx", verb)
	}
}
