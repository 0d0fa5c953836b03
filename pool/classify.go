package pool

import (
	"fmt"
	"strings"

	"github.com/supapool/supapool/internal/redact"
)

// This file is the SQL scanner that decides whether a statement sent on
// the pooled route needs a session. Its lexer follows PostgreSQL's
// (src/backend/parser/scan.l) for everything it skips: white space, "--"
// comments ended by \n or \r, nested /* */ comments, '...' strings with
// '' escapes (standard_conforming_strings on), E'...' strings with
// backslash escapes, U&'...', b'...', x'...' and n'...' strings, string
// continuation across a newline, $tag$ dollar quotes, "quoted identifiers"
// and U&"..." identifiers. It splits the text into statements at every
// semicolon outside those, and classifies every statement, so that
// "select 1; set x = 1" is refused like "set x = 1".
//
// The scan is one forward pass over the text, allocation free: the lexer
// never moves backwards, lookahead (a dollar tag, a string continued on
// the next line) resumes where it stopped, and the checks that span tokens
// are state machines fed one token at a time. The body of a DO block is
// read once more, as its own text, by a second lexer; a DO inside a DO
// body is refused rather than read a third time. So each byte is looked at
// a small bounded number of times and the cost is linear in the length of
// the SQL, whatever it holds (BenchmarkClassifyAdversarial).
//
// What it cannot see: functions and procedures that change session state
// when called (a user function that calls pg_advisory_lock, a CALL), and
// what dynamic SQL would run. Dynamic SQL in a DO block (EXECUTE) is
// refused; functions called by name are not looked into.
//
// Where it is unsure it refuses: a quoted "PG_ADVISORY_LOCK"(1) names
// another function than pg_advisory_lock(1) but is refused like it;
// set_config's third argument must be the keyword true itself; in a DO
// body a statement is taken to start after ";", BEGIN, THEN, ELSE, LOOP,
// DECLARE, EXCEPTION and a <<label>>, and INTO TEMP is refused even where
// plpgsql would read temp as a variable; the ";" inside a BEGIN ATOMIC
// function body splits it like any other, and each piece is classified.
//
// What it assumes: standard_conforming_strings is on (the default since
// PostgreSQL 9.1, and Supabase's), so that backslashes escape only in
// E'...' strings; and a client encoding in which every byte below 0x80 is
// that ASCII character, as in UTF8 and the LATIN encodings but not SJIS,
// BIG5, GBK or GB18030, whose second bytes may be a quote or backslash.

// stmtKind is what a statement needs: nothing (ordinary) or a session.
type stmtKind int

const (
	ordinary stmtKind = iota
	listenStmt
	unlistenStmt
	setStmt
	resetStmt
	prepareStmt
	declareHoldStmt
	tempTableStmt
	advisoryLockStmt
	discardStmt
	loadStmt
	setConfigStmt   // set_config(name, value, is_local) without a literal true
	dynamicSQLStmt  // EXECUTE in a DO block
	uncheckedDoStmt // a DO block whose body this scanner cannot read
	lastStmtKind    // not a kind: the number of kinds
)

// kindNames are the kinds' String values, indexed by kind.
var kindNames = [lastStmtKind]string{
	ordinary:         "",
	listenStmt:       "LISTEN",
	unlistenStmt:     "UNLISTEN",
	setStmt:          "SET",
	resetStmt:        "RESET",
	prepareStmt:      "PREPARE",
	declareHoldStmt:  "DECLARE ... WITH HOLD",
	tempTableStmt:    "CREATE TEMP",
	advisoryLockStmt: "session advisory lock",
	discardStmt:      "DISCARD",
	loadStmt:         "LOAD",
	setConfigStmt:    "set_config(..., is_local => false)",
	dynamicSQLStmt:   "DO with EXECUTE",
	uncheckedDoStmt:  "DO block that cannot be checked",
}

// String names the statement for SessionStatementError.
func (k stmtKind) String() string {
	if k < 0 || k >= lastStmtKind {
		return "unknown"
	}
	return kindNames[k]
}

