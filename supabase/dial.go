package supabase

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrIPv6Only is matched (errors.Is) by the error [ExplainDialError]
// returns when a Supabase database host could not be reached because this
// network has no IPv6 route. Supabase gives db.REF.supabase.co only an
// IPv6 address unless the project buys the IPv4 add-on
// (https://supabase.com/docs/guides/platform/ipv4-address), and platforms
// such as Vercel, GitHub Actions and Render have no IPv6.
var ErrIPv6Only = errors.New("supabase: the direct host is IPv6-only")

// ExplainDialError turns an unreachable-network dial error into one that
// says what to do about it, wrapping both [ErrIPv6Only] and err. Other
// errors, and nil, are returned unchanged.
func ExplainDialError(err error) error { return explainDialError("", err) }

func explainDialError(host string, err error) error {
	if err == nil || errors.Is(err, ErrIPv6Only) || !unreachable(err) {
		return err
	}
	what := "the database host"
	if host != "" {
		what = host
	}
	return fmt.Errorf("%w: %s has no IPv4 address unless the project has the IPv4 add-on, and this network cannot reach IPv6; connect through the session pooler instead (Project.SessionPoolerURL: user postgres.REF, the pooler host from the dashboard's Connect dialog, port 5432; or set SUPABASE_DIRECT_MODE=session): %w", ErrIPv6Only, what, err)
}

// unreachable recognises the ways a dial fails when IPv6 has no route:
// ENETUNREACH on Linux and macOS, EADDRNOTAVAIL or EHOSTUNREACH towards an
// IPv6 address (containers without IPv6), and Go's own error when only an
// IPv6 address exists for an IPv4-only dial.
func unreachable(err error) bool {
	if errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EHOSTUNREACH)) && isIPv6(op.Addr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "network is unreachable") || strings.Contains(msg, "no suitable address")
}

func isIPv6(a net.Addr) bool {
	if a == nil {
		return false
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() == nil
}

// ConfigureDial makes connections to a Supabase database host (direct or
// dedicated pooler) fail with [ExplainDialError]'s explanation instead of
// a bare "network is unreachable". It suits pool.Config's ConfigureDirect
// and ConfigurePooled, and leaves other hosts alone. [ConfigFromEnv] sets
// it where it applies.
func ConfigureDial(c *pgxpool.Config) error {
	host := c.ConnConfig.Host
	if !isDBHost(host) {
		return nil
	}
	dial := c.ConnConfig.DialFunc
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	c.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, explainDialError(host, err)
		}
		return conn, nil
	}
	return nil
}

func isDBHost(host string) bool {
	host = strings.ToLower(host)
	return strings.HasPrefix(host, "db.") && strings.HasSuffix(host, ".supabase.co")
}
