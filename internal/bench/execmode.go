package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Query is one statement a load runs with QueryRow: Args gives the
// arguments of call q, Dest where its one row goes.
type Query struct {
	Name string
	SQL  string
	Args func(q int) []any
	Dest func() []any
}

// Trivial is a query that costs nothing to plan or run.
var Trivial = Query{
	Name: "select $1::int + 1",
	SQL:  "select $1::int + 1",
	Args: func(q int) []any { return []any{q} },
	Dest: func() []any { var n int; return []any{&n} },
}

// CatalogJoin joins three catalog tables and groups: cheap to run, costly
// to plan, so it shows what named (planned once) statements save.
var CatalogJoin = Query{
	Name: "3-table catalog join with grouping",
	SQL: `select c.relname, count(a.attname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid
where n.nspname = 'pg_catalog' and c.relname = $1
group by c.relname`,
	Args: func(q int) []any { return []any{[...]string{"pg_class", "pg_type", "pg_proc", "pg_attribute"}[q%4]} },
	Dest: func() []any {
		var s string
		var n int64
		return []any{&s, &n}
	},
}

// LoadQuery runs goroutines × queries of q on p and counts outcomes.
func LoadQuery(ctx context.Context, p Execer, goroutines, queries int, q Query) Result {
	var total, failed atomic.Int64
	var mu sync.Mutex
	codes := map[string]int64{}
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dest := q.Dest()
			for i := 0; i < queries; i++ {
				total.Add(1)
				if err := p.QueryRow(ctx, q.SQL, q.Args(g*queries+i)...).Scan(dest...); err != nil {
					failed.Add(1)
					mu.Lock()
					codes[ErrCode(err)]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return Result{Queries: total.Load(), Errors: failed.Load(), Codes: codes, Elapsed: time.Since(start)}
}
