package pool_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
	"github.com/supapool/supapool/pool"
)

// Why supapool refuses schema= on a pooler's URL: PgBouncer rejects
// search_path as a startup parameter, so the first query would fail.
func TestSchemaPgBouncerRejectsSearchPath(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, testbed.WithParams(bed.PooledURL, "search_path=app_schema"))
	if err == nil {
		_ = conn.Close(ctx)
		t.Fatal("PgBouncer accepted search_path as a startup parameter")
	}
	assert.Contains(t, err.Error(), "unsupported startup parameter: search_path")
}

// On a direct URL Prisma's schema= becomes search_path, which PostgreSQL
// applies, on both routes.
func TestSchemaOnDirectURLSetsSearchPath(t *testing.T) {
	bed := testbed.Start(t)
	ctx := testCtx(t)
	p, err := pool.New(ctx, pool.Config{AppName: appName(t), DirectURL: testbed.WithParams(bed.DirectURL, "schema=app_schema")})
	require.NoError(t, err)
	defer p.Close()
	var got string
	require.NoError(t, p.QueryRow(ctx, "SHOW search_path").Scan(&got))
	assert.Equal(t, "app_schema", got, "pooled route")
	tx, err := p.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, tx.QueryRow(ctx, "SHOW search_path").Scan(&got))
	assert.Equal(t, "app_schema", got, "direct route")
}

func TestSchemaOnPoolerURLIsRefused(t *testing.T) {
	const pw = "schema-S3cret"
	pooler := "postgres://postgres.ref:" + pw + "@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"
	direct := "postgres://postgres:" + pw + "@db.ref.supabase.co:5432/postgres"
	session := "postgres://postgres.ref:" + pw + "@aws-0-eu-west-1.pooler.supabase.com:5432/postgres"
	tests := []struct {
		name string
		cfg  pool.Config
		want string // "" means accepted
	}{
		{"transaction pooler, schema", pool.Config{DirectURL: direct, PooledURL: pooler + "?schema=app"}, "PooledURL (DATABASE_POOLED_URL): schema= is sent as the search_path startup parameter"},
		{"transaction pooler, search_path", pool.Config{DirectURL: direct, PooledURL: pooler + "?search_path=app"}, "PooledURL (DATABASE_POOLED_URL): search_path= is sent"},
		{"pgbouncer=true", pool.Config{DirectURL: direct, PooledURL: "postgres://u:" + pw + "@10.0.0.1:6432/db?pgbouncer=true&schema=app"}, "PooledURL (DATABASE_POOLED_URL): schema="},
		{"unmarked pooled URL", pool.Config{DirectURL: direct, PooledURL: "postgres://u:" + pw + "@10.0.0.1:6432/db?schema=app"}, "PooledURL (DATABASE_POOLED_URL): schema="},
		{"session mode said", pool.Config{DirectURL: direct, PooledURL: pooler + "?schema=app", PooledMode: pool.SessionPooler}, "PooledURL (DATABASE_POOLED_URL): schema="},
		{"session pooler as DirectURL", pool.Config{DirectURL: session + "?schema=app"}, "DirectURL (DATABASE_URL): schema="},
		{"keyword DSN to a pooler", pool.Config{DirectURL: direct, PooledURL: "host=aws-0-eu-west-1.pooler.supabase.com port=6543 password=" + pw + " search_path=app"}, "search_path="},
		{"direct URL", pool.Config{DirectURL: direct + "?schema=app"}, ""},
		{"pooled URL said to be direct", pool.Config{DirectURL: direct, PooledURL: "postgres://u:" + pw + "@10.0.0.1:5432/db?schema=app", PooledMode: pool.NoPooler}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pool.New(context.Background(), tt.cfg)
			if tt.want == "" {
				require.NoError(t, err)
				p.Close()
				return
			}
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "pool: "), err.Error())
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "ALTER ROLE <role> SET search_path = app")
			assert.Contains(t, err.Error(), "schema-qualified names")
			assert.NotContains(t, err.Error(), pw)
		})
	}
}

// What the refusal tells the user to do works through PgBouncer: a role's
// search_path applies to the server connections the pooler opens from then
// on. It takes a bed of its own, because it changes the app role.
func TestSchemaAlterRoleWorksThroughPgBouncer(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{})
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, bed.AdminURL)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "ALTER ROLE "+testbed.AppUser+" SET search_path = app_schema, public")
	require.NoError(t, err)
	require.NoError(t, admin.Close(ctx))
	// Server connections the pooler opened before keep the old setting
	// (DISCARD ALL resets to it); PAUSE closes them, as RECONNECT would.
	testbed.Fault(t, bed.PausePooler(ctx))
	testbed.Fault(t, bed.ResumePooler(ctx))

	p, err := pool.New(ctx, pool.Config{AppName: appName(t), DirectURL: bed.DirectURL, PooledURL: bed.PooledURL})
	require.NoError(t, err)
	defer p.Close()
	var got string
	require.NoError(t, p.QueryRow(ctx, "SHOW search_path").Scan(&got))
	assert.Equal(t, "app_schema, public", got)
}
