ALTER TABLE integ_migrate_items ADD COLUMN price_cents bigint NOT NULL DEFAULT 0;
CREATE INDEX integ_migrate_items_price ON integ_migrate_items (price_cents);
