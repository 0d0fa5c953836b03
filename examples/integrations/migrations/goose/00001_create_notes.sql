-- +goose Up
CREATE TABLE integ_goose_notes (
  id   bigserial PRIMARY KEY,
  body text NOT NULL
);

-- +goose Down
DROP TABLE integ_goose_notes;
