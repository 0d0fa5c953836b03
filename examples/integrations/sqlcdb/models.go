// Mirrors sqlc's models.go for schema.sql (see db.go).

package sqlcdb

import (
	"github.com/jackc/pgx/v5/pgtype"
)

type IntegSqlcAuthor struct {
	ID   int64
	Name string
	Bio  pgtype.Text
}
