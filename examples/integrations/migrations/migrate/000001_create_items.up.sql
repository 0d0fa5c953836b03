CREATE TABLE integ_migrate_items (
  id   bigserial PRIMARY KEY,
  name text NOT NULL
);
