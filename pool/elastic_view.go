package pool

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/supapool/supapool/internal/pgstat"
)

// viewQuery is elastic sharing's one question to the server: client
// backends per application_name, and the usable slots, as package pgstat
// counts them for the monitor and for yielding.
const viewQuery = pgstat.ClientsByApp

// errNoView is the answer of a server that listed no client backend, not
// even the one asking (a role that sees no row of pg_stat_activity).
var errNoView = errors.New("pool: pg_stat_activity shows no client backend, not even this one; elastic sharing needs to see it (set DATABASE_ELASTIC=off)")

// askView runs viewQuery on c.
func askView(ctx context.Context, c *pgx.Conn) (serverView, error) {
	rows, err := c.Query(ctx, viewQuery, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return serverView{}, err
	}
	defer rows.Close()
	var v serverView
	for rows.Next() {
		var r clientCount
		var n, hidden, quiet int64
		var usable int32
		if err := rows.Scan(&r.name, &n, &hidden, &usable, &quiet); err != nil {
			return serverView{}, err
		}
		r.n, r.quiet = int(n), int(quiet)
		v.hidden += int(hidden)
		v.usable = int(usable)
		v.rows = append(v.rows, r)
	}
	if err := rows.Err(); err != nil {
		return serverView{}, err
	}
	if len(v.rows) == 0 {
		return serverView{}, errNoView
	}
	return v, nil
}