// hint says what to do instead of sending the statement on the pooled
// route.
func (k stmtKind) hint() string {
	switch k {
	case listenStmt, unlistenStmt:
		return "use p.Listener().Listen, which keeps one direct connection for notifications"
	case setStmt, resetStmt:
		return "use SET LOCAL inside a transaction, a connection parameter in the URL, or Acquire(ctx, pool.Direct)"
	case prepareStmt:
		return "pgx prepares statements itself on every route; for SQL-level PREPARE use Acquire(ctx, pool.Direct)"
	case declareHoldStmt:
		return "use a cursor without HOLD inside a transaction, or Acquire(ctx, pool.Direct)"
	case tempTableStmt:
		return "create it with ON COMMIT DROP inside one transaction, or use Acquire(ctx, pool.Direct)"
	case advisoryLockStmt:
		return "use pg_advisory_xact_lock inside a transaction, or Acquire(ctx, pool.Direct)"
	case setConfigStmt:
		return "pass the literal true as set_config's third argument inside a transaction, or use Acquire(ctx, pool.Direct)"
	case dynamicSQLStmt:
		return "what EXECUTE runs cannot be checked: write the statements out in the DO block, or use Acquire(ctx, pool.Direct)"
	case uncheckedDoStmt:
		return "write the DO body in plpgsql between dollar quotes ($$ ... $$), or use Acquire(ctx, pool.Direct)"
	default:
		return "use Acquire(ctx, pool.Direct)"
	}
}

// classify returns the first statement kind in sql that needs a session,
// or ordinary. Every statement of a multi-statement string is looked at.
func classify(sql string) stmtKind {
	// The server reads a query string up to its first NUL byte: what
	// follows is never SQL (PostgreSQL 15 refuses such a message as
	// "invalid message format"), and a NUL ends a comment or string early,
	// so the text before it is what counts.
	if i := strings.IndexByte(sql, 0); i >= 0 {
		sql = sql[:i]
	}
	sc := stmtScan{lx: lexer{s: sql, qw: 1}}
	return sc.run()
}

// sessionLockFuncs are the advisory lock functions whose locks outlive the
// transaction; the _xact_ forms are fine.
var sessionLockFuncs = [...]string{
	"pg_advisory_lock", "pg_advisory_lock_shared",
	"pg_try_advisory_lock", "pg_try_advisory_lock_shared",
	"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
}

// A stmtScan classifies the statements of one text: the SQL sent by the
// caller, or (body set) the plpgsql body of a DO block. It reads each token
// from its lexer once, in order; the checks that span tokens (function
// calls, SELECT ... INTO TEMP, set_config's arguments) are small state
// machines fed by next.
type stmtScan struct {
	lx   lexer
	body bool     // a plpgsql body: BEGIN, THEN, LOOP, ... start statements too
	kind stmtKind // the first refusal found by the token checks
	last tokKind  // the kind of the token next returned last

	hist  [3]token // the token next returned last, and the two before it
	depth int      // parentheses open in this statement

	// call is a name that may be a function's, waiting for its "(".
	call struct {
		set   bool
		name  token
		stage int  // 0 after the name, 1 after its UESCAPE, 2 after UESCAPE's string
		esc   byte // the escape character of a U&"..." name
	}

	// cfg follows the arguments of a set_config call.
	cfg struct {
		active bool
		depth  int  // parentheses open outside the call
		arg    int  // index of the argument being read
		n3     int  // tokens in the third argument
		true3  bool // the third argument's last token is the keyword true
	}

	// into follows SELECT ... INTO: 0 nothing, 1 after INTO, 2 after INTO
	// LOCAL or GLOBAL, 3 after INTO pg_temp.
	into int

	// upd follows UPDATE [ONLY] [pg_catalog.]pg_settings: 0 nothing, 1
	// after UPDATE or ONLY, 2 after pg_catalog, 3 after its ".".
	upd int
}

// run classifies every statement in the text and returns the first kind
// that is not ordinary.
func (sc *stmtScan) run() stmtKind {
	atStart := true
	for {
		t := sc.next()
		if sc.kind != ordinary {
			return sc.kind
		}
		switch {
		case t.kind == tokEOF:
			return ordinary
		case t.kind == tokSemi:
			atStart = true
		case atStart:
			if t.isPunct('(') || (sc.body && isBlockWord(t)) {
				continue
			}
			if k := sc.leading(t); k != ordinary {
				return k
			}
			if sc.kind != ordinary {
				return sc.kind
			}
			switch sc.last {
			case tokEOF:
				return ordinary
			case tokSemi:
				atStart = true
			default:
				atStart = false
			}
		case sc.body && (isBlockWord(t) || (t.isPunct('>') && sc.hist[1].isPunct('>'))):
			// A plpgsql statement follows BEGIN, THEN, ELSE, LOOP, ...
			// and a <<label>>.
			atStart = true
		}
	}
}

