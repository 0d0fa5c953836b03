package pool_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/pool"
)

const newPW = "new-S3cret/PW 'q' \\b"

// New opens no connection, so this needs no server; it goes through
// pgxpool.ParseConfig for both routes.
func TestSecretsNotInNewLog(t *testing.T) {
	kv := "'" + escapeKV(newPW) + "'"
	tests := []struct{ name, direct, pooled, wantDirect string }{
		{"urls", "postgres://app:" + url.QueryEscape(newPW) + "@db.example.com:5432/app?sslmode=disable",
			"postgres://app:" + url.PathEscape(newPW) + "@pooler.example.com:6432/app?pgbouncer=true",
			"postgres://app:xxxxx@db.example.com:5432/app?sslmode=disable"},
		{"query password", "postgres://app@db.example.com/app?password=" + url.QueryEscape(newPW), "",
			"postgres://app@db.example.com/app?password=xxxxx"},
		{"keyword", "host=db.example.com user=app password=" + kv + " dbname=app", "",
			"host=db.example.com user=app password=xxxxx dbname=app"},
		{"keyword spaced", "host=db.example.com password = " + kv + " dbname=app", "",
			"host=db.example.com password = xxxxx dbname=app"},
		{"socket", "postgres://app:" + url.QueryEscape(newPW) + "@/app?host=/run/postgresql", "",
			"postgres://app:xxxxx@/app?host=%2Frun%2Fpostgresql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			p, err := pool.New(context.Background(), pool.Config{AppName: "web", DirectURL: tt.direct, PooledURL: tt.pooled, Logger: zap.New(core)})
			require.NoError(t, err)
			p.Close()
			ready := logs.FilterMessage("supapool: pool ready").All()
			require.Len(t, ready, 1)
			assert.Equal(t, tt.wantDirect, ready[0].ContextMap()["direct_url"])
			for _, e := range logs.All() {
				line := e.Message + " " + fmt.Sprint(e.ContextMap())
				for _, form := range []string{newPW, url.QueryEscape(newPW), url.PathEscape(newPW), escapeKV(newPW)} {
					assert.NotContains(t, line, form)
				}
			}
		})
	}
}

func escapeKV(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
