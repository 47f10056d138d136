-- A tenant's name is the database as it will be created: 'x ', ' X' and 'x' were three rows for
-- one database. New and changed rows may not have blanks around the name (rows that have them
-- already are refused, naming them, when create_database() or an operation reaches them).
ALTER TABLE admmgt.vendor_db_settings
    ADD CONSTRAINT vendor_db_settings_dbname_blanks CHECK (dbname = btrim(dbname)) NOT VALID;

-- Refresh copies the template's routines into every tenant. A SECURITY DEFINER routine runs with
-- its owner's rights in each of them: one owned by a superuser, or one without a pinned
-- search_path, is refused unless a DBA has reviewed it and listed it here.
CREATE TABLE admmgt.definer_allowed (
    signature  text PRIMARY KEY,
    note       text,
    allowed_by name NOT NULL DEFAULT current_user,
    allowed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE admmgt.definer_allowed IS
    'SECURITY DEFINER routines of the template that refresh may copy although a superuser owns them or they pin no search_path: signature as regprocedure prints it, e.g. mgttest.run_sql(text)';

-- One cluster registered twice (as itself under another name, or over TCP and a socket) made
-- create_database() adopt the real template as a copy of itself. add_server() records each
-- server's system identifier and refuses one that is already registered.
ALTER TABLE admmgt.servers ADD COLUMN system_identifier text;
COMMENT ON COLUMN admmgt.servers.system_identifier IS
    'pg_control_system().system_identifier of the cluster, as add_server() found it (NULL: registered with p_check => false, or before this column)';

-- A database that merely has a pending tenant's name and is empty was adopted silently: it may be
-- somebody else's. Adopting one that is not a copy of the template now needs the DBA's word.
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN adopt_empty boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN admmgt.vendor_db_settings.adopt_empty IS
    'true: create_database() may take over an existing empty database of this name (one that is a copy of the template, with its ledger, is always taken over)';

-- A script counts as applied everywhere only from what the targets recorded: each ran it (an ok
-- outcome), or was made from a copy of the template that had it. baseversion is the version a
-- database had when admmgt created or adopted it; a scriptversion set by hand proves nothing.
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN baseversion int;
COMMENT ON COLUMN admmgt.vendor_db_settings.baseversion IS
    'The version the database had when create_database() created or adopted it (the scripts below it came with its copy)';
-- Databases created before this version: what they have, they are taken to have had from the start.
UPDATE admmgt.vendor_db_settings SET baseversion = scriptversion WHERE status = 2 AND baseversion IS NULL;
CREATE UNIQUE INDEX servers_system_identifier ON admmgt.servers (system_identifier) WHERE system_identifier IS NOT NULL;