// isBlockWord reports whether t is a plpgsql keyword after which a
// statement starts.
func isBlockWord(t token) bool {
	return t.isWord("begin") || t.isWord("then") || t.isWord("else") ||
		t.isWord("loop") || t.isWord("declare") || t.isWord("exception")
}

// refuse records k unless a refusal was recorded already.
func (sc *stmtScan) refuse(k stmtKind) {
	if sc.kind == ordinary {
		sc.kind = k
	}
}

// next returns the next token of the text and feeds it to the checks that
// apply anywhere in a statement.
func (sc *stmtScan) next() token {
	t := sc.lx.next()
	sc.last = t.kind
	sc.hist[2], sc.hist[1], sc.hist[0] = sc.hist[1], sc.hist[0], t
	switch {
	case t.kind == tokSemi || t.kind == tokEOF:
		sc.endStatement()
		return t
	case t.isPunct('('):
		sc.depth++
	case t.isPunct(')'):
		if sc.depth > 0 {
			sc.depth--
		}
	}
	if sc.cfg.active {
		sc.setConfigArg(t)
	}
	sc.callCheck(t)
	sc.intoCheck(t)
	sc.settingsCheck(t)
	if sc.body && t.isWord("execute") {
		sc.refuse(dynamicSQLStmt)
	}
	return t
}

// endStatement resets the per-statement checks at a ";" or the end.
func (sc *stmtScan) endStatement() {
	if sc.cfg.active {
		// set_config( without its ")": the server will not run it, but
		// there is nothing to prove it harmless either.
		sc.refuse(setConfigStmt)
	}
	sc.depth, sc.into, sc.upd = 0, 0, 0
	sc.call.set, sc.cfg.active = false, false
}

// callCheck finds function calls: a name, optionally with UESCAPE 'c'
// after a U&"..." name, then "(". Comments may sit anywhere between, and
// the name may be schema-qualified or quoted.
func (sc *stmtScan) callCheck(t token) {
	c := &sc.call
	if c.set {
		switch {
		case c.stage == 0 && c.name.kind == tokIdent && c.name.flags&strUnicode != 0 && t.isWord("uescape"):
			c.stage = 1
			return
		case c.stage == 1 && t.kind == tokString:
			c.esc, c.stage = uescapeChar(t.text), 2
			return
		case c.stage != 1 && t.isPunct('('):
			sc.called(c.name, c.esc)
		}
		c.set = false
	}
	if t.kind == tokWord || t.kind == tokIdent {
		c.set, c.name, c.stage, c.esc = true, t, 0, '\\'
	}
}

// uescapeChar is the escape character a UESCAPE string names.
func uescapeChar(lit string) byte {
	if lit == "''" {
		return '\''
	}
	if lit == "" {
		return '\\'
	}
	return lit[0]
}

// called checks a call of the function named by name (esc is the escape
// character if name is a U&"..." identifier). Its "(" is the current
// token.
func (sc *stmtScan) called(name token, esc byte) {
	for _, f := range sessionLockFuncs {
		if nameEq(name, esc, f) {
			sc.refuse(advisoryLockStmt)
			return
		}
	}
	if nameEq(name, esc, "set_config") {
		if sc.cfg.active {
			// set_config inside set_config's arguments: not followed.
			sc.refuse(setConfigStmt)
			return
		}
		sc.cfg.active, sc.cfg.depth, sc.cfg.arg, sc.cfg.n3, sc.cfg.true3 = true, sc.depth-1, 0, 0, false
	}
}

