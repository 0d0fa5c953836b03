package supabase

import (
	"os"

	supabasego "github.com/supabase-community/supabase-go"
	"go.uber.org/zap"
)

// Option configures [ConfigFromEnv] and [NewClient].
type Option interface{ apply(*options) }

type options struct {
	lookup func(string) (string, bool)
	logger *zap.Logger
	adjust []func(*Project)
	client supabasego.ClientOptions
	logSet bool
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

func newOptions(opts []Option) options {
	o := options{lookup: os.LookupEnv, logger: zap.NewNop()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	return o
}

// WithLookup reads variables through lookup instead of os.LookupEnv, for
// tests and for configuration that lives elsewhere (a secrets manager).
// The last one given wins.
func WithLookup(lookup func(string) (string, bool)) Option {
	return optionFunc(func(o *options) {
		if lookup != nil {
			o.lookup = lookup
		}
	})
}

// WithLogger receives what ConfigFromEnv and NewClient have to say: which
// variables won, and warnings such as a pooler host guessed from the
// region. Without it nothing is logged, because the package has no other
// place to log to. ConfigFromEnv also puts it in the returned
// pool.Config's Logger. The last one given wins.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.logger, o.logSet = l, true
		}
	})
}

// WithProject lets the caller change the Project derived from SUPABASE_*
// before its URLs are built: point an address at a local server in tests,
// at a tunnel, or set the role and database. Repeated uses apply in order.
// It has no effect when the URLs come from DATABASE_*.
func WithProject(f func(*Project)) Option {
	return optionFunc(func(o *options) {
		if f != nil {
			o.adjust = append(o.adjust, f)
		}
	})
}

// WithClientOptions passes options (schema, extra headers) to
// supabase-go's NewClient. A header named X-Client-Info in them replaces
// supapool's. The last one given wins.
func WithClientOptions(c supabasego.ClientOptions) Option {
	return optionFunc(func(o *options) { o.client = c })
}
