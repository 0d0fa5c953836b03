package supabase

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func opError(addr string, errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.ParseIP(addr), Port: 5432},
		Err: &os.SyscallError{Syscall: "connect", Err: errno}}
}

func TestExplainDialError(t *testing.T) {
	t.Parallel()
	explained := []struct {
		name string
		err  error
	}{
		{"ENETUNREACH", opError("2600:1f18::1", syscall.ENETUNREACH)},
		{"EADDRNOTAVAIL towards IPv6 (container without IPv6)", opError("2600:1f18::1", syscall.EADDRNOTAVAIL)},
		{"EHOSTUNREACH towards IPv6", opError("2600:1f18::1", syscall.EHOSTUNREACH)},
		{"message only", errors.New("dial tcp [2600:1f18::1]:5432: connect: network is unreachable")},
		{"IPv4-only dial of an IPv6-only host", &net.OpError{Op: "dial", Net: "tcp4", Err: &net.AddrError{Err: "no suitable address found", Addr: "db.x.supabase.co"}}},
	}
	for _, tt := range explained {
		t.Run(tt.name, func(t *testing.T) {
			err := ExplainDialError(tt.err)
			require.ErrorIs(t, err, ErrIPv6Only)
			assert.ErrorIs(t, err, tt.err, "the dial error stays inspectable")
			assert.Contains(t, err.Error(), "session pooler")
			assert.Contains(t, err.Error(), "IPv4 add-on")
			assert.Equal(t, err, ExplainDialError(err), "explaining twice changes nothing")
		})
	}
	unchanged := []error{
		nil,
		opError("10.0.0.1", syscall.EHOSTUNREACH),
		opError("10.0.0.1", syscall.ECONNREFUSED),
		context.DeadlineExceeded,
	}
	for _, e := range unchanged {
		assert.Equal(t, e, ExplainDialError(e))
	}
}

func TestConfigureDial(t *testing.T) {
	t.Parallel()
	unreach := opError("2600:1f18::1", syscall.ENETUNREACH)
	fake := func(context.Context, string, string) (net.Conn, error) { return nil, unreach }

	c, err := pgxpool.ParseConfig(testProject().DirectURL())
	require.NoError(t, err)
	c.ConnConfig.DialFunc = fake
	require.NoError(t, ConfigureDial(c))
	_, err = c.ConnConfig.DialFunc(context.Background(), "tcp", "[2600:1f18::1]:5432")
	require.ErrorIs(t, err, ErrIPv6Only)
	assert.Contains(t, err.Error(), "db."+testRef+".supabase.co")
	assert.ErrorIs(t, err, syscall.ENETUNREACH)

	// The pooler has IPv4; its errors are left as they are.
	c, err = pgxpool.ParseConfig(testProject().SessionPoolerURL())
	require.NoError(t, err)
	c.ConnConfig.DialFunc = fake
	require.NoError(t, ConfigureDial(c))
	_, err = c.ConnConfig.DialFunc(context.Background(), "tcp", "x:5432")
	assert.Equal(t, unreach, err)
}