// setConfigArg follows set_config's arguments: the call is safe only when
// the third (is_local) is the keyword true alone; false, a parameter or
// any expression leaves a setting for the session or cannot be proved not
// to.
func (sc *stmtScan) setConfigArg(t token) {
	g := &sc.cfg
	switch {
	case t.isPunct(')') && sc.depth == g.depth:
		g.active = false
		if g.arg != 2 || g.n3 != 1 || !g.true3 {
			sc.refuse(setConfigStmt)
		}
	case t.isPunct(',') && sc.depth == g.depth+1:
		g.arg++
	case g.arg == 2:
		g.n3++
		g.true3 = t.isWord("true")
	}
}

// intoCheck finds SELECT ... INTO TEMP|TEMPORARY [TABLE] x, INTO LOCAL or
// GLOBAL TEMP x and INTO pg_temp.x, which create a temporary table. INTO
// after INSERT or MERGE names a table that exists (possibly one called
// temp).
func (sc *stmtScan) intoCheck(t token) {
	switch sc.into {
	case 1:
		switch {
		case t.isWord("temp") || t.isWord("temporary"):
			sc.refuse(tempTableStmt)
		case t.isWord("local") || t.isWord("global"):
			sc.into = 2
			return
		case isTempSchema(t):
			sc.into = 3
			return
		}
	case 2:
		if t.isWord("temp") || t.isWord("temporary") {
			sc.refuse(tempTableStmt)
		}
	case 3:
		if t.isPunct('.') {
			sc.refuse(tempTableStmt)
		}
	}
	sc.into = 0
	if t.isWord("into") && !sc.hist[1].isWord("insert") && !sc.hist[1].isWord("merge") {
		sc.into = 1
	}
}

// settingsCheck finds UPDATE pg_settings, which is SET by another name:
// the new value holds for the rest of the session. It may be a statement
// of its own or sit in a WITH; UPDATE followed by anything else (FOR
// UPDATE OF, DO UPDATE SET, GRANT UPDATE ON) is not one.
func (sc *stmtScan) settingsCheck(t token) {
	switch sc.upd {
	case 1:
		switch {
		case t.isName("pg_settings"):
			sc.refuse(setStmt)
		case t.isWord("only"):
			return
		case t.isName("pg_catalog"):
			sc.upd = 2
			return
		}
	case 2:
		if t.isPunct('.') {
			sc.upd = 3
			return
		}
	case 3:
		if t.isName("pg_settings") {
			sc.refuse(setStmt)
		}
	}
	sc.upd = 0
	if t.isWord("update") {
		sc.upd = 1
	}
}

// leading classifies a statement by its first token t and the few after
// it, which it reads with next.
func (sc *stmtScan) leading(t token) stmtKind {
	for t.isWord("explain") {
		// EXPLAIN ANALYZE runs the statement it explains.
		t = sc.next()
		if t.isPunct('(') {
			for t.kind != tokEOF && t.kind != tokSemi && !(t.isPunct(')') && sc.depth == 0) {
				t = sc.next()
			}
			t = sc.next()
		}
		for t.isWord("analyze") || t.isWord("analyse") || t.isWord("verbose") {
			t = sc.next()
		}
	}
	switch {
	case t.isWord("listen"):
		return listenStmt
	case t.isWord("unlisten"):
		return unlistenStmt
	case t.isWord("set"):
		t = sc.next()
		if t.isWord("local") || t.isWord("transaction") || t.isWord("constraints") {
			return ordinary
		}
		return setStmt
	case t.isWord("reset"):
		return resetStmt
	case t.isWord("prepare"):
		// PREPARE TRANSACTION is two-phase commit, not a statement.
		if sc.next().isWord("transaction") {
			return ordinary
		}
		return prepareStmt
	case t.isWord("discard"):
		return discardStmt
	case t.isWord("load"):
		return loadStmt
	case t.isWord("declare"):
		for t = sc.next(); t.kind != tokEOF && t.kind != tokSemi && !t.isWord("for"); t = sc.next() {
			if t.isWord("hold") && sc.hist[1].isWord("with") {
				return declareHoldStmt
			}
		}
	case t.isWord("create"):
		return sc.create()
	case t.isWord("do"):
		if sc.body {
			// A DO inside a DO body is not read a third time.
			return uncheckedDoStmt
		}
		return sc.do()
	}
	return ordinary
}

