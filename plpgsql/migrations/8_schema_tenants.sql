-- Schema per tenant: a target is a database or a schema. A schema target lives in the admin
-- database, or in the database schema_db names on its server; its tenant-side ledger is in that
-- database's schema admmgt, one row per schema and script.
ALTER TABLE admmgt.vendor_db_settings
    ADD COLUMN kind text,
    ADD COLUMN schema_db varchar(128);
ALTER TABLE admmgt.vendor_db_settings
    ADD CONSTRAINT vendor_db_settings_kind_check CHECK (kind IN ('database', 'schema')),
    ADD CONSTRAINT vendor_db_settings_schema_db_check CHECK (schema_db IS NULL OR kind IS DISTINCT FROM 'database');
COMMENT ON COLUMN admmgt.vendor_db_settings.kind IS
    'database or schema; NULL on a pending row until create_database() or create_schema() makes it (a created row without one is a database)';
COMMENT ON COLUMN admmgt.vendor_db_settings.schema_db IS
    'A schema target: the database on its server that holds the schema; NULL: the admin database';
-- Every row that exists so far is a database.
UPDATE admmgt.vendor_db_settings SET kind = 'database' WHERE status = 2 OR servertemplate OR istemplate;

-- One template per kind: the database template is the canary of the database targets, the schema
-- template of the schema targets. A pending template without a kind takes the database's place
-- until create_schema() makes it a schema.
DROP INDEX admmgt.vendor_db_settings_one_template;
CREATE UNIQUE INDEX vendor_db_settings_one_template
    ON admmgt.vendor_db_settings ((coalesce(kind, 'database'))) WHERE istemplate AND NOT coalesce(deleted, false);
