package pool

import (
	"context"
	"errors"
	"strings"

	"go.uber.org/zap"
)

// Option changes the Config that NewFromEnv read from the environment.
type Option func(*Config)

// WithLogger sends supapool's logs to l (the "pool ready" line, warnings
// about a full server or a listener holding the only direct connection,
// listener errors). It wins over SUPAPOOL_LOG_LEVEL.
func WithLogger(l *zap.Logger) Option {
	return func(c *Config) { c.Logger = l }
}

// WithConfig lets a caller change anything else the environment set, for
// example hooks: pool.WithConfig(func(c *pool.Config) { c.ConfigurePooled = ... }).
func WithConfig(f func(*Config)) Option { return Option(f) }

// Check connects through every configured route (the pooled one, and the
// direct one unless NoDirect) and pings the server, for services that want
// to fail at start-up rather than on their first request. Its error names
// each route that failed and the variable to fix:
//
//	p, err := pool.NewFromEnv(ctx)
//	...
//	if err := p.Check(ctx); err != nil {
//		log.Fatal(err) // pool: direct route (DATABASE_URL): ...
//	}
func (p *Pool) Check(ctx context.Context) error {
	if err := p.open(); err != nil {
		return err
	}
	var errs []error
	for _, r := range []*route{p.pooled, p.direct} {
		if r == nil {
			continue
		}
		if err := p.PingRoute(ctx, r.name); err != nil {
			errs = append(errs, &checkError{route: r.name, env: r.env(), err: err})
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		p.log.Error("supapool: start-up check failed", zap.Error(err))
	}
	return err
}

// checkError is one route's failure in Check.
type checkError struct {
	route Route
	env   string
	err   error
}

func (e *checkError) Error() string {
	msg := strings.TrimPrefix(e.err.Error(), "pool: "+e.route.String()+" route: ")
	return "pool: " + e.route.String() + " route (" + e.env + "): " + strings.TrimPrefix(msg, "pool: ")
}

func (e *checkError) Unwrap() error { return e.err }

// env is the variable that holds the route's URL.
func (r *route) env() string {
	if (r.name == Pooled || r.name == Heavy) && r.mode != NoPooler {
		return EnvPooledURL
	}
	return EnvDirectURL
}