// create classifies CREATE ...: a temporary object (CREATE [OR REPLACE]
// [GLOBAL|LOCAL] TEMP|TEMPORARY ..., or one named pg_temp.x) is session
// state, unless it is dropped at commit: ON COMMIT DROP as tokens of the
// statement, outside parentheses, not inside a string or comment. It reads
// to the end of the statement, because ON COMMIT comes late.
func (sc *stmtScan) create() stmtKind {
	t := sc.next()
	if t.isWord("or") && sc.next().isWord("replace") {
		t = sc.next()
	}
	if t.isWord("global") || t.isWord("local") {
		t = sc.next()
	}
	temp := t.isWord("temp") || t.isWord("temporary")
	naming := true // before the first "(" or AS: still in the object's name
	drop := false
	for ; t.kind != tokEOF && t.kind != tokSemi; t = sc.next() {
		if t.isPunct('(') || (sc.depth == 0 && t.isWord("as")) {
			naming = false
		}
		if naming && t.isPunct('.') && isTempSchema(sc.hist[1]) {
			temp = true
		}
		if sc.depth == 0 && t.isWord("drop") && sc.hist[1].isWord("commit") && sc.hist[2].isWord("on") {
			drop = true
		}
	}
	if temp && !drop {
		return tempTableStmt
	}
	return ordinary
}

