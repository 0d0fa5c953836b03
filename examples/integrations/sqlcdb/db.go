// Package sqlcdb is what `sqlc generate` writes for sqlc.yaml, query.sql
// and schema.sql beside this file (engine postgresql, sql_package
// pgx/v5). There is no sqlc binary where supapool is built, so these
// files were written by hand to mirror sqlc's output exactly: the same
// DBTX interface, New, WithTx and one method per query. A real project
// regenerates them with sqlc; nothing here depends on supapool.
package sqlcdb

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

type DBTX interface {
	Exec(context.Context, string, ...interface{}) (pgconn.CommandTag, error)
	Query(context.Context, string, ...interface{}) (pgx.Rows, error)
	QueryRow(context.Context, string, ...interface{}) pgx.Row
}

func New(db DBTX) *Queries {
	return &Queries{db: db}
}

type Queries struct {
	db DBTX
}

func (q *Queries) WithTx(tx pgx.Tx) *Queries {
	return &Queries{
		db: tx,
	}
}
