package supabase

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/supapool/supapool/internal/redact"
)

// ParseURL reads a connection string in any form Supabase's dashboard and
// docs show (direct, session pooler, transaction pooler, dedicated pooler,
// and Prisma's ?pgbouncer=true form) back into the Project it was built
// from, and says which Mode it uses.
//
// The mode comes from the host and port alone: *.pooler.supabase.com is
// the shared pooler (6543 transaction, 5432 session) and db.REF.supabase.co
// is the server (5432) or its dedicated pooler (6543). pgbouncer=true is
// checked to be a boolean and otherwise ignored, because it only tells
// Prisma to avoid prepared statements. sslmode is kept in SSLMode; other
// query parameters are not part of a Project and are dropped.
//
// Errors never contain the password. A password must be percent-encoded,
// as pgx and libpq need it (see [Project.URL]).
func ParseURL(s string) (Project, Mode, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "postgresql://") && !strings.HasPrefix(s, "postgres://") {
		return Project{}, 0, errors.New("supabase: connection string must start with postgresql:// or postgres://")
	}
	if redact.Unencoded(s) {
		// net/url would read it, but pgx and libpq would not read it the
		// same way, so a DATABASE_URL like it fails in pool.
		return Project{}, 0, fmt.Errorf("supabase: connection string is not a valid URL: %s", redact.EncodeHint)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Project{}, 0, fmt.Errorf("supabase: connection string is not a valid URL: %s", redact.URLError(err))
	}
	if u.User == nil || u.User.Username() == "" {
		return Project{}, 0, errors.New("supabase: connection string has no user name")
	}
	host := strings.ToLower(u.Hostname())
	port := PortDirect
	if ps := u.Port(); ps != "" {
		if port, err = strconv.Atoi(ps); err != nil {
			return Project{}, 0, fmt.Errorf("supabase: port %q is not a number", ps)
		}
	}
	if port != PortDirect && port != PortTransaction {
		return Project{}, 0, fmt.Errorf("supabase: port %d is not one Supabase uses; expected %d or %d", port, PortDirect, PortTransaction)
	}
	var p Project
	p.Password, _ = u.User.Password()
	p.Database = strings.TrimPrefix(u.Path, "/")
	q := u.Query()
	p.SSLMode = q.Get("sslmode")
	if v := q.Get("pgbouncer"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return Project{}, 0, fmt.Errorf("supabase: pgbouncer=%s, expected true or false", redact.Value(v))
		}
	}
	user := u.User.Username()
	var m Mode
	switch {
	case strings.HasSuffix(host, ".pooler.supabase.com"):
		i := strings.LastIndexByte(user, '.')
		if i <= 0 || i == len(user)-1 {
			return Project{}, 0, fmt.Errorf("supabase: user %q on the shared pooler must be ROLE.PROJECTREF, such as postgres.abcdefghijklmnopqrst", user)
		}
		p.User, p.Ref, p.PoolerHost = user[:i], user[i+1:], host
		if r, ok := regionOf(host); ok {
			p.Region = r
		}
		m = SessionPooler
		if port == PortTransaction {
			m = TransactionPooler
		}
	case strings.HasPrefix(host, "db.") && strings.HasSuffix(host, ".supabase.co"):
		p.Ref = strings.TrimSuffix(strings.TrimPrefix(host, "db."), ".supabase.co")
		p.User = user
		if strings.HasSuffix(user, "."+p.Ref) {
			return Project{}, 0, fmt.Errorf("supabase: user %q is the shared pooler's form; %s takes the role alone, such as postgres", user, host)
		}
		m = Direct
		if port == PortTransaction {
			m = DedicatedPooler
		}
	default:
		return Project{}, 0, fmt.Errorf("supabase: host %q is neither db.REF.supabase.co nor a *.pooler.supabase.com pooler", host)
	}
	if err := p.Validate(); err != nil {
		return Project{}, 0, err
	}
	return p, m, nil
}

// regionOf reads REGION from aws-N-REGION.pooler.supabase.com.
func regionOf(host string) (string, bool) {
	name := strings.TrimSuffix(host, ".pooler.supabase.com")
	parts := strings.SplitN(name, "-", 3)
	if len(parts) != 3 || parts[0] == "" {
		return "", false
	}
	if _, err := strconv.Atoi(parts[1]); err != nil {
		return "", false
	}
	if !regionRE.MatchString(parts[2]) {
		return "", false
	}
	return parts[2], true
}
