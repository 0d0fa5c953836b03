package supabase

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/supapool/supapool/internal/redact"
	"github.com/supapool/supapool/pool"
)

// Environment variables read by [ConfigFromEnv] and [NewClient], beside
// pool's DATABASE_* ones.
const (
	EnvURL            = "SUPABASE_URL"              // https://REF.supabase.co
	EnvDBPassword     = "SUPABASE_DB_PASSWORD"      // the database password, not an API key
	EnvPoolerHost     = "SUPABASE_POOLER_HOST"      // aws-N-REGION.pooler.supabase.com, or db.REF.supabase.co for the dedicated pooler
	EnvRegion         = "SUPABASE_REGION"           // fallback for EnvPoolerHost
	EnvDirectMode     = "SUPABASE_DIRECT_MODE"      // direct (default) or session
	EnvServiceRoleKey = "SUPABASE_SERVICE_ROLE_KEY" // preferred by NewClient
	EnvAnonKey        = "SUPABASE_ANON_KEY"
)

// dbVars say the caller means to derive database URLs; SUPABASE_URL alone
// does not, because supabase-js and NewClient read it too.
var dbVars = []string{EnvDBPassword, EnvPoolerHost, EnvRegion, EnvDirectMode}

// ConfigFromEnv returns a pool.Config for a Supabase project.
//
// DATABASE_URL and DATABASE_POOLED_URL, when set, are used as they are.
// Each one that is unset is derived from SUPABASE_URL, SUPABASE_DB_PASSWORD
// and SUPABASE_POOLER_HOST (or SUPABASE_REGION, a guess): DATABASE_URL
// becomes the direct URL (or the session pooler's with
// SUPABASE_DIRECT_MODE=session, for networks without IPv6) and
// DATABASE_POOLED_URL the transaction pooler's (or the dedicated pooler's
// when SUPABASE_POOLER_HOST is db.REF.supabase.co). The other DATABASE_*
// variables are read by pool.ConfigFromLookup as usual.
//
// Where a DATABASE_* URL wins over SUPABASE_* ones, and when the pooler
// host is guessed, it says so through [WithLogger]'s logger. Every missing
// or malformed variable is named in the error; no error or log holds a
// password or key.
func ConfigFromEnv(opts ...Option) (pool.Config, error) {
	o := newOptions(opts)
	get := func(k string) string {
		v, _ := o.lookup(k)
		return strings.TrimSpace(v)
	}
	log := o.logger.Named("supabase")
	dbURL, pooledURL := get(pool.EnvDirectURL), get(pool.EnvPooledURL)
	var supaDB []string
	for _, k := range dbVars {
		if get(k) != "" {
			supaDB = append(supaDB, k)
		}
	}
	lookup := o.lookup
	var derived struct {
		pooled bool
		mode   Mode
	}
	switch {
	case dbURL != "" && (pooledURL != "" || len(supaDB) == 0):
		if len(supaDB) > 0 {
			log.Info("DATABASE_URL and DATABASE_POOLED_URL are set, so SUPABASE_* database variables are not used", zap.Strings("ignored", supaDB))
		}
	case dbURL == "" && len(supaDB) == 0 && get(EnvURL) == "":
		return pool.Config{}, fmt.Errorf("supabase: %s is not set, and neither are %s and %s to derive it from", pool.EnvDirectURL, EnvURL, EnvDBPassword)
	default:
		p, directMode, pooledMode, err := projectFromEnv(get, log)
		if err != nil {
			return pool.Config{}, err
		}
		for _, f := range o.adjust {
			f(&p)
		}
		if err := p.Validate(); err != nil {
			return pool.Config{}, err
		}
		if err := sameProject(pool.EnvDirectURL, dbURL, p.Ref); err != nil {
			return pool.Config{}, err
		}
		if err := sameProject(pool.EnvPooledURL, pooledURL, p.Ref); err != nil {
			return pool.Config{}, err
		}
		urls := map[string]string{}
		for _, v := range []struct {
			env, set string
			mode     Mode
		}{{pool.EnvDirectURL, dbURL, directMode}, {pool.EnvPooledURL, pooledURL, pooledMode}} {
			if v.set != "" {
				log.Info(v.env+" is set and used instead of the "+v.mode.String()+" URL derived from SUPABASE_*", zap.String("url", pool.Redact(v.set)))
				continue
			}
			urls[v.env] = p.URL(v.mode)
			log.Info(v.env+" derived from SUPABASE_*", zap.String("mode", v.mode.String()), zap.String("url", pool.Redact(urls[v.env])))
		}
		if _, ok := urls[pool.EnvPooledURL]; ok {
			derived.pooled, derived.mode = true, pooledMode
		}
		lookup = func(k string) (string, bool) {
			if v, ok := urls[k]; ok {
				return v, true
			}
			return o.lookup(k)
		}
	}
	cfg, err := pool.ConfigFromLookup(lookup)
	if err != nil {
		return pool.Config{}, fmt.Errorf("supabase: %w", err)
	}
	// Derived URLs may point at overridden addresses (tests, tunnels) where
	// pool cannot tell the pooler's mode from the host, so say it.
	if derived.pooled && get(pool.EnvPooledMode) == "" {
		cfg.PooledMode = derived.mode.PoolerMode()
	}
	if onDBHost(cfg.DirectURL) {
		cfg.ConfigureDirect = ConfigureDial
	}
	if onDBHost(cfg.PooledURL) {
		cfg.ConfigurePooled = ConfigureDial
	}
	if o.logSet {
		cfg.Logger = o.logger
	}
	return cfg, nil
}

