-- A tenant's name is the database as it will be created: 'x ', ' X' and 'x' were three rows for
-- one database. New and changed rows may not have blanks around the name (rows that have them
-- already are refused, naming them, when create_database() or an operation reaches them).
ALTER TABLE admmgt.vendor_db_settings
    ADD CONSTRAINT vendor_db_settings_dbname_blanks CHECK (dbname = btrim(dbname)) NOT VALID;
