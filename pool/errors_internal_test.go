package pool

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
)

// The messages below are what servers and poolers actually send: the
// PostgreSQL and PgBouncer ones were read off PostgreSQL 15 and PgBouncer
// 1.18 in the test bed (see TestPgBouncerRelaysServerFull), PostgreSQL 16's
// from its source, Supavisor's from its error table.
func TestClassifyConnErr(t *testing.T) {
	for _, tc := range []struct {
		code, msg string
		want      connErrKind
	}{
		{"53300", "sorry, too many clients already", serverFull},
		{"53300", "remaining connection slots are reserved for non-replication superuser connections", serverFull},
		{"08P01", "sorry, too many clients already", serverFull},
		{"08P01", "remaining connection slots are reserved for non-replication superuser connections", serverFull},
		{"08P01", "remaining connection slots are reserved for roles with the SUPERUSER attribute", serverFull},
		{"08P01", `remaining connection slots are reserved for roles with privileges of the "pg_use_reserved_connections" role`, serverFull},
		{"08P01", "no more connections allowed (max_client_conn)", serverFull},
		{"XX000", "(EMAXCONN) max client connections reached, limit: 200", serverFull},
		{"XX000", "(ECHECKOUTTIMEOUT) checkout timeout", serverFull},
		{"XX000", "Max client connections reached", serverFull},
		{"08P01", "server login has been failing, try again later (server_login_retry)", transient},
		{"57P03", "the database system is starting up", transient},
		{"57P03", "the database system is shutting down", transient},
		{"28P01", `password authentication failed for user "app"`, configErr},
		{"08P01", `password authentication failed for user "app"`, configErr},
		{"3D000", `database "nope" does not exist`, configErr},
		{"XX000", "(ENOTFOUND) tenant/user postgres.abc not found", configErr},
		{"XX000", "Tenant or user not found", configErr},
		{"08P01", "bind message has 2 result formats but query has 3 columns", otherErr},
		{"42P01", `relation "x" does not exist`, otherErr},
	} {
		t.Run(tc.code+" "+tc.msg, func(t *testing.T) {
			err := fmt.Errorf("failed to connect: %w", &pgconn.PgError{Severity: "FATAL", Code: tc.code, Message: tc.msg})
			got, pgErr := classifyConnErr(err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.code, pgErr.Code)
		})
	}
	t.Run("unknown host", func(t *testing.T) {
		got, _ := classifyConnErr(&net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true})
		assert.Equal(t, configErr, got)
	})
	t.Run("TLS refused", func(t *testing.T) {
		got, _ := classifyConnErr(fmt.Errorf("failed to connect: %w", errors.New("server refused TLS connection")))
		assert.Equal(t, configErr, got)
	})
	t.Run("certificate refused", func(t *testing.T) {
		got, _ := classifyConnErr(fmt.Errorf("failed to connect: %w", &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")}))
		assert.Equal(t, configErr, got)
	})
}
