// Mirrors sqlc's query.sql.go for query.sql (see db.go).
// source: query.sql

package sqlcdb

import (
	"context"

	"github.com/jackc/pgx/v5/pgtype"
)

const countAuthors = `-- name: CountAuthors :one
SELECT count(*) FROM integ_sqlc_authors
`

func (q *Queries) CountAuthors(ctx context.Context) (int64, error) {
	row := q.db.QueryRow(ctx, countAuthors)
	var count int64
	err := row.Scan(&count)
	return count, err
}

const createAuthor = `-- name: CreateAuthor :one
INSERT INTO integ_sqlc_authors (
  name, bio
) VALUES (
  $1, $2
)
RETURNING id, name, bio
`

type CreateAuthorParams struct {
	Name string
	Bio  pgtype.Text
}

func (q *Queries) CreateAuthor(ctx context.Context, arg CreateAuthorParams) (IntegSqlcAuthor, error) {
	row := q.db.QueryRow(ctx, createAuthor, arg.Name, arg.Bio)
	var i IntegSqlcAuthor
	err := row.Scan(&i.ID, &i.Name, &i.Bio)
	return i, err
}

const deleteAuthor = `-- name: DeleteAuthor :execrows
DELETE FROM integ_sqlc_authors
WHERE id = $1
`

func (q *Queries) DeleteAuthor(ctx context.Context, id int64) (int64, error) {
	result, err := q.db.Exec(ctx, deleteAuthor, id)
	if err != nil {
		return 0, err
	}
	return result.RowsAffected(), nil
}

const getAuthor = `-- name: GetAuthor :one
SELECT id, name, bio FROM integ_sqlc_authors
WHERE id = $1 LIMIT 1
`

func (q *Queries) GetAuthor(ctx context.Context, id int64) (IntegSqlcAuthor, error) {
	row := q.db.QueryRow(ctx, getAuthor, id)
	var i IntegSqlcAuthor
	err := row.Scan(&i.ID, &i.Name, &i.Bio)
	return i, err
}

const listAuthors = `-- name: ListAuthors :many
SELECT id, name, bio FROM integ_sqlc_authors
ORDER BY name
`

func (q *Queries) ListAuthors(ctx context.Context) ([]IntegSqlcAuthor, error) {
	rows, err := q.db.Query(ctx, listAuthors)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []IntegSqlcAuthor
	for rows.Next() {
		var i IntegSqlcAuthor
		if err := rows.Scan(&i.ID, &i.Name, &i.Bio); err != nil {
			return nil, err
		}
		items = append(items, i)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return items, nil
}