// isTempSchema reports whether t names the session's temporary schema:
// pg_temp, or pg_temp_N as the server calls it.
func isTempSchema(t token) bool {
	if t.isName("pg_temp") {
		return true
	}
	if (t.kind != tokWord && t.kind != tokIdent) || len(t.text) <= len("pg_temp_") || !eqFold(t.text[:len("pg_temp_")], "pg_temp_") {
		return false
	}
	for _, c := range []byte(t.text[len("pg_temp_"):]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// do classifies DO [LANGUAGE l] body [LANGUAGE l]: the body, a string or
// dollar-quoted string, is classified as plpgsql statements. A body in
// another language cannot be read.
func (sc *stmtScan) do() stmtKind {
	kind := ordinary
	other := false
	for t := sc.next(); t.kind != tokEOF && t.kind != tokSemi; t = sc.next() {
		switch {
		case t.isWord("language"):
			t = sc.next()
			if !t.isName("plpgsql") && !(t.kind == tokString && t.flags == 0 && eqFold(t.text, "plpgsql")) {
				other = true
			}
			if t.kind == tokEOF || t.kind == tokSemi {
				return doResult(kind, other)
			}
		case t.kind == tokDollar || t.kind == tokString:
			if k := classifyBody(t); kind == ordinary {
				kind = k
			}
		}
	}
	return doResult(kind, other)
}

// doResult is a DO statement's kind: what its body needs, or
// uncheckedDoStmt when the language is not plpgsql.
func doResult(body stmtKind, otherLanguage bool) stmtKind {
	if otherLanguage {
		return uncheckedDoStmt
	}
	return body
}

// classifyBody classifies the plpgsql code in the string literal t. A
// dollar-quoted body is the code as written; in a '...' body every quote
// of the code is written twice, which the lexer reads as one (lexer.qw).
// Bodies whose text differs from the code in other ways (backslash escapes
// in E'...', Unicode escapes in U&'...', pieces continued across lines) are
// not decoded but refused.
func classifyBody(t token) stmtKind {
	qw := 1
	switch {
	case t.kind == tokDollar:
	case t.flags&(strUnicode|strContinued) != 0:
		return uncheckedDoStmt
	case t.flags&strEscape != 0 && strings.IndexByte(t.text, '\\') >= 0:
		return uncheckedDoStmt
	case strings.Contains(t.text, "''"):
		qw = 2
	}
	body := stmtScan{lx: lexer{s: t.text, qw: qw}, body: true}
	return body.run()
}

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tokEOF    tokKind = iota // the end of the text
	tokSemi                  // ";", which ends a statement
	tokWord                  // a keyword or unquoted identifier, as written
	tokIdent                 // a "quoted identifier"; text is its raw content
	tokString                // a quoted string; text is its first piece's raw content
	tokDollar                // a dollar-quoted string; text is its content
	tokNumber                // a number, or a parameter such as $1
	tokPunct                 // any other byte: operator or punctuation
)

// Token flags, for tokString and tokIdent.
const (
	strEscape    uint8 = 1 << iota // E'...': backslash escapes
	strUnicode                     // U&'...' or U&"..."
	strContinued                   // more pieces follow after a newline
)

// A token is one lexical token; its text is a slice of the lexer's text.
type token struct {
	kind  tokKind
	flags uint8
	text  string
}

// isWord reports whether t is the keyword kw (lower case).
func (t token) isWord(kw string) bool { return t.kind == tokWord && eqFold(t.text, kw) }

// isPunct reports whether t is the punctuation byte c.
func (t token) isPunct(c byte) bool { return t.kind == tokPunct && t.text[0] == c }

// isName reports whether t is an identifier, quoted or not, spelled name
// (lower case).
func (t token) isName(name string) bool { return nameEq(t, '\\', name) }

// nameEq reports whether the identifier t is spelled name (lower case),
// with esc the escape character of a U&"..." identifier. Quoted names are
// compared ignoring ASCII case too: "PG_ADVISORY_LOCK"(1) names another
// function than pg_advisory_lock(1), one someone would have had to create,
// and refusing it costs nothing.
func nameEq(t token, esc byte, name string) bool {
	switch {
	case t.kind == tokWord:
		return eqFold(t.text, name)
	case t.kind != tokIdent:
		return false
	case t.flags&strUnicode == 0:
		// A "" in the text cannot match: no name here has a quote.
		return eqFold(t.text, name)
	}
	// U&"...": decode \XXXX, \+XXXXXX and \\ (with esc for \) on the way.
	raw, n := t.text, 0
	for i := 0; i < len(raw); {
		c, r := raw[i], rune(0)
		switch {
		case c == esc && i+1 < len(raw) && raw[i+1] == esc:
			r, i = rune(esc), i+2
		case c == esc && i+1 < len(raw) && raw[i+1] == '+':
			v, ok := hexRune(raw, i+2, 6)
			if !ok {
				return false
			}
			r, i = v, i+8
		case c == esc:
			v, ok := hexRune(raw, i+1, 4)
			if !ok {
				return false
			}
			r, i = v, i+5
		case c == '"':
			r, i = '"', i+2
		default:
			r, i = rune(c), i+1
		}
		if n >= len(name) || r >= 0x80 || lower(byte(r)) != name[n] {
			return false
		}
		n++
	}
	return n == len(name)
}

// hexRune reads n hex digits of s at i.
func hexRune(s string, i, n int) (rune, bool) {
	if i+n > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+n]) {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case lower(c) >= 'a' && lower(c) <= 'f':
			r = r<<4 | rune(lower(c)-'a'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// A lexer splits SQL text into tokens, skipping white space and comments,
// the way PostgreSQL's does for everything that decides where a string,
// identifier, comment or statement ends. It never moves backwards.
type lexer struct {
	s  string
	i  int
	qw int // bytes per quote: 1, or 2 in a '...' DO body where ' is written ''
}

// next returns the token at the lexer's position and moves past it.
func (lx *lexer) next() token {
	s := lx.s
	for lx.i < len(s) {
		i := lx.i
		c := s[i]
		switch {
		case byteClass[c]&classSpace != 0:
			lx.i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			lx.i = skipLineComment(s, i)
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			lx.i = skipBlockComment(s, i)
		case c == '\'':
			return lx.str(i+lx.qw, 0)
		case c == '"':
			return lx.ident(i+1, 0)
		case c == '$':
			return lx.dollar(i)
		case c == ';':
			lx.i++
			return token{kind: tokSemi, text: s[i : i+1]}
		case isIdentStart(c):
			return lx.word(i)
		case c >= '0' && c <= '9':
			// Digits and dots only: in 1e'x' PostgreSQL 14 reads 1 then
			// the string e'x' (15 and later refuse the trailing junk).
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			lx.i = j
			return token{kind: tokNumber, text: s[i:j]}
		default:
			lx.i++
			return token{kind: tokPunct, text: s[i : i+1]}
		}
	}
	return token{kind: tokEOF}
}

// word reads an identifier or keyword at i, or a string or identifier
// with a prefix: E'...', B'...', X'...', N'...', U&'...', U&"...". Like
// PostgreSQL's, the prefix counts only as a whole token: in abe'x' the
// string is an ordinary one after the identifier abe.
func (lx *lexer) word(i int) token {
	s := lx.s
	j := i + 1
	for j < len(s) && isIdentCont(s[j]) {
		j++
	}
	if j == i+1 && j < len(s) {
		switch c := lower(s[i]); {
		case s[j] == '\'' && c == 'e':
			return lx.str(j+lx.qw, strEscape)
		case s[j] == '\'' && (c == 'b' || c == 'x' || c == 'n'):
			return lx.str(j+lx.qw, 0)
		case s[j] == '&' && c == 'u' && j+1 < len(s) && s[j+1] == '\'':
			return lx.str(j+1+lx.qw, strUnicode)
		case s[j] == '&' && c == 'u' && j+1 < len(s) && s[j+1] == '"':
			return lx.ident(j+2, strUnicode)
		}
	}
	lx.i = j
	return token{kind: tokWord, text: s[i:j]}
}

// str reads a quoted string whose content starts at start: a doubled
// quote stands for one, and with strEscape a backslash escapes the next
// character. A string followed by white space holding a newline and
// another quote continues there in the same mode, so that the E string
// E'a' then a newline then '\'x' ends at its last quote.
func (lx *lexer) str(start int, flags uint8) token {
	s, qw := lx.s, lx.qw
	first := -1 // end of the first piece
	for i := start; ; {
		for i < len(s) && s[i] != '\'' && (s[i] != '\\' || flags&strEscape == 0) {
			i++
		}
		switch {
		case i >= len(s):
			// Unterminated: the server will refuse the whole text.
			lx.i = len(s)
			if first < 0 {
				first = len(s)
			}
			return token{kind: tokString, flags: flags, text: s[start:first]}
		case s[i] == '\\':
			i++
			if i < len(s) && s[i] == '\'' {
				i += qw
			} else if i < len(s) {
				i++
			}
			continue
		case i+qw < len(s) && s[i+qw] == '\'':
			i += 2 * qw
			continue
		}
		if first < 0 {
			first = i
		}
		lx.i = i + qw
		if !lx.continues() {
			return token{kind: tokString, flags: flags, text: s[start:first]}
		}
		flags |= strContinued
		i = lx.i
	}
}

// continues moves past the white space and -- comments after a closing
// quote and reports whether a quote follows with a newline before it:
// PostgreSQL's {quotecontinue}. Only space, tab and form feed may come
// before the first newline. If it reports false, the lexer stays after
// the white space, which next would skip anyway.
func (lx *lexer) continues() bool {
	s, i, nl := lx.s, lx.i, false
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\f' || (c == '\v' && nl):
			i++
		case c == '\n' || c == '\r':
			nl = true
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			i = skipLineComment(s, i)
		default:
			lx.i = i
			if nl && c == '\'' {
				lx.i += lx.qw
				return true
			}
			return false
		}
	}
	lx.i = i
	return false
}

