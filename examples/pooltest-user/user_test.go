// Package user is a service's test, written outside the supapool module as
// a user would: pool/pooltest starts the servers, pool connects to both.
package user

import (
	"context"
	"testing"
	"time"

	"github.com/supapool/supapool/pool"
	"github.com/supapool/supapool/pool/pooltest"
)

func TestBothURLs(t *testing.T) {
	srv := pooltest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := pool.New(ctx, pool.Config{AppName: "user", DirectURL: srv.DirectURL, PooledURL: srv.PooledURL})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, route := range []pool.Route{pool.Direct, pool.Pooled} {
		c, err := p.Acquire(ctx, route)
		if err != nil {
			t.Fatal(err)
		}
		var one int
		err = c.QueryRow(ctx, "select 1").Scan(&one)
		c.Release()
		if err != nil || one != 1 {
			t.Fatalf("%v: select 1 = %d, %v", route, one, err)
		}
	}
}
