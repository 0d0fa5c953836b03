package pool

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
)

// These tests hold the scanner against PostgreSQL itself: the server's
// own lexer decides where statements end and what is inside a literal or
// comment, and the scanner must agree with it.

// markSetting is the custom setting the generated statements set for real,
// or mention inside literals and comments.
const markSetting = "supapool_test.mark"

// scanStatements splits sql into statements the way classify does: at
// each ";" token of the same lexer. Statements without a token are left
// out, as the server leaves them out of its results.
func scanStatements(sql string) []string {
	lx := lexer{s: sql, qw: 1}
	var out []string
	start, tokens := 0, 0
	for {
		switch t := lx.next(); t.kind {
		case tokEOF:
			if tokens > 0 {
				out = append(out, sql[start:])
			}
			return out
		case tokSemi:
			if tokens > 0 {
				out = append(out, sql[start:lx.i-1])
			}
			start, tokens = lx.i, 0
		default:
			tokens++
		}
	}
}

// A pgCase is a generated multi-statement string and what it does when the
// server runs it.
type pgCase struct {
	sql   string
	mark  string   // the value a real SET gives markSetting
	kind  stmtKind // what classify must return: the first real session statement
	sets  bool     // some statement sets markSetting for the session
	locks bool     // some statement takes a session advisory lock
}

// pgGen builds random statements from fragments that PostgreSQL's lexer
// treats specially.
type pgGen struct {
	r    *rand.Rand
	mark string
}

// pieces are the bits payloads are made of: everything that ends or starts
// something in some context, and session statements to hide.
func (g *pgGen) pieces() []string {
	return []string{
		";", "'", "''", `"`, `\`, `\'`, "--", "/*", "*/", "$$", "$q$", "$q", "$1", "E'", "U&'",
		" ", "\n", "\r", "\t", "x", "a$b", "é",
		"set " + markSetting + " = '" + g.mark + "'",
		"select set_config('" + markSetting + "', '" + g.mark + "', false)",
		"select pg_advisory_lock(7)",
		"listen x", "reset all",
	}
}

// payload is one to six random pieces.
func (g *pgGen) payload() string {
	p := g.pieces()
	var b strings.Builder
	for n := 1 + g.r.IntN(6); n > 0; n-- {
		b.WriteString(p[g.r.IntN(len(p))])
	}
	return b.String()
}

// std quotes p as a standard string: backslashes are plain, quotes doubled.
func std(p string) string { return "'" + strings.ReplaceAll(p, "'", "''") + "'" }

