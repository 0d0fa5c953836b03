package integrations_test

import (
	"strings"
	"testing"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/supapool/supapool/pool"
)

// otelpgx's tracer goes in the route hooks, where supapool hands over
// each route's pgxpool configuration before opening it. The same tracer
// may serve both routes. Routing is supapool's and runs before pgx: a
// statement the pooled route refuses never reaches pgx, so it has no span.
func TestOpenTelemetry(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = provider.Shutdown(testCtx(t)) })

	tracer := otelpgx.NewTracer(
		otelpgx.WithTracerProvider(provider), // default: otel.GetTracerProvider()
		otelpgx.WithQuerySpanNamePrefix(),    // "query SELECT", "prepare SELECT", ...
	)
	trace := func(c *pgxpool.Config) error {
		c.ConnConfig.Tracer = tracer
		return nil
	}
	p, _ := newPool(t, "integ-otel", func(c *pool.Config) {
		c.ConfigurePooled = trace
		c.ConfigureDirect = trace
	})
	exec(t, p, "DROP TABLE IF EXISTS integ_otel_events", "CREATE TABLE integ_otel_events (id bigserial PRIMARY KEY, kind text NOT NULL)")
	exporter.Reset()

	// otelpgx records spans only under a recording span, as a request's
	// span would be in a service.
	ctx, request := provider.Tracer("integ").Start(testCtx(t), "handle request")
	const (
		insert = "insert into integ_otel_events (kind) values ($1)"
		count  = "select count(*) from integ_otel_events where kind = $1"
		inTx   = "update integ_otel_events set kind = $1 where kind = $2"
	)
	_, err := p.Exec(ctx, insert, "signup")
	require.NoError(t, err)
	var n int
	require.NoError(t, p.QueryRow(ctx, count, "signup").Scan(&n))
	assert.Equal(t, 1, n)
	tx, err := p.Begin(ctx) // the direct route, traced by ConfigureDirect
	require.NoError(t, err)
	_, err = tx.Exec(ctx, inTx, "welcomed", "signup")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	// A tracer changes nothing in routing.
	_, err = p.Exec(ctx, "SET statement_timeout = 0")
	assert.ErrorIs(t, err, pool.ErrSessionStatement)
	request.End()

	spans := exporter.GetSpans()
	byStatement := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		if !strings.HasPrefix(s.Name, "query ") {
			continue // connect, acquire and, for CacheDescribe on the pooled route, prepare spans
		}
		for _, a := range s.Attributes {
			if a.Key == attribute.Key("db.query.text") {
				byStatement[a.Value.AsString()] = append(byStatement[a.Value.AsString()], s)
			}
		}
	}
	for _, stmt := range []string{insert, count, "begin", inTx, "commit"} {
		got := byStatement[stmt]
		if assert.Len(t, got, 1, "one span for %q", stmt) {
			assert.Equal(t, request.SpanContext().SpanID(), got[0].Parent.SpanID(), "%q is a child of the request's span", stmt)
			assert.Equal(t, request.SpanContext().TraceID(), got[0].SpanContext.TraceID())
		}
	}
	for stmt := range byStatement {
		assert.NotContains(t, strings.ToLower(stmt), "statement_timeout", "the refused SET never reached pgx")
	}
	if t.Failed() {
		for _, s := range spans {
			t.Logf("span %q %v", s.Name, s.Attributes)
		}
	}
}
