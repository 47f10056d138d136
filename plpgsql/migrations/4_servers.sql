-- Several PostgreSQL servers. Each registered server names the dblink_fdw foreign server that holds
-- its host and port; the credentials are in a user mapping on that foreign server. Server 'local'
-- is the cluster of the admin database itself and always exists.

CREATE TABLE admmgt.servers (
    name            varchar(48) NOT NULL,
    fdwserver       name,
    maintdb         varchar(128),
    accepts_tenants boolean NOT NULL DEFAULT true,
    createdon       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT servers_pkey PRIMARY KEY (name),
    CONSTRAINT servers_name_check CHECK (name ~ '^[a-z_][a-z0-9_]*$'),
    CONSTRAINT servers_fdwserver_check CHECK (name = 'local' OR fdwserver IS NOT NULL)
);
COMMENT ON TABLE admmgt.servers IS
    'Database servers that host tenants. fdwserver: the dblink_fdw foreign server with host and port (the caller''s user mapping on it holds user and password); NULL only for local, the admin database''s own cluster (then admmgt_local if it exists, else the Unix socket). maintdb: the database admmgt connects to for CREATE DATABASE (default postgres; local: the admin database). accepts_tenants: placement may choose it.';
INSERT INTO admmgt.servers (name) VALUES ('local');

-- NULL on a row not created yet: create_database() places it (README, Several servers) and
-- writes the server here before it creates anything, so a rerun never moves a tenant.
ALTER TABLE admmgt.vendor_db_settings
    ADD COLUMN server varchar(48) REFERENCES admmgt.servers (name) ON UPDATE CASCADE,
    ADD COLUMN servertemplate boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN admmgt.vendor_db_settings.server IS
    'The server that hosts this database; NULL on a pending row lets create_database() choose the accepting server with the fewest tenants';
COMMENT ON COLUMN admmgt.vendor_db_settings.servertemplate IS
    'Row kept by admmgt: the copy of the template on a server other than local, from which that server''s tenants are created';
-- What exists is on local: created rows, the template, and pending rows whose database is
-- already there (create_database() adopts those; placing them elsewhere would orphan it).
UPDATE admmgt.vendor_db_settings v SET server = 'local'
 WHERE v.status = 2 OR v.istemplate
    OR (v.status = 1 AND EXISTS (SELECT 1 FROM pg_catalog.pg_database d WHERE d.datname = lower(btrim(v.dbname))));

ALTER TABLE admmgt.vendor_db_settings
    ADD CONSTRAINT vendor_db_settings_template_local CHECK (NOT istemplate OR coalesce(server, 'local') = 'local'),
    ADD CONSTRAINT vendor_db_settings_servertemplate_check
        CHECK (NOT servertemplate OR (NOT istemplate AND server IS NOT NULL AND server <> 'local'));

-- Tenant names stay unique across all servers; the template's copies share the template's name.
DROP INDEX admmgt.vendor_db_settings_dbname;
CREATE UNIQUE INDEX vendor_db_settings_dbname
    ON admmgt.vendor_db_settings (lower(dbname)) WHERE NOT coalesce(deleted, false) AND NOT servertemplate;
CREATE UNIQUE INDEX vendor_db_settings_one_copy
    ON admmgt.vendor_db_settings (server) WHERE servertemplate AND NOT coalesce(deleted, false);

-- The template's copies share its name: the log says which server a line is about.
ALTER TABLE admmgt.script_log ADD COLUMN server text;

-- A work item now says which server it goes to, and which step of a target's sequence it is.
ALTER TYPE admmgt.work_item ADD ATTRIBUTE server text, ADD ATTRIBUTE step text;