// escQuote quotes p as an E string body: backslashes doubled, quotes
// written as a backslash and a quote, or as two quotes.
func (g *pgGen) escQuote(p string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			if g.r.IntN(2) == 0 {
				b.WriteString(`\'`)
			} else {
				b.WriteString("''")
			}
		default:
			b.WriteByte(p[i])
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// newlineSpace is white space with a newline, which continues a string.
func (g *pgGen) newlineSpace() string {
	return []string{"\n", " \n ", " -- c;'\n", "\r\n\t", "\n-- c\n", "\t\r"}[g.r.IntN(6)]
}

// literal is p as a string literal of a random kind.
func (g *pgGen) literal(p string) string {
	for {
		switch g.r.IntN(7) {
		case 0:
			return std(p)
		case 1:
			return "E" + g.escQuote(p)
		case 2:
			if strings.Index(p+"$$", "$$") == len(p) {
				return "$$" + p + "$$"
			}
		case 3:
			tag := fmt.Sprintf("$t%d$", g.r.IntN(3))
			if strings.Index(p+tag, tag) == len(p) {
				return tag + p + tag
			}
		case 4:
			return "U&" + std(strings.ReplaceAll(p, `\`, `\\`))
		case 5:
			k := g.cut(p)
			return std(p[:k]) + g.newlineSpace() + std(p[k:])
		case 6:
			k := g.cut(p)
			return "e" + g.escQuote(p[:k]) + g.newlineSpace() + g.escQuote(p[k:])
		}
	}
}

// cut is a random place to split p, not inside a UTF-8 sequence: the
// server checks each piece's encoding.
func (g *pgGen) cut(p string) int {
	k := g.r.IntN(len(p) + 1)
	for k < len(p) && p[k]&0xc0 == 0x80 {
		k++
	}
	return k
}

// comment is a random comment whose text is a payload: a line comment
// ended by \n or \r, or a block comment with a nested one.
func (g *pgGen) comment() string {
	p := g.payload()
	if g.r.IntN(2) == 0 {
		p = strings.NewReplacer("\n", " ", "\r", " ").Replace(p)
		return "--" + p + []string{"\n", "\r"}[g.r.IntN(2)]
	}
	// After each "/" or "*" a space, so the text opens and closes
	// nothing; the nesting is explicit.
	safe := strings.NewReplacer("/", "/ ", "*", "* ")
	p = safe.Replace(p)
	if g.r.IntN(2) == 0 {
		return "/*" + p + "/*" + safe.Replace(g.payload()) + "*/" + "*/"
	}
	return "/*" + p + "*/"
}

// gap is what separates tokens: white space or a comment.
func (g *pgGen) gap() string {
	switch g.r.IntN(4) {
	case 0:
		return g.comment()
	case 1:
		return " " + g.comment() + " "
	default:
		return []string{" ", "\n", "\t ", "\r"}[g.r.IntN(4)]
	}
}

// selectStmt is select <literal> [|| <literal>] [as <identifier>].
func (g *pgGen) selectStmt() string {
	s := "select" + g.gap() + g.literal(g.payload())
	if g.r.IntN(3) == 0 {
		s += g.gap() + "||" + g.gap() + g.literal(g.payload())
	}
	switch g.r.IntN(4) {
	case 0:
		s += g.gap() + "as" + g.gap() + `"` + strings.ReplaceAll(g.payload(), `"`, `""`) + `"`
	case 1:
		// "$" inside an identifier starts no dollar quote.
		s += g.gap() + "as" + g.gap() + []string{"a$$b", "c$", "e$1", "x$q$"}[g.r.IntN(4)]
	}
	return s
}

// realStmt is a statement that does something to the session, or that
// looks as if it did and does not; it returns the kind classify must see
// and what the server does.
func (g *pgGen) realStmt() (sql string, kind stmtKind, sets, locks bool) {
	m := g.mark
	switch g.r.IntN(9) {
	case 0:
		return "set " + markSetting + " =" + g.gap() + std(m), setStmt, true, false
	case 1:
		return "SET" + g.gap() + markSetting + " TO " + std(m), setStmt, true, false
	case 2:
		return "select pg_catalog.set_config" + g.gap() + "('" + markSetting + "', " + std(m) + ", false)", setConfigStmt, true, false
	case 3:
		return "select pg_advisory_lock" + g.gap() + "(7)", advisoryLockStmt, false, true
	case 4:
		return "do $d$ begin perform set_config('" + markSetting + "', " + std(m) + ", false); end $d$", setConfigStmt, true, false
	case 5:
		return "do " + std("begin set "+markSetting+" = "+std(m)+"; end"), setStmt, true, false
	case 6:
		// Transaction-local: gone when the implicit transaction ends.
		return "select set_config('" + markSetting + "', " + std(m) + ", true)", ordinary, false, false
	case 7:
		return "select pg_advisory_xact_lock(7)", ordinary, false, false
	default:
		return "do $d$ begin raise notice '%', " + g.literal(g.payload()) + "; end $d$", ordinary, false, false
	}
}

// pgCase generates one multi-statement string.
func (g *pgGen) pgCase() pgCase {
	c := pgCase{mark: g.mark}
	var b strings.Builder
	for n := 1 + g.r.IntN(4); n > 0; n-- {
		if g.r.IntN(3) == 0 {
			s, kind, sets, locks := g.realStmt()
			b.WriteString(s)
			if c.kind == ordinary {
				c.kind = kind
			}
			c.sets, c.locks = c.sets || sets, c.locks || locks
		} else {
			b.WriteString(g.selectStmt())
		}
		if n > 1 {
			b.WriteString(g.gap() + ";" + []string{"", " ", "\n", ";", "; /* empty */ ;", g.gap()}[g.r.IntN(6)])
		} else if g.r.IntN(2) == 0 {
			b.WriteString(";" + g.gap())
		}
	}
	c.sql = b.String()
	return c
}

// pgConn connects to the shared bed directly, as the app role. Its
// context ends with the test, not at a deadline, because a fuzz target's
// setup lasts as long as the fuzzing; checks set their own timeouts.
func pgConn(t testing.TB) (context.Context, *pgx.Conn) {
	bed := testbed.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	conn, err := pgx.Connect(cctx, bed.DirectURL)
	if err != nil {
		// pgx's connect errors name host, user and database, not the
		// password.
		t.Fatalf("connect to the bed: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return ctx, conn
}

// simple runs sql with the simple query protocol, which takes several
// statements and returns one result each.
func simple(ctx context.Context, conn *pgx.Conn, sql string) ([][][]byte, []string, error) {
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	rows := make([][][]byte, len(results))
	tags := make([]string, len(results))
	for i, r := range results {
		if r.Err != nil {
			return nil, nil, r.Err
		}
		for _, row := range r.Rows {
			rows[i] = append(rows[i], bytes.Join(row, []byte{0}))
		}
		tags[i] = r.CommandTag.String()
	}
	return rows, tags, nil
}

// effects is the session state a string left behind.
type effects struct {
	set    bool // markSetting holds the mark
	locked bool // the session holds an advisory lock
	temp   bool // the session has a temporary table, view or sequence
}

// any reports whether some session state is left.
func (e effects) any() bool { return e.set || e.locked || e.temp }

// sessionState reads what session state is left, with mark the value a
// real SET would have given markSetting, and then clears it all.
func sessionState(t testing.TB, ctx context.Context, conn *pgx.Conn, mark string) effects {
	t.Helper()
	var v *string
	var locks, temps int
	err := conn.QueryRow(ctx, `select current_setting($1, true),
		(select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()),
		(select count(*) from pg_class where relnamespace = pg_my_temp_schema())`, markSetting).Scan(&v, &locks, &temps)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "select set_config($1, '', false), pg_advisory_unlock_all()", markSetting)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "discard temp")
	require.NoError(t, err)
	return effects{set: v != nil && *v == mark, locked: locks > 0, temp: temps > 0}
}

// checkPgCase runs c on the server and compares with the scanner: the
// number of statements and what each returns when sent alone, the kind
// classify finds and the session state the server was left with.
func checkPgCase(t *testing.T, ctx context.Context, conn *pgx.Conn, c pgCase) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sessionState(t, ctx, conn, c.mark)
	rows, tags, err := simple(ctx, conn, c.sql)
	require.NoError(t, err, "the generator made SQL the server refuses: %q", c.sql)
	e := sessionState(t, ctx, conn, c.mark)
	assert.Equal(t, c.sets, e.set, "server set the mark: %q", c.sql)
	assert.Equal(t, c.locks, e.locked, "server took a session lock: %q", c.sql)
	assert.False(t, e.temp, "server kept a temporary table: %q", c.sql)
	assert.Equal(t, c.kind, classify(c.sql), "classify: %q", c.sql)

	stmts := scanStatements(c.sql)
	require.Len(t, stmts, len(rows), "statements: scanner %q, server %q", stmts, tags)
	for i, s := range stmts {
		r, tg, err := simple(ctx, conn, s)
		require.NoError(t, err, "statement %d alone: %q of %q", i, s, c.sql)
		require.Len(t, r, 1, "statement %d alone: %q", i, s)
		assert.Equal(t, tags[i], tg[0], "statement %d: %q", i, s)
		assert.Equal(t, rows[i], r[0], "statement %d: %q", i, s)
	}
	sessionState(t, ctx, conn, c.mark)
}

// TestScanMatchesPostgres runs 300 generated multi-statement strings (fixed
// seed) on PostgreSQL and checks that the scanner splits them as the
// server does, and classifies them by what the server did.
func TestScanMatchesPostgres(t *testing.T) {
	ctx, conn := pgConn(t)
	r := rand.New(rand.NewPCG(20261201, 78617))
	kinds := map[stmtKind]int{}
	for i := range 300 {
		g := &pgGen{r: r, mark: fmt.Sprintf("m%d", i)}
		c := g.pgCase()
		kinds[c.kind]++
		checkPgCase(t, ctx, conn, c)
		if t.Failed() {
			return
		}
	}
	// The mix must hold refusals and acceptances both.
	t.Logf("kinds found: %v", kinds)
	assert.Greater(t, kinds[ordinary], 50)
	assert.Greater(t, len(kinds), 3, "%v", kinds)
}

// FuzzScanMatchesPostgres is TestScanMatchesPostgres's check as a fuzz
// target over the generator's seed; go test runs the seeds below.
func FuzzScanMatchesPostgres(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(seed)
	}
	ctx, conn := pgConn(f)
	f.Fuzz(func(t *testing.T, seed uint64) {
		g := &pgGen{r: rand.New(rand.NewPCG(seed, seed>>1)), mark: fmt.Sprintf("f%d", seed)}
		checkPgCase(t, ctx, conn, g.pgCase())
	})
}

// TestScanSkipsLikePostgres sends statements where the lexer's corner
// cases decide whether session state is left (a setting, a session
// advisory lock, a temporary object), and checks that the server and the
// scanner agree on it.
func TestScanSkipsLikePostgres(t *testing.T) {
	ctx, conn := pgConn(t)
	const set = "set " + markSetting + " = 'MARK'"
	quoted := strings.ReplaceAll(set, "'", "''")
	for _, tc := range []struct {
		name string
		sql  string
		kind stmtKind // ordinary exactly when the server leaves no state
	}{
		{"line comment ended by CR", "select 1; -- x\r" + set, setStmt},
		{"line comment to the end", "select 1; -- x " + set, ordinary},
		{"E string escaped quote", `select E'\'; ` + quoted + `; --'`, ordinary},
		{"standard string backslash", `select '\'; ` + set + `; --'`, setStmt},
		{"E string continued", "select E'a'\n'\\'; " + quoted + "; --'", ordinary},
		{"standard string continued", "select 'a'\n'\\'; " + set + "; --'", setStmt},
		{"E string not continued on one line", "select E'a' as x; " + set, setStmt},
		{"U& string backslash", `select U&'\\'; ` + set, setStmt},
		{"tagged dollar quote", "select $q$ $$; " + set + "; $q$", ordinary},
		{"dollar in identifiers", "select 1 as a$$b; " + set + "; select 1 as c$$", setStmt},
		{"nested comment", "select 1 /* /* */ ; " + set + "; */", ordinary},
		{"nested comment closed", "select 1 /* /* */ */ ; " + set, setStmt},
		{"quoted identifier", `select 1 as "; ` + strings.ReplaceAll(set, "'", "") + `"`, ordinary},
		{"quoted set_config", `select "set_config"('` + markSetting + `', 'MARK', false)`, setConfigStmt},
		{"commented set_config", `select pg_catalog.set_config /* ( */ ('` + markSetting + `', 'MARK', 1 = 0)`, setConfigStmt},
		{"set_config true", `select set_config('` + markSetting + `', 'MARK', true)`, ordinary},
		{"DO set_config", `do $$ begin perform set_config('` + markSetting + `', 'MARK', false); end $$`, setConfigStmt},
		{"DO quoted body", `do 'begin raise notice ''/*''; ` + quoted + `; end -- */'`, setStmt},
		{"DO set in string", `do $$ begin raise notice '%', '` + quoted + `'; end $$`, ordinary},
		{"DO set after then", `do $$ begin if true then ` + set + `; end if; end $$ language plpgsql`, setStmt},
		{"quoted lock name", `select "pg_advisory_lock" /* ( */ (7)`, advisoryLockStmt},
		{"qualified lock name", `select pg_catalog.pg_try_advisory_lock(7)`, advisoryLockStmt},
		{"U& lock name", `select U&"pg_advisory\005flock"(7)`, advisoryLockStmt},
		{"U& lock name with UESCAPE", `select U&"pg_advisory!005flock" UESCAPE '!' (7)`, advisoryLockStmt},
		{"lock name in string", `select 'pg_advisory_lock(7)'`, ordinary},
		{"xact lock", `select pg_advisory_xact_lock(7)`, ordinary},
		{"DO lock", `do $$ begin perform pg_advisory_lock(7); end $$`, advisoryLockStmt},
		{"temp on commit drop", `create temp table t (id int) on commit drop`, ordinary},
		{"temp on commit drop in comment", `create temp table t (id int) /* on commit drop */`, tempTableStmt},
		{"temp on commit drop in string", `create temp table t (note text default 'on commit drop')`, tempTableStmt},
		{"temp on commit delete rows", `create temp table t (id int) on commit delete rows`, tempTableStmt},
		{"temp view", `create or replace temp view v as select 1`, tempTableStmt},
		{"temp sequence", `create temp sequence s`, tempTableStmt},
		{"local temp", `create local temp table t (id int)`, tempTableStmt},
		{"pg_temp table", `create table pg_temp.t (id int)`, tempTableStmt},
		{"select into temp", `select 1 as a into temp t`, tempTableStmt},
		{"select into temporary table", `select 1 as a into temporary table t`, tempTableStmt},
		{"select into unlogged", `select 1 as a into unlogged supapool_scan_u; drop table supapool_scan_u`, ordinary},
		{"temp after select", `select 1; create temp table t (id int)`, tempTableStmt},
		{"DO temp", `do $$ begin create temp table t (id int); end $$`, tempTableStmt},
		{"DO temp on commit drop", `do $$ begin create temp table t (id int) on commit drop; end $$`, ordinary},
		{"NUL ends comment", "create temp table t (id int) -- \x00\n on commit drop", tempTableStmt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			sessionState(t, ctx, conn, "MARK")
			_, _, err := simple(ctx, conn, tc.sql)
			if strings.IndexByte(tc.sql, 0) >= 0 {
				// The server refuses the message; the scanner classifies
				// the text before the NUL, which is what the extended
				// protocol's Parse would take.
				require.Error(t, err)
				_, _, err = simple(ctx, conn, tc.sql[:strings.IndexByte(tc.sql, 0)])
			}
			require.NoError(t, err, "%q", tc.sql)
			e := sessionState(t, ctx, conn, "MARK")
			assert.Equal(t, tc.kind != ordinary, e.any(), "server left %+v: %q", e, tc.sql)
			assert.Equal(t, tc.kind, classify(tc.sql), "%q", tc.sql)
		})
	}
}

// TestScanUpdatePgSettings checks that UPDATE pg_settings, which the
// scanner refuses as SET, does set a parameter for the session (custom
// placeholders are not in pg_settings, so application_name stands in).
func TestScanUpdatePgSettings(t *testing.T) {
	ctx, conn := pgConn(t)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sql := `update pg_catalog.pg_settings set setting = 'scan_mark' where name = 'application_name'`
	_, _, err := simple(ctx, conn, sql)
	require.NoError(t, err)
	var v string
	require.NoError(t, conn.QueryRow(ctx, "select current_setting('application_name')").Scan(&v))
	_, err = conn.Exec(ctx, "reset application_name")
	require.NoError(t, err)
	assert.Equal(t, "scan_mark", v, "the update outlives its statement")
	assert.Equal(t, setStmt, classify(sql))
}
