package supabase

import (
	"bytes"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	supabasego "github.com/supabase-community/supabase-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

type seenRequest struct {
	path   string
	query  url.Values
	header http.Header
}

func restServer(t *testing.T) (*httptest.Server, chan seenRequest) {
	seen := make(chan seenRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- seenRequest{r.URL.Path, r.URL.Query(), r.Header.Clone()}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Range", "0-0/1")
		_, _ = w.Write([]byte(`[{"id":1,"name":"a"}]`))
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func TestNewClientREST(t *testing.T) {
	// Not parallel: it captures the standard logger, which supabase-go
	// uses.
	var stdlog bytes.Buffer
	old := log.Writer()
	log.SetOutput(&stdlog)
	t.Cleanup(func() { log.SetOutput(old) })

	const serviceKey = "eyJservice-role-secret-key"
	const anonKey = "eyJanon-public-key"
	core, logs := observer.New(zapcore.DebugLevel)
	tests := []struct {
		name    string
		env     map[string]string
		wantKey string
	}{
		{"service role key wins", map[string]string{EnvServiceRoleKey: serviceKey, EnvAnonKey: anonKey}, serviceKey},
		{"anon key alone", map[string]string{EnvAnonKey: anonKey}, anonKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := restServer(t)
			tt.env[EnvURL] = srv.URL + "/"
			c, err := NewClient(WithLookup(lookupMap(tt.env)), WithLogger(zap.New(core)))
			require.NoError(t, err)

			var rows []struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			}
			_, err = c.From("todos").Select("id,name", "", false).Eq("done", "false").ExecuteTo(&rows)
			require.NoError(t, err)
			require.Len(t, rows, 1)

			r := <-seen
			assert.Equal(t, "/rest/v1/todos", r.path)
			assert.Equal(t, url.Values{"select": {"id,name"}, "done": {"eq.false"}}, r.query)
			assert.Equal(t, tt.wantKey, r.header.Get("apikey"))
			assert.Equal(t, "Bearer "+tt.wantKey, r.header.Get("Authorization"))
			assert.Equal(t, "supapool/"+Version, r.header.Get("X-Client-Info"))
			assert.Len(t, r.header.Values("X-Client-Info"), 1)
		})
	}
	require.NotZero(t, logs.Len(), "NewClient logs which key it used")
	for _, e := range logs.All() {
		for _, s := range append([]string{e.Message}, fieldStrings(e)...) {
			assert.NotContains(t, s, serviceKey)
			assert.NotContains(t, s, anonKey)
		}
	}
	assert.NotContains(t, stdlog.String(), serviceKey)
}

func fieldStrings(e observer.LoggedEntry) []string {
	var out []string
	for k, v := range e.ContextMap() {
		out = append(out, k, toString(v))
	}
	return out
}

func toString(v any) string {
	return fmt.Sprint(v)
}

func TestNewClientHeaderOverride(t *testing.T) {
	t.Parallel()
	srv, seen := restServer(t)
	c, err := NewClient(
		WithLookup(lookupMap(map[string]string{EnvURL: srv.URL, EnvAnonKey: "k"})),
		WithClientOptions(supabasego.ClientOptions{Headers: map[string]string{"x-client-info": "mine/1"}, Schema: "api"}),
	)
	require.NoError(t, err)
	_, _, err = c.From("t").Select("*", "", false).Execute()
	require.NoError(t, err)
	r := <-seen
	assert.Equal(t, []string{"mine/1"}, r.header.Values("X-Client-Info"))
	assert.Equal(t, "api", r.header.Get("Accept-Profile"))
}

func TestNewClientErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no url", map[string]string{EnvAnonKey: "secretkey1"}, "SUPABASE_URL is not set"},
		{"bad url", map[string]string{EnvURL: "ftp://x", EnvAnonKey: "secretkey1"}, "SUPABASE_URL is not an http(s) URL"},
		{"url with credentials", map[string]string{EnvURL: "https://u:secretkey1@x.supabase.co", EnvAnonKey: "k"}, "SUPABASE_URL is not an http(s) URL"},
		{"no key", map[string]string{EnvURL: "https://" + testRef + ".supabase.co"}, "neither SUPABASE_SERVICE_ROLE_KEY nor SUPABASE_ANON_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(WithLookup(lookupMap(tt.env)))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "secretkey1")
		})
	}
}
