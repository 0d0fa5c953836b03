package pool

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"
)

// ProbeNames is the exec mode probe: whether the server behind c sees the
// client's statement names.
func ProbeNames(ctx context.Context, c *pgconn.PgConn) (bool, error) { return probeNames(ctx, c) }
