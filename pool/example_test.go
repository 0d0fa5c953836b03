package pool_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/supapool/supapool/pool"
)

// A session statement on the pooled route is refused before anything is
// sent (New opens no connection, so this runs without a server).
func Example_sessionStatement() {
	ctx := context.Background()
	p, err := pool.New(ctx, pool.Config{
		AppName:   "web",
		DirectURL: "postgres://postgres:secret@db.ref.supabase.co:5432/postgres",
		PooledURL: "postgres://postgres.ref:secret@aws-0-eu-west-1.pooler.supabase.com:6543/postgres?pgbouncer=true",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	_, err = p.Exec(ctx, "LISTEN orders")
	fmt.Println(errors.Is(err, pool.ErrSessionStatement))
	fmt.Println(p.Stat().Pooled.Mode, p.Config().TxRoute)
	// Output:
	// true
	// transaction direct
}

// ConfigFromLookup is ConfigFromEnv over any source of variables.
func ExampleConfigFromLookup() {
	env := map[string]string{
		"DATABASE_URL":        "postgres://postgres:secret@db.ref.supabase.co:5432/postgres",
		"DATABASE_POOLED_URL": "postgres://postgres.ref:secret@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
		"DATABASE_APP_NAME":   "worker",
		"DATABASE_MAX_CONNS":  "3",
	}
	cfg, err := pool.ConfigFromLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	fmt.Println(cfg.AppName, cfg.MaxConns, err)
	// Output: worker 3 <nil>
}

func ExampleRedact() {
	fmt.Println(pool.Redact("postgres://postgres.ref:secret@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"))
	// Output: postgres://postgres.ref:xxxxx@aws-0-eu-west-1.pooler.supabase.com:6543/postgres
}

// Redact masks keyword/value passwords too, quoted or not.
func ExampleRedact_keywordValue() {
	fmt.Println(pool.Redact("host=db.ref.supabase.co user=postgres password='s3cr et' dbname=postgres"))
	// Output: host=db.ref.supabase.co user=postgres password=xxxxx dbname=postgres
}

// A Config prints, with any verb, and logs (slog, zap) with its passwords
// masked.
func ExampleConfig_Format() {
	cfg := pool.Config{
		AppName:   "web",
		DirectURL: "postgres://postgres:secret@db.ref.supabase.co:5432/postgres",
	}
	s := fmt.Sprintf("%+v", cfg)
	fmt.Println(strings.Contains(s, "secret"))
	fmt.Println(strings.Fields(s)[1])
	// Output:
	// false
	// DirectURL:postgres://postgres:xxxxx@db.ref.supabase.co:5432/postgres
}
