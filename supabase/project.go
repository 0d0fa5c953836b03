package supabase

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/supapool/supapool/internal/redact"
)

// Ports Supabase uses. The direct server and the shared pooler's session
// mode both listen on 5432; the dedicated PgBouncer (on the database host)
// and the shared pooler's transaction mode both listen on 6543.
// Source: https://supabase.com/docs/guides/database/connecting-to-postgres
const (
	PortDirect      = 5432
	PortTransaction = 6543
)

// Defaults for Project's empty fields.
const (
	DefaultUser     = "postgres"
	DefaultDatabase = "postgres"
	DefaultSSLMode  = "require"
)

// Mode is the way a URL reaches a project's database.
type Mode int

const (
	// Direct is PostgreSQL itself on db.REF.supabase.co:5432. Supabase
	// gives this host only an IPv6 address unless the project has the
	// IPv4 add-on.
	Direct Mode = iota + 1
	// SessionPooler is the shared pooler (Supavisor) on port 5432: one
	// server connection per client connection, so session features work,
	// over IPv4.
	SessionPooler
	// TransactionPooler is the shared pooler on port 6543: a server
	// connection per transaction, so SET, LISTEN, session advisory locks
	// and named prepared statements do not carry over.
	TransactionPooler
	// DedicatedPooler is the PgBouncer Supabase runs beside the database
	// on paid plans, at db.REF.supabase.co:6543, in transaction mode. It
	// shares the direct host's IPv6-only address.
	DedicatedPooler
)

// Modes lists every Mode, for tables and tests.
var Modes = []Mode{Direct, SessionPooler, TransactionPooler, DedicatedPooler}

