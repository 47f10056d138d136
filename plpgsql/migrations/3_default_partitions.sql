-- Per table: a DEFAULT partition keeps rows outside the partitions' window instead of refusing them.
ALTER TABLE admmgt.script_tables ADD COLUMN defaultpart integer DEFAULT 0;
COMMENT ON COLUMN admmgt.script_tables.defaultpart IS
    '1: create a DEFAULT partition for the table (LIST) or for each RANGE parent; maintenance moves its rows into each new period partition';
