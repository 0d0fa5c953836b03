-- +goose Up
ALTER TABLE integ_goose_notes ADD COLUMN done boolean NOT NULL DEFAULT false;
CREATE INDEX integ_goose_notes_done ON integ_goose_notes (done);

-- +goose Down
DROP INDEX integ_goose_notes_done;
ALTER TABLE integ_goose_notes DROP COLUMN done;