func (m Mode) String() string {
	switch m {
	case Direct:
		return "direct"
	case SessionPooler:
		return "session"
	case TransactionPooler:
		return "transaction"
	case DedicatedPooler:
		return "dedicated"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Project holds what identifies a Supabase project's database. The URL
// methods assemble its connection strings exactly as the dashboard's
// Connect dialog shows them, so nobody hand-writes user names and ports.
//
// Its String and GoString forms and its JSON encoding (which zap's
// reflection uses) leave the password out, so a Project can be logged.
type Project struct {
	// Ref is the project reference: the REF in https://REF.supabase.co.
	Ref string

	// Password is the database password, as typed (not percent-encoded).
	// The URL methods encode it.
	Password string `json:"-"`

	// PoolerHost is the shared pooler's host from the dashboard's Connect
	// dialog, such as aws-1-us-east-2.pooler.supabase.com. The N in aws-N
	// is a pooler cluster index that cannot be derived from the region
	// (https://supabase.com/docs/guides/troubleshooting/tenant-or-user-not-found),
	// so copy the host rather than set Region.
	PoolerHost string

	// Region (such as us-east-1) is used only when PoolerHost is empty, to
	// guess the host aws-0-REGION.pooler.supabase.com. The guess is wrong
	// for projects on another cluster; the pooler then answers "tenant or
	// user not found".
	Region string

	// User is the database role. Default "postgres". The shared pooler
	// needs the project in the user name, so its URLs use USER.REF.
	User string

	// Database defaults to "postgres".
	Database string

	// SSLMode is the sslmode parameter of every URL. Default "require":
	// Supabase accepts only TLS from the internet.
	SSLMode string

	// DirectAddr, SessionAddr, TransactionAddr and DedicatedAddr replace
	// the host:port of one mode's URL, leaving user, password and database
	// as derived. They exist for tests against local servers and for
	// tunnels or proxies (such as an IPv4 relay for the direct host).
	DirectAddr      string
	SessionAddr     string
	TransactionAddr string
	DedicatedAddr   string
}

// DirectHost is the project's database host, db.REF.supabase.co.
func (p Project) DirectHost() string { return "db." + p.Ref + ".supabase.co" }

// PoolerHostOrGuess returns PoolerHost, or the aws-0 guess from Region,
// and whether it is a guess. It is empty when both are.
func (p Project) PoolerHostOrGuess() (host string, guessed bool) {
	switch {
	case p.PoolerHost != "":
		return p.PoolerHost, false
	case p.Region != "":
		return "aws-0-" + p.Region + ".pooler.supabase.com", true
	}
	return "", false
}

// DirectURL is postgresql://postgres:PW@db.REF.supabase.co:5432/postgres.
func (p Project) DirectURL() string { return p.URL(Direct) }

// SessionPoolerURL is postgresql://postgres.REF:PW@POOLERHOST:5432/postgres.
// It is the IPv4 way to a session: use it where DirectURL is unreachable.
func (p Project) SessionPoolerURL() string { return p.URL(SessionPooler) }

// TransactionPoolerURL is postgresql://postgres.REF:PW@POOLERHOST:6543/postgres.
func (p Project) TransactionPoolerURL() string { return p.URL(TransactionPooler) }

// DedicatedPoolerURL is postgresql://postgres:PW@db.REF.supabase.co:6543/postgres.
func (p Project) DedicatedPoolerURL() string { return p.URL(DedicatedPooler) }

// URL returns the connection string for mode m. It returns "" when the
// Project lacks what m needs: a Ref, and for the shared pooler a
// PoolerHost or Region. [Project.Validate] says which.
func (p Project) URL(m Mode) string {
	if p.Ref == "" {
		return ""
	}
	user := p.User
	if user == "" {
		user = DefaultUser
	}
	var addr string
	switch m {
	case Direct:
		addr = or(p.DirectAddr, net.JoinHostPort(p.DirectHost(), strconv.Itoa(PortDirect)))
	case DedicatedPooler:
		addr = or(p.DedicatedAddr, net.JoinHostPort(p.DirectHost(), strconv.Itoa(PortTransaction)))
	case SessionPooler, TransactionPooler:
		user += "." + p.Ref
		override, port := p.SessionAddr, PortDirect
		if m == TransactionPooler {
			override, port = p.TransactionAddr, PortTransaction
		}
		host, _ := p.PoolerHostOrGuess()
		if override == "" && host == "" {
			return ""
		}
		addr = or(override, net.JoinHostPort(host, strconv.Itoa(port)))
	default:
		return ""
	}
	var b strings.Builder
	b.WriteString("postgresql://")
	b.WriteString(escape(user))
	if p.Password != "" {
		b.WriteByte(':')
		b.WriteString(escape(p.Password))
	}
	b.WriteByte('@')
	b.WriteString(addr)
	b.WriteByte('/')
	b.WriteString(escape(or(p.Database, DefaultDatabase)))
	b.WriteString("?sslmode=")
	b.WriteString(escape(or(p.SSLMode, DefaultSSLMode)))
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// escape percent-encodes every byte except RFC 3986's unreserved ones.
// net/url leaves sub-delimiters such as + ; & = in user info, which is
// legal but read differently by some drivers; encoding them is never wrong.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

var (
	refRE    = regexp.MustCompile(`^[a-z0-9]{1,63}$`)
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	hostRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
)

var sslModes = map[string]bool{"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true}

// Validate reports every field that would make a URL wrong, naming the
// field. It does not require PoolerHost or Region, because a service may
// only use the direct host.
func (p Project) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("supabase: "+format, args...)) }
	switch {
	case p.Ref == "":
		add("Ref is empty")
	case !refRE.MatchString(p.Ref):
		add("Ref %s is not a project ref (lower-case letters and digits, as in https://REF.supabase.co)", redact.Value(p.Ref))
	}
	if p.PoolerHost != "" {
		if err := checkPoolerHost(p.PoolerHost); err != nil {
			add("PoolerHost: %v", err)
		}
	}
	if p.Region != "" && !regionRE.MatchString(p.Region) {
		add("Region %s is not a region such as us-east-1", redact.Value(p.Region))
	}
	if strings.Contains(p.User, ".") && p.Ref != "" && strings.HasSuffix(p.User, "."+p.Ref) {
		add("User %s already ends in the project ref; give the role alone (the pooler URLs add .REF)", redact.Value(p.User))
	}
	if p.SSLMode != "" && !sslModes[p.SSLMode] {
		add("SSLMode %s is not one of disable, allow, prefer, require, verify-ca, verify-full", redact.Value(p.SSLMode))
	}
	for _, a := range []struct{ name, v string }{{"DirectAddr", p.DirectAddr}, {"SessionAddr", p.SessionAddr}, {"TransactionAddr", p.TransactionAddr}, {"DedicatedAddr", p.DedicatedAddr}} {
		if a.v == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.v); err != nil || port == "" {
			add("%s %s is not host:port", a.name, redact.Value(a.v))
		}
	}
	return errors.Join(errs...)
}

// checkPoolerHost catches the usual paste mistakes: a whole URL, a port.
func checkPoolerHost(h string) error {
	if strings.Contains(h, "://") || strings.Contains(h, "@") {
		return errors.New("must be a host name such as aws-1-us-east-2.pooler.supabase.com, not a URL")
	}
	if !hostRE.MatchString(h) {
		return fmt.Errorf("%s is not a host name such as aws-1-us-east-2.pooler.supabase.com", redact.Value(h))
	}
	return nil
}

// String names the project without its password.
func (p Project) String() string {
	s := "supabase project " + p.Ref
	if h, guessed := p.PoolerHostOrGuess(); h != "" {
		s += " (pooler " + h
		if guessed {
			s += ", guessed from region"
		}
		s += ")"
	}
	return s
}

// GoString keeps %#v from printing the password.
func (p Project) GoString() string {
	type noPassword Project
	q := noPassword(p)
	if q.Password != "" {
		q.Password = "xxxxx"
	}
	return fmt.Sprintf("supabase.Project%+v", q)
}
