-- The warm pool: spare databases made ahead from the template, so that create_database() can
-- hand one to a new tenant by renaming it instead of copying the template while the caller waits.
-- A pool database is a registry row of its own (pool = true): a target like any other for
-- applyScripts, the refreshes and maintenance, and left out of everything that lists tenants.
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN pool boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN admmgt.vendor_db_settings.pool IS
    'Row kept by admmgt: a spare database of the warm pool (refill_pool() makes it, create_database() renames it to a new tenant and marks this row deleted); never a tenant';

-- Only local for now: taking a pool database renames it in the admin session's own transaction,
-- which is what makes the take atomic; another server would need a second transaction there.
ALTER TABLE admmgt.servers ADD COLUMN pool_size integer NOT NULL DEFAULT 0;
ALTER TABLE admmgt.servers ADD CONSTRAINT servers_pool_size_check
    CHECK (pool_size BETWEEN 0 AND 1000 AND (pool_size = 0 OR name = 'local'));
COMMENT ON COLUMN admmgt.servers.pool_size IS
    'How many spare databases refill_pool() keeps ready on this server (0: no pool; only local may have one)';