// ident reads a quoted identifier whose content starts at start; "" is a
// quote.
func (lx *lexer) ident(start int, flags uint8) token {
	s := lx.s
	for i := start; ; {
		k := strings.IndexByte(s[i:], '"')
		if k < 0 {
			lx.i = len(s)
			return token{kind: tokIdent, flags: flags, text: s[start:]}
		}
		i += k
		if i+1 < len(s) && s[i+1] == '"' {
			i += 2
			continue
		}
		lx.i = i + 1
		return token{kind: tokIdent, flags: flags, text: s[start:i]}
	}
}

// dollar reads what starts with "$" at i: a parameter ($1), a
// dollar-quoted string ($$...$$ or $tag$...$tag$, where a tag follows the
// rules of an identifier without "$" and cannot start with a digit), or a
// lone "$", which PostgreSQL rejects. A "$" inside an identifier (a$b) was
// read with the identifier.
func (lx *lexer) dollar(i int) token {
	s := lx.s
	j := i + 1
	if j < len(s) && s[j] >= '0' && s[j] <= '9' {
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		lx.i = j
		return token{kind: tokNumber, text: s[i:j]}
	}
	if j < len(s) && isIdentStart(s[j]) {
		for j++; j < len(s) && isIdentCont(s[j]) && s[j] != '$'; j++ {
		}
	}
	if j >= len(s) || s[j] != '$' {
		// $name without a closing "$": a syntax error; the name's bytes
		// would only form an identifier, so step over them.
		lx.i = j
		return token{kind: tokPunct, text: s[i : i+1]}
	}
	tag := s[i : j+1]
	body := j + 1
	end := indexTag(s, body, tag)
	if end < 0 {
		lx.i = len(s)
		return token{kind: tokDollar, text: s[body:]}
	}
	lx.i = end + len(tag)
	return token{kind: tokDollar, text: s[body:end]}
}

