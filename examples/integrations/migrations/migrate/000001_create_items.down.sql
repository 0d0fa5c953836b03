DROP TABLE integ_migrate_items;
