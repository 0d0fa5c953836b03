package integrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// newPool opens a Pool on the shared test bed as application app (each
// test has its own, so its backends can be counted apart), after edit has
// changed the Config, and closes it when the test ends.
func newPool(t *testing.T, app string, edit func(*pool.Config)) (*pool.Pool, *testbed.Bed) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts servers")
	}
	bed := testbed.Start(t)
	cfg := pool.Config{AppName: app, DirectURL: bed.DirectURL, PooledURL: bed.PooledURL}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pool.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p, bed
}

// testCtx is a context that ends with the test, or after a minute.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// exec runs statements on the pooled route and fails the test on error.
func exec(t *testing.T, p *pool.Pool, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		_, err := p.Exec(testCtx(t), sql)
		require.NoError(t, err, sql)
	}
}
