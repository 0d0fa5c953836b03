package pool

import "strings"

// This file is the SQL scanner that decides whether a statement needs a
// session. It follows PostgreSQL's lexical rules for what it skips.

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
)

func (k stmtKind) String() string {
	return [...]string{"", "LISTEN", "UNLISTEN", "SET", "RESET", "PREPARE", "DECLARE ... WITH HOLD", "CREATE TEMP", "session advisory lock", "DISCARD", "LOAD"}[k]
}

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
	default:
		return "use Acquire(ctx, pool.Direct)"
	}
}

// classify looks at the first statement's leading keywords, skipping
// whitespace and comments, and scans for session advisory lock calls.
func classify(sql string) stmtKind {
	s := scanner{s: sql}
	switch w := s.word(); {
	case eqFold(w, "listen"):
		return listenStmt
	case eqFold(w, "unlisten"):
		return unlistenStmt
	case eqFold(w, "set"):
		switch w2 := s.word(); {
		case eqFold(w2, "local"), eqFold(w2, "transaction"), eqFold(w2, "constraints"):
			return ordinary
		}
		return setStmt
	case eqFold(w, "reset"):
		return resetStmt
	case eqFold(w, "prepare"):
		// PREPARE TRANSACTION is two-phase commit, not a statement.
		if eqFold(s.word(), "transaction") {
			return ordinary
		}
		return prepareStmt
	case eqFold(w, "discard"):
		return discardStmt
	case eqFold(w, "load"):
		return loadStmt
	case eqFold(w, "declare"):
		prev := ""
		for t := s.word(); t != ""; prev, t = t, s.word() {
			if eqFold(t, "for") {
				break
			}
			if eqFold(t, "hold") && eqFold(prev, "with") {
				return declareHoldStmt
			}
		}
		return ordinary
	case eqFold(w, "create"):
		t := s.word()
		if eqFold(t, "global") || eqFold(t, "local") {
			t = s.word()
		}
		if (eqFold(t, "temp") || eqFold(t, "temporary")) && !containsFold(sql, "on commit drop") {
			return tempTableStmt
		}
		return ordinary
	case w == "":
		return ordinary
	}
	if hasSessionAdvisoryLock(sql) {
		return advisoryLockStmt
	}
	return ordinary
}

// sessionLockFuncs are the advisory lock functions whose locks outlive the
// transaction; the _xact_ forms end with it and are fine.
var sessionLockFuncs = []string{
	"pg_advisory_lock", "pg_advisory_lock_shared",
	"pg_try_advisory_lock", "pg_try_advisory_lock_shared",
	"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
}

// hasSessionAdvisoryLock finds a call of a session advisory lock function
// anywhere in the statement: a name from sessionLockFuncs followed by "(",
// outside string literals, quoted identifiers, dollar quotes and comments,
// so that a table called advisory_locks or a comment mentioning the
// function is not refused.
func hasSessionAdvisoryLock(sql string) bool {
	// Most statements have no "advisory" at all: one quick look first.
	if indexFold(sql, "advisory_") < 0 {
		return false
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			i = skipQuoted(sql, i, c)
		case c == '$':
			i = skipDollar(sql, i)
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
		case isWordByte(c):
			start := i
			for i < len(sql) && isWordByte(sql[i]) {
				i++
			}
			w := sql[start:i]
			if !hasPrefixFold(w, "pg_") {
				continue
			}
			for _, f := range sessionLockFuncs {
				if eqFold(w, f) {
					j := i
					for j < len(sql) && (sql[j] == ' ' || sql[j] == '\t' || sql[j] == '\n' || sql[j] == '\r') {
						j++
					}
					if j < len(sql) && sql[j] == '(' {
						return true
					}
				}
			}
		default:
			i++
		}
	}
	return false
}

// skipQuoted returns the index after the literal or identifier opened by
// q at i; a doubled quote is an escaped one.
func skipQuoted(s string, i int, q byte) int {
	for i++; i < len(s); i++ {
		if s[i] == q {
			if i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(s)
}

// skipDollar skips a dollar-quoted string ($$...$$ or $tag$...$tag$) at i;
// a parameter such as $1 is stepped over.
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && (s[j] == '_' || (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') || (j > i+1 && s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return i + 1
	}
	tag := s[i : j+1]
	if k := indexOf(s[j+1:], tag); k >= 0 {
		return j + 1 + k + len(tag)
	}
	return len(s)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// skipBlockComment returns the index after the (possibly nested) comment
// that starts at i.
func skipBlockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case i+1 < len(s) && s[i] == '/' && s[i+1] == '*':
			depth++
			i += 2
		case i+1 < len(s) && s[i] == '*' && s[i+1] == '/':
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

// scanner yields words (runs of letters, digits and underscores) and skips
// whitespace, punctuation and SQL comments.
type scanner struct {
	s string
	i int
}

func (sc *scanner) word() string {
	s := sc.s
	for sc.i < len(s) {
		c := s[sc.i]
		switch {
		case c == '-' && sc.i+1 < len(s) && s[sc.i+1] == '-':
			for sc.i < len(s) && s[sc.i] != '\n' {
				sc.i++
			}
		case c == '/' && sc.i+1 < len(s) && s[sc.i+1] == '*':
			sc.i = skipBlockComment(s, sc.i)
		case isWordByte(c):
			start := sc.i
			for sc.i < len(s) && isWordByte(s[sc.i]) {
				sc.i++
			}
			return s[start:sc.i]
		case c == ';':
			// Only the first statement is classified.
			sc.i = len(s)
		case c == '(' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			sc.i++
		default:
			// A quote or operator before any keyword: not a statement we
			// know, so stop.
			sc.i = len(s)
		}
	}
	return ""
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// eqFold compares w with a lower-case ASCII keyword.
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

func hasPrefixFold(s, kw string) bool { return len(s) >= len(kw) && eqFold(s[:len(kw)], kw) }

// indexFold finds a lower-case ASCII needle in s, ignoring case.
func indexFold(s, needle string) int {
	for i := 0; i+len(needle) <= len(s); i++ {
		if lower(s[i]) == needle[0] && hasPrefixFold(s[i:], needle) {
			return i
		}
	}
	return -1
}

// containsFold reports whether s contains the lower-case words of phrase
// separated by any amount of white space.
func containsFold(s, phrase string) bool {
	words := strings.Fields(phrase)
	for i := 0; i < len(s); i++ {
		j, ok := i, true
		for k, w := range words {
			if k > 0 {
				n := j
				for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
					j++
				}
				if j == n {
					ok = false
					break
				}
			}
			if !hasPrefixFold(s[j:], w) {
				ok = false
				break
			}
			j += len(w)
		}
		if ok {
			return true
		}
	}
	return false
}
