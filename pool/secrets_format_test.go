package pool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/supapool/supapool/pool"
)

const fmtPW = "fmt-S3cret-PW"

// secretConfig sets every field, the URLs with passwords in the forms a
// user may write them.
func secretConfig() pool.Config {
	return pool.Config{
		AppName:             "web",
		DirectURL:           "postgres://postgres:" + fmtPW + "@db.ref.supabase.co:5432/postgres?sslmode=require",
		PooledURL:           "postgres://postgres.ref@aws-0-eu-west-1.pooler.supabase.com:6543/postgres?password=" + fmtPW + "&pgbouncer=true",
		PooledMode:          pool.TransactionPooler,
		MaxConns:            5,
		MaxDirectConns:      2,
		TxRoute:             pool.Pooled,
		AcquireTimeout:      3 * time.Second,
		MaxConnIdleTime:     time.Minute,
		YieldAfter:          -1,
		ConfigurePooled:     func(*pgxpool.Config) error { return nil },
		Logger:              zap.NewNop(),
		ListenerQueueSize:   8,
		OnListenerReconnect: func(context.Context) {},
		ListenerHeartbeat:   time.Second,
	}
}

func TestConfigFormatsRedacted(t *testing.T) {
	cfg := secretConfig()
	keyword := pool.Config{DirectURL: "host=h user=u password='" + fmtPW + "' dbname=d"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10s", "%-8v", "%#q"} {
		for name, c := range map[string]pool.Config{"url": cfg, "keyword": keyword} {
			t.Run(verb+" "+name, func(t *testing.T) {
				for _, out := range []string{
					fmt.Sprintf(verb, c),
					fmt.Sprintf(verb, &c),
					fmt.Sprintf(verb, []pool.Config{c}),
					fmt.Sprintf(verb, struct{ C pool.Config }{c}),
					fmt.Sprintf(verb, map[string]any{"c": c}),
				} {
					assert.NotContains(t, out, fmtPW)
				}
			})
		}
	}
	t.Run("Sprint and Sprintln", func(t *testing.T) {
		assert.NotContains(t, fmt.Sprint(cfg), fmtPW)
		assert.NotContains(t, fmt.Sprintln(cfg, &cfg), fmtPW)
	})
}

func TestConfigStringShowsFields(t *testing.T) {
	cfg := secretConfig()
	s := fmt.Sprint(cfg)
	for _, want := range []string{
		"AppName:web",
		"DirectURL:postgres://postgres:xxxxx@db.ref.supabase.co:5432/postgres?sslmode=require",
		"password=xxxxx&pgbouncer=true",
		"PooledMode:transaction", "MaxConns:5", "TxRoute:pooled", "ExecMode:default",
		"AcquireTimeout:3s", "YieldAfter:-1ns",
		"ConfigurePooled:set", "ConfigureDirect:unset", "Logger:set",
		"OnListenerReconnect:set", "OnListenerGap:unset", "ListenerHeartbeat:1s",
	} {
		assert.Contains(t, s, want)
	}
	assert.Equal(t, s, fmt.Sprintf("%v", cfg))
	assert.Equal(t, s, fmt.Sprintf("%+v", cfg))
	assert.Equal(t, fmt.Sprintf("%q", s), fmt.Sprintf("%q", cfg))

	g := fmt.Sprintf("%#v", cfg)
	assert.True(t, strings.HasPrefix(g, "pool.Config{AppName:\"web\", DirectURL:\"postgres://postgres:xxxxx@"), g)
	for _, want := range []string{`ConfigurePooled:(func(*pgxpool.Config) error)(set)`, `ConfigureDirect:nil`, `Logger:(*zap.Logger)(set)`, `TxRoute:1`, `MaxConns:5`} {
		assert.Contains(t, g, want)
	}
	assert.Contains(t, fmt.Sprintf("%d", cfg), "%!d(pool.Config={AppName:web")

	zero := fmt.Sprint(pool.Config{})
	assert.Contains(t, zero, "DirectURL: PooledURL: PooledMode:detect")
	assert.Contains(t, zero, "TxRoute:default")
	assert.Contains(t, zero, "Logger:unset")
}

// A field added to Config must be added to its String too.
func TestConfigStringNamesEveryField(t *testing.T) {
	s := " " + strings.TrimPrefix(fmt.Sprint(pool.Config{}), "{")
	typ := reflect.TypeOf(pool.Config{})
	for i := 0; i < typ.NumField(); i++ {
		if f := typ.Field(i); f.IsExported() {
			assert.Contains(t, s, " "+f.Name+":", "String misses %s", f.Name)
		}
	}
}

func TestConfigLogsRedacted(t *testing.T) {
	cfg := secretConfig()
	t.Run("zap JSON", func(t *testing.T) {
		var buf bytes.Buffer
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel))
		log.Info("config", zap.Object("config", cfg), zap.Any("any", cfg), zap.Stringer("str", cfg), zap.Reflect("reflect", cfg))
		require.NoError(t, log.Sync())
		assert.NotContains(t, buf.String(), fmtPW)
		var line map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &line), buf.String())
		obj, ok := line["config"].(map[string]any)
		require.True(t, ok, "config is not an object in %s", buf.String())
		assert.Equal(t, "postgres://postgres:xxxxx@db.ref.supabase.co:5432/postgres?sslmode=require", obj["direct_url"])
		assert.Equal(t, "set", obj["configure_pooled"])
		assert.Equal(t, "unset", obj["on_listener_gap"])
		assert.EqualValues(t, 5, obj["max_conns"])
		assert.Equal(t, obj, line["any"], "zap.Any uses MarshalLogObject")
	})
	t.Run("zap observer", func(t *testing.T) {
		core, logs := observer.New(zap.DebugLevel)
		zap.New(core).Info("config", zap.Object("config", cfg))
		assert.NotContains(t, fmt.Sprint(logs.All()[0].ContextMap()), fmtPW)
	})
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(h(&buf)).Info("config", "config", cfg, slog.Any("ptr", &cfg))
			assert.NotContains(t, buf.String(), fmtPW)
			assert.Contains(t, buf.String(), "xxxxx")
			if name == "slog JSON" {
				var line map[string]any
				require.NoError(t, json.Unmarshal(buf.Bytes(), &line), buf.String())
				obj, ok := line["config"].(map[string]any)
				require.True(t, ok, "config is not an object in %s", buf.String())
				assert.Equal(t, "web", obj["app_name"])
				assert.Equal(t, "set", obj["logger"])
				assert.Equal(t, "pooled", obj["tx_route"])
			}
		})
	}
}

// What (*Pool).Config returns formats as redacted as the Config given.
func TestPoolConfigFormatsRedacted(t *testing.T) {
	cfg := secretConfig()
	p, err := pool.New(context.Background(), cfg)
	require.NoError(t, err)
	defer p.Close()
	got := p.Config()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		assert.NotContains(t, fmt.Sprintf(verb, got), fmtPW, verb)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cfg", got)
	assert.NotContains(t, buf.String(), fmtPW)
}
