DROP INDEX integ_migrate_items_price;
ALTER TABLE integ_migrate_items DROP COLUMN price_cents;
