package supabase

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	supabasego "github.com/supabase-community/supabase-go"
	"go.uber.org/zap"
)

// Version is supapool's version, sent in the X-Client-Info header so
// Supabase can tell supapool's traffic apart.
const Version = "0.1.0"

// ClientInfo is the X-Client-Info header value [NewClient] sets, in the
// name/version form Supabase's own libraries use.
const ClientInfo = "supapool/" + Version

// NewClient returns a supabase-go client (REST, Auth, Storage, Functions)
// for SUPABASE_URL, authenticated with SUPABASE_SERVICE_ROLE_KEY, or with
// SUPABASE_ANON_KEY when there is no service-role key.
//
// It does not call the client's EnableTokenAutoRefresh: in supabase-go
// v0.0.4 that starts a goroutine which never stops and logs through the
// standard logger. A service signing users in should refresh tokens on its
// own schedule with Client.RefreshToken.
//
// The key is never logged; WithLogger's logger hears which kind was used.
func NewClient(opts ...Option) (*supabasego.Client, error) {
	o := newOptions(opts)
	get := func(k string) string {
		v, _ := o.lookup(k)
		return strings.TrimSpace(v)
	}
	raw := get(EnvURL)
	if raw == "" {
		return nil, fmt.Errorf("supabase: %s is not set; it must be the project URL https://REF.supabase.co", EnvURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("supabase: %s is not an http(s) URL such as https://REF.supabase.co", EnvURL)
	}
	u.RawQuery, u.Fragment = "", ""
	base := strings.TrimRight(u.String(), "/")
	key, kind := get(EnvServiceRoleKey), "service_role"
	if key == "" {
		key, kind = get(EnvAnonKey), "anon"
	}
	if key == "" {
		return nil, fmt.Errorf("supabase: neither %s nor %s is set", EnvServiceRoleKey, EnvAnonKey)
	}
	co := o.client
	headers := map[string]string{"X-Client-Info": ClientInfo}
	for k, v := range co.Headers {
		headers[http.CanonicalHeaderKey(k)] = v
	}
	co.Headers = headers
	c, err := supabasego.NewClient(base, key, &co)
	if err != nil {
		return nil, fmt.Errorf("supabase: supabase-go client: %w", err)
	}
	o.logger.Named("supabase").Debug("client created", zap.String("url", base), zap.String("key", kind))
	return c, nil
}
