package pool

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		sql  string
		want stmtKind
	}{
		{"select 1", ordinary},
		{"", ordinary},
		{"   ", ordinary},
		{"LISTEN orders", listenStmt},
		{"listen \"Odd Name\"", listenStmt},
		{"-- a comment\nlisten x", listenStmt},
		{"/* block /* nested */ */ LISTEN x", listenStmt},
		{"\n\t unlisten *", unlistenStmt},
		{"SET search_path = app", setStmt},
		{"set session authorization bob", setStmt},
		{"SET LOCAL statement_timeout = 5", ordinary},
		{"set transaction isolation level serializable", ordinary},
		{"SET CONSTRAINTS ALL DEFERRED", ordinary},
		{"RESET ALL", resetStmt},
		{"PREPARE q AS select 1", prepareStmt},
		{"PREPARE TRANSACTION 'x'", ordinary},
		{"DECLARE c CURSOR WITH HOLD FOR select 1", declareHoldStmt},
		{"declare c cursor without hold for select 1", ordinary},
		{"DECLARE c CURSOR FOR select hold from t", ordinary},
		{"CREATE TEMP TABLE t (id int)", tempTableStmt},
		{"create temporary table t (id int)", tempTableStmt},
		{"CREATE GLOBAL TEMPORARY TABLE t (id int)", tempTableStmt},
		{"CREATE TEMP TABLE t (id int) ON COMMIT DROP", ordinary},
		{"create temp table t (id int) on\n commit   drop", ordinary},
		{"CREATE TABLE t (id int)", ordinary},
		{"select pg_advisory_lock(1)", advisoryLockStmt},
		{"SELECT PG_TRY_ADVISORY_LOCK(1)", advisoryLockStmt},
		{"select pg_advisory_unlock_all()", advisoryLockStmt},
		{"with x as (select 1) select pg_advisory_lock_shared(2)", advisoryLockStmt},
		{"select pg_advisory_xact_lock(1)", ordinary},
		{"select pg_try_advisory_xact_lock_shared(1)", ordinary},
		{"select pg_advisory_lock (1)", advisoryLockStmt},
		{"select pg_catalog.pg_advisory_lock(1)", advisoryLockStmt},
		{"select * from advisory_locks where id = $1", ordinary},
		{"update t set advisory_locked = true", ordinary},
		{"insert into audit(msg) values ('called pg_advisory_lock(1)')", ordinary},
		{"insert into audit(msg) values ('it''s pg_advisory_lock(1)')", ordinary},
		{"/* pg_advisory_lock(1) is not used */ select 1", ordinary},
		{"select 1 -- pg_advisory_lock(1)", ordinary},
		{"select $$pg_advisory_lock(1)$$", ordinary},
		{"select $q$ pg_advisory_lock(1) $q$, $1", ordinary},
		{"select pg_advisory_lock_id from t", ordinary},
		{"DISCARD ALL", discardStmt},
		{"LOAD 'auto_explain'", loadStmt},
		{"select 'listen'", ordinary},
		{"listener_table", ordinary},
		{"select 1; listen x", listenStmt}, // every statement is classified
		{"(select 1)", ordinary},
		{"'quoted' listen", ordinary},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			assert.Equal(t, tt.want, classify(tt.sql))
		})
	}
}

// The check runs on every query, so it must not allocate when the
// statement is accepted: not for multi-statement strings, DO blocks (whose
// bodies get a lexer of their own) or set_config calls either, nor for any
// accepted case of TestClassifyReview.
func TestClassifyDoesNotAllocate(t *testing.T) {
	sqls := []string{
		"/* app */ select id, name from users where id = $1 and org = $2",
		"select 1; select 'a;b' -- c\r; select E'it\\'s'; select $t$;$t$",
		"begin; set local search_path = app; select set_config('a.b', 'c', true); commit",
		"do $$ begin perform pg_advisory_xact_lock(1); update t set a = 1; end $$ language plpgsql",
		"do 'begin raise notice ''set x''; end'",
		"create temp table t (id int) on commit drop; select * into unlogged u from t",
		`select U&"d\0061t" from t where "pg_advisory_lock" = 1`,
		`select U&"d\0061t"(1), U&"x!0061" UESCAPE '!' (2)`,
		`create table pg_temp_12.x (a int) on commit drop`,
	}
	for _, tc := range reviewCases {
		if tc.want == ordinary {
			sqls = append(sqls, tc.sql)
		}
	}
	for _, sql := range sqls {
		if k := classify(sql); k != ordinary {
			t.Fatalf("%q: refused as %v", sql, k)
		}
		allocs := testing.AllocsPerRun(100, func() {
			if classify(sql) != ordinary {
				t.Fatal("refused an ordinary query")
			}
		})
		assert.Zero(t, allocs, "classify %q", sql)
		allocs = testing.AllocsPerRun(100, func() {
			if routeQuery(sql) != nil {
				t.Fatal("refused an ordinary query")
			}
		})
		assert.Zero(t, allocs, "routeQuery %q", sql)
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"listen x", "/* */ set x=1", "-- \nselect", "/*", "--", "create temp", "declare c with hold", "advisory_",
		"select E'\\''; set x = 1", "do $$ begin set x = 1; end $$", "select set_config('a', 'b', true); select 1", "select 'a'\n'b'; listen x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		k := classify(sql) // must not panic or loop
		if k != ordinary {
			assert.NotEmpty(t, k.hint())
		}
		c := &kindCache{max: 1, maxText: 1 << 10}
		assert.Equal(t, k, c.classify(sql), "cache miss")
		assert.Equal(t, k, c.classify(sql), "cache hit")
		// Statements are classified on their own: the text's kind is
		// the first kind among its statements sent one by one.
		if i := strings.IndexByte(sql, 0); i >= 0 {
			sql = sql[:i]
		}
		want := ordinary
		for _, s := range scanStatements(sql) {
			if want = classify(s); want != ordinary {
				break
			}
		}
		assert.Equal(t, want, k, "%q", sql)
	})
}

func BenchmarkRouteQuery(b *testing.B) {
	sql := "select id, name, email from users where id = $1"
	for i := 0; i < b.N; i++ {
		_ = routeQuery(sql)
	}
}

// Startup parameters that would make the server read SQL differently from
// the scanner are refused on the pooled route at New.
func TestLexerSafeStartupParameters(t *testing.T) {
	for _, tc := range []struct {
		query string
		bad   string // "" when accepted
	}{
		{"", ""},
		{"client_encoding=UTF8", ""},
		{"client_encoding=LATIN1", ""},
		{"standard_conforming_strings=on", ""},
		{"standard_conforming_strings=off", "standard_conforming_strings"},
		{"client_encoding=SJIS", "client_encoding"},
		{"client_encoding=gb18030", "client_encoding"},
		{"client_encoding=BIG5", "client_encoding"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			url := "postgres://u:pw@127.0.0.1:6543/db?pgbouncer=true&" + tc.query
			p, err := New(context.Background(), Config{AppName: "web", DirectURL: "postgres://u:pw@127.0.0.1:5432/db", PooledURL: url})
			if tc.bad == "" {
				require.NoError(t, err)
				p.Close()
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "PooledURL (DATABASE_POOLED_URL)")
			assert.Contains(t, err.Error(), tc.bad)
		})
	}
}