// indexTag finds the dollar-quote tag ("$$" or "$name$") in s from the
// index from, or returns -1. Only a "$" can start the tag, and a tag has
// no "$" inside, so each candidate is compared only up to the next "$":
// every byte is looked at a bounded number of times, however many
// near-misses the text holds.
func indexTag(s string, from int, tag string) int {
	m := len(tag)
	for k := from; ; {
		d := strings.IndexByte(s[k:], '$')
		if d < 0 {
			return -1
		}
		k += d
		e := strings.IndexByte(s[k+1:], '$')
		if e < 0 {
			return -1
		}
		e += k + 1
		if e-k+1 == m && s[k+1:e] == tag[1:m-1] {
			return k
		}
		k = e
	}
}

// skipLineComment returns the index of the newline (\n or \r) that ends
// the -- comment at i, or the end of s.
func skipLineComment(s string, i int) int {
	for i < len(s) && s[i] != '\n' && s[i] != '\r' {
		i++
	}
	return i
}

// skipBlockComment returns the index after the /* comment */ at i, which
// may hold nested comments, or the end of s.
func skipBlockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// Byte classes for the lexer's table.
const (
	classIdentStart = 1 << iota // a letter, "_" or a byte of a multi-byte character
	classIdentCont              // also a digit or "$"
	classSpace                  // space, \t, \n, \r, \f, \v
)

// byteClass classifies every byte value, so that the lexer's inner loops
// are one table look-up per byte.
var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80:
			t[c] = classIdentStart | classIdentCont
		case (c >= '0' && c <= '9') || c == '$':
			t[c] = classIdentCont
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			t[c] = classSpace
		}
	}
	return t
}()

// isIdentStart reports whether c can start an identifier: a letter, "_"
// or any byte of a multi-byte character.
func isIdentStart(c byte) bool { return byteClass[c]&classIdentStart != 0 }

// isIdentCont reports whether c can continue an identifier: also digits
// and "$".
func isIdentCont(c byte) bool { return byteClass[c]&classIdentCont != 0 }

// lower folds an ASCII letter to lower case.
func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// eqFold compares w with a lower-case ASCII keyword, ignoring case.
func eqFold(w, kw string) bool {
	if len(w) != len(kw) {
		return false
	}
	for i := 0; i < len(w); i++ {
		if lower(w[i]) != kw[i] {
			return false
		}
	}
	return true
}

// lexerSafe checks that a route's startup parameters keep the SQL the way
// classify reads it: standard_conforming_strings on (the server's default
// since 9.1), and a client encoding in which every byte below 0x80 is
// ASCII. In SJIS, BIG5, GBK, GB18030, UHC and JOHAB a quote or backslash
// byte can be the second half of a character, so the scanner and the
// server would split strings differently.
func lexerSafe(params map[string]string) error {
	if v := params["standard_conforming_strings"]; v != "" && !strings.EqualFold(v, "on") {
		return fmt.Errorf("standard_conforming_strings is %s: supapool checks statements for session state the way PostgreSQL reads them with it on (the default); remove it from the URL", redact.Value(v))
	}
	switch strings.ToUpper(strings.NewReplacer("_", "", "-", "").Replace(params["client_encoding"])) {
	case "SJIS", "SHIFTJIS", "SHIFTJIS2004", "BIG5", "GBK", "GB18030", "UHC", "JOHAB", "WIN932", "WIN936", "WIN949", "WIN950", "CP932", "CP936", "CP949", "CP950":
		return fmt.Errorf("client_encoding %s is not ASCII-safe: a quote byte can be half of a character, so supapool's check of statements could read them differently from the server; use UTF8 (pgx needs it anyway)", redact.Value(params["client_encoding"]))
	}
	return nil
}