// PoolerMode is the pool's name for what sits behind a URL of mode m.
func (m Mode) PoolerMode() pool.PoolerMode {
	switch m {
	case Direct:
		return pool.NoPooler
	case SessionPooler:
		return pool.SessionPooler
	case TransactionPooler, DedicatedPooler:
		return pool.TransactionPooler
	}
	return pool.DetectMode
}

// projectFromEnv reads the SUPABASE_* database variables, reporting every
// problem at once.
func projectFromEnv(get func(string) string, log *zap.Logger) (p Project, direct, pooled Mode, err error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("supabase: "+format, args...)) }
	if raw := get(EnvURL); raw == "" {
		add("%s is not set; it must be the project URL https://REF.supabase.co (for a custom domain or self-hosting, set %s instead)", EnvURL, pool.EnvDirectURL)
	} else if redact.Unencoded(raw) || len(redact.Passwords(raw)) > 0 {
		add("%s holds a database URL with a password, expected the project URL https://REF.supabase.co (the database URL goes in %s)", EnvURL, pool.EnvDirectURL)
	} else if p.Ref, err = refFromAPIURL(raw); err != nil {
		add("%s: %v (for a custom domain or self-hosting, set %s instead)", EnvURL, err, pool.EnvDirectURL)
	}
	if p.Password = get(EnvDBPassword); p.Password == "" {
		add("%s is not set; it must be the database password from the dashboard (Project Settings › Database), not an API key", EnvDBPassword)
	}
	pooled = TransactionPooler
	host, region := strings.ToLower(get(EnvPoolerHost)), get(EnvRegion)
	switch {
	case host != "":
		if err := checkPoolerHost(host); err != nil && redact.LooksLikeConnString(host) {
			// checkPoolerHost quotes what is not a host name.
			add("%s must be a host name such as aws-1-us-east-2.pooler.supabase.com, not a connection string", EnvPoolerHost)
		} else if err != nil {
			add("%s %v", EnvPoolerHost, err)
		} else if isDBHost(host) {
			if p.Ref != "" && host != p.DirectHost() {
				add("%s %q is the database host of another project than %s's (%s)", EnvPoolerHost, host, EnvURL, p.Ref)
			}
			pooled = DedicatedPooler
		} else {
			p.PoolerHost = host
		}
	case region != "":
		if !regionRE.MatchString(region) {
			add("%s %s is not a region such as us-east-1", EnvRegion, redact.Value(region))
		} else {
			p.Region = region
			guess, _ := p.PoolerHostOrGuess()
			log.Warn(EnvPoolerHost+" is not set, so the pooler host is guessed from "+EnvRegion+"; the aws-N cluster number cannot be derived from the region, so copy the host from the dashboard's Connect dialog if connections fail with \"tenant or user not found\"", zap.String("guess", guess))
		}
	default:
		add("%s is not set; copy the shared pooler's host (such as aws-1-us-east-2.pooler.supabase.com) from the dashboard's Connect dialog (or set %s to guess it)", EnvPoolerHost, EnvRegion)
	}
	switch v := strings.ToLower(get(EnvDirectMode)); v {
	case "", "direct":
		direct = Direct
	case "session":
		direct = SessionPooler
		if pooled == DedicatedPooler {
			add("%s=session needs the shared pooler, but %s names the dedicated one", EnvDirectMode, EnvPoolerHost)
		}
	default:
		add("%s %s is neither direct nor session", EnvDirectMode, redact.Value(v))
	}
	if err := errors.Join(errs...); err != nil {
		return Project{}, 0, 0, err
	}
	return p, direct, pooled, nil
}

// refFromAPIURL reads REF from https://REF.supabase.co.
func refFromAPIURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %s", redact.URLError(err))
	}
	host := strings.ToLower(u.Hostname())
	ref, ok := strings.CutSuffix(host, ".supabase.co")
	if u.Scheme != "https" && u.Scheme != "http" || !ok || !refRE.MatchString(ref) {
		return "", fmt.Errorf("host %q is not REF.supabase.co", host)
	}
	return ref, nil
}

// sameProject refuses a DATABASE_* URL for another project than the
// SUPABASE_* one, since mixing them would split one service across two
// databases. URLs that are not Supabase's are left to pool to check.
func sameProject(env, raw, ref string) error {
	if raw == "" {
		return nil
	}
	p, _, err := ParseURL(raw)
	if err != nil || p.Ref == ref {
		return nil
	}
	return fmt.Errorf("supabase: %s is for project %s but %s is for %s", env, p.Ref, EnvURL, ref)
}

func onDBHost(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && isDBHost(u.Hostname())
}
