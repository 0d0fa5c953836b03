-- name: GetAuthor :one
SELECT * FROM integ_sqlc_authors
WHERE id = $1 LIMIT 1;

-- name: ListAuthors :many
SELECT * FROM integ_sqlc_authors
ORDER BY name;

-- name: CountAuthors :one
SELECT count(*) FROM integ_sqlc_authors;

-- name: CreateAuthor :one
INSERT INTO integ_sqlc_authors (
  name, bio
) VALUES (
  $1, $2
)
RETURNING *;

-- name: DeleteAuthor :execrows
DELETE FROM integ_sqlc_authors
WHERE id = $1;
