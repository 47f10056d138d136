-- CALL admmgt.refill_pool(); and the pooled path of create_database().
-- The warm pool: spare databases made ahead from the template on local (servers.pool_size of
-- them), registered as rows with pool = true. They are targets, so applyScripts, the refreshes
-- and maintenance keep them at the template's version like any tenant; everything that lists or
-- chooses tenants leaves them out. create_database() hands a ready one to a pending tenant on
-- local by renaming it, in one transaction of the admin session itself: the rename, the grants,
-- the registry and the upkeep records commit together or not at all (ALTER DATABASE RENAME is
-- transactional, unlike CREATE DATABASE). refill_pool() makes new ones later, off the tenant's
-- critical path.

CREATE OR REPLACE FUNCTION admmgt._pool_prefix()
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: how the names of this admin database's pool databases begin, <admin database>_pool_ (admmgt<its oid>_pool_ when its name is not a short plain identifier): two admin databases on one cluster never share a pool, and no tenant may take such a name */
SELECT CASE WHEN d.datname ~ '^[a-z][a-z0-9_]{0,39}$' THEN d.datname::text ELSE 'admmgt' || d.oid END || '_pool_'
  FROM pg_catalog.pg_database d WHERE d.datname = current_database();
$$;

-- Views, not functions, say which pool database is ready: the install drops every admmgt routine
-- without CASCADE, so no view may call one.
CREATE OR REPLACE VIEW admmgt.pool_databases AS
SELECT r.id, lower(r.dbname) AS dbname, r.on_server AS server, r.status, coalesce(r.scriptversion, 0) AS version,
       coalesce(f.failures, 0) AS failures,
       coalesce(r.status = 2 AND r.kind = 'database' AND r.on_server = 'local'
                AND coalesce(r.scriptversion, 0) = tv.version AND f.failures IS NULL, false) AS ready
  FROM admmgt.registry r
  -- Uncorrelated, so that each is read once and not once per pool database: create_database()
  -- asks this view on the tenant's critical path.
  LEFT JOIN (SELECT t.version FROM admmgt.targets t WHERE t.istemplate AND t.kind = 'database') tv ON true
  LEFT JOIN (SELECT x.target_id, count(*) AS failures FROM admmgt.target_results x WHERE NOT x.ok GROUP BY x.target_id) f
         ON f.target_id = r.id
 WHERE r.pool AND NOT r.deleted;
COMMENT ON VIEW admmgt.pool_databases IS
    'The warm pool''s spare databases: status 1 (not made yet, or a refill that failed) or 2, their version, their failed outcomes (a script, refresh or maintenance that failed there), and ready: created on local at the template''s version with no failure, which is what create_database() hands out.';

CREATE OR REPLACE VIEW admmgt.pool_status AS
SELECT s.name::text AS server, s.pool_size,
       count(p.id) FILTER (WHERE p.ready) AS ready,
       count(p.id) FILTER (WHERE p.status = 2 AND NOT p.ready) AS not_ready,
       count(p.id) FILTER (WHERE p.status <> 2) AS pending
  FROM admmgt.servers s
  LEFT JOIN admmgt.pool_databases p ON p.server = s.name
 GROUP BY s.name, s.pool_size
HAVING s.pool_size > 0 OR count(p.id) > 0;
COMMENT ON VIEW admmgt.pool_status IS
    'The warm pool per server that has one: pool_size (what refill_pool() keeps), ready (handed out by create_database()), not_ready (created, but behind the template or with a failure: applyScripts and the other upkeep bring them up), pending (refill_pool() makes them).';

CREATE OR REPLACE FUNCTION admmgt._pool_ready()
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the ready pool databases (pool_databases.ready) as targets, oldest first */
SELECT coalesce(array_agg(t ORDER BY t.id), '{}')
  FROM admmgt.targets t JOIN admmgt.pool_databases p ON p.id = t.id AND p.ready;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_take(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of taking a pool database for a tenant: the create and grant steps of a plain create in one, at the pool database's version (p_item.scriptid) */
BEGIN
    RETURN admmgt._book_grant(p_item, p_state, admmgt._book_create(p_item, p_state, p_booking));
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._take_pool_database(p_row admmgt.vendor_db_settings, p_name text, p_pool admmgt.targets, p_run bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: give pool database p_pool to pending tenant p_row as p_name, all in one subtransaction: rename it, grant what the grant step of a plain create grants, book the tenant created at the pool database's version with its upkeep records, mark the pool row deleted. NULL when done; else the SQLSTATE of the error, after a WARNING, with nothing changed */
DECLARE
    v_item admmgt.work_item;
    v_state admmgt.exec_result;
    v_stmt text;
    v_sessions int;
BEGIN
    v_item := admmgt._item('take', p_row.id, p_name, 'local', current_database(), p_pool.version,
                           format('ALTER DATABASE %I RENAME TO %I', p_pool.dbname, p_name) || admmgt._access_stmts(p_row.id, p_name), true);
    v_state.started_at := clock_timestamp();
    -- ALTER DATABASE RENAME waits up to five seconds for the sessions in the database to go (it
    -- ends autovacuum workers there, not clients'): a spare database in use is passed over at once.
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    EXECUTE format('SELECT count(*)::int FROM pg_catalog.pg_stat_activity a WHERE a.datname = %L AND a.pid <> pg_catalog.pg_backend_pid() AND %s',
                   p_pool.dbname, admmgt._in_the_way_sql('a'))
       INTO v_sessions;
    IF v_sessions > 0 THEN
        RAISE WARNING 'admmgt create: tenant % could not take pool database %: % session(s) are connected to it (SQLSTATE 55006)', p_name, p_pool.dbname, v_sessions
            USING HINT = 'Nothing was changed; the next spare database is tried. A refresh or maintenance may be working on it, or somebody connected by hand.';
        RETURN '55006';
    END IF;
    BEGIN
        -- Re-read under a row lock: a DBA's UPDATE or a concurrent booking may have changed it.
        PERFORM 1 FROM admmgt.vendor_db_settings v
         WHERE v.id = p_pool.id AND v.pool AND v.status = 2 AND NOT coalesce(v.deleted, false)
           AND coalesce(v.scriptversion, 0) = p_pool.version AND lower(v.dbname) = p_pool.dbname
           FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'admmgt: pool database % changed since it was chosen', p_pool.dbname
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        -- Fails with 55006 while any session is in it (a refresh or maintenance of this moment).
        FOREACH v_stmt IN ARRAY v_item.stmts LOOP
            EXECUTE v_stmt;
        END LOOP;
        v_state.done := true;
        v_state.ok := true;
        v_state.broken := false;
        v_state.results := cardinality(v_item.stmts);
        v_state.finished_at := clock_timestamp();
        PERFORM admmgt._record('create', v_item, v_state, p_run, true);
        -- After the booking, whose status change made the tenant's upkeep records be forgotten:
        -- what maintenance and refresh made sure of in the pool database holds for the tenant now.
        INSERT INTO admmgt.upkeep_partitions (target_id, scriptversion, from_day, to_day, run_id)
        SELECT p_row.id, u.scriptversion, u.from_day, u.to_day, u.run_id FROM admmgt.upkeep_partitions u WHERE u.target_id = p_pool.id;
        INSERT INTO admmgt.upkeep_refresh (target_id, refresh, scriptversion, digest, run_id)
        SELECT p_row.id, u.refresh, u.scriptversion, u.digest, u.run_id FROM admmgt.upkeep_refresh u WHERE u.target_id = p_pool.id;
        UPDATE admmgt.vendor_db_settings SET deleted = true, deletedon = current_timestamp, modifiedon = current_timestamp
         WHERE id = p_pool.id;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'admmgt create: tenant % could not take pool database %: % (SQLSTATE %)', p_name, p_pool.dbname, SQLERRM, SQLSTATE
            USING HINT = 'Nothing was changed: the pool database keeps its name and row. The tenant is created from the template instead.';
        RETURN SQLSTATE;
    END;
    RAISE NOTICE 'admmgt create: % created from pool database % at version %', p_name, p_pool.dbname, p_pool.version;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._take_from_pool(p_template admmgt.vendor_db_settings, p_run bigint)
LANGUAGE plpgsql
AS $$
/* purpose: inside create_database's frame: give each placed pending tenant on local whose database does not exist yet a ready pool database, committing each; a pool database someone is connected to is passed over for the next, and a tenant whose take fails otherwise is left to the plain create. Raises nothing */
DECLARE
    v_row admmgt.vendor_db_settings;
    v_name text;
    v_pool admmgt.targets;
    v_ready admmgt.targets[] := admmgt._pool_ready();
    v_failed text;
    v_stale boolean := false;
BEGIN
    FOR v_row IN SELECT p.* FROM admmgt._pending_tenants() p WHERE p.server = 'local' LOOP
        IF v_stale THEN
            v_ready := admmgt._pool_ready();
            v_stale := false;
        END IF;
        EXIT WHEN cardinality(v_ready) = 0;
        BEGIN
            v_name := admmgt._check_pending_row(v_row, p_template);
        EXCEPTION WHEN OTHERS THEN
            -- The plain path checks it again and says why it waits.
            CONTINUE;
        END;
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_database d WHERE d.datname = v_name);
        v_stale := true;
        FOREACH v_pool IN ARRAY v_ready LOOP
            v_failed := admmgt._take_pool_database(v_row, v_name, v_pool, p_run);
            -- In use, or dropped by hand: another pool database may do. Anything else is the tenant's.
            EXIT WHEN v_failed IS NULL OR v_failed NOT IN ('55006', '3D000', '55000');
        END LOOP;
        COMMIT;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._pool_deficit()
RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: before a refill, under the lock: mark deleted the created pool rows whose database was dropped by hand, then register as pending the pool databases still missing on local (each named <prefix><id>); returns how many pool rows are pending */
DECLARE
    v_size int := (SELECT s.pool_size FROM admmgt.servers s WHERE s.name = 'local');
    v_gone text;
BEGIN
    WITH gone AS (
        UPDATE admmgt.vendor_db_settings v SET deleted = true, deletedon = current_timestamp, modifiedon = current_timestamp
         WHERE v.pool AND v.status = 2 AND NOT coalesce(v.deleted, false)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database d WHERE d.datname = lower(v.dbname))
        RETURNING lower(v.dbname) AS dbname
    )
    SELECT string_agg(g.dbname, ', ' ORDER BY g.dbname) INTO v_gone FROM gone g;
    IF v_gone IS NOT NULL THEN
        RAISE NOTICE 'admmgt pool: pool database(s) % no longer exist; their rows are marked deleted', v_gone;
    END IF;
    INSERT INTO admmgt.vendor_db_settings (id, dbname, status, server, kind, pool, updateflag)
    SELECT x.id, admmgt._pool_prefix() || x.id, 1, 'local', 'database', true, true
      FROM (SELECT nextval(pg_catalog.pg_get_serial_sequence('admmgt.vendor_db_settings', 'id')) AS id
              FROM generate_series(1, v_size - (SELECT count(*)::int FROM admmgt.vendor_db_settings v
                                                  WHERE v.pool AND NOT coalesce(v.deleted, false)))) x;
    RETURN (SELECT count(*)::int FROM admmgt._pending_tenants(true));
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.refill_pool(p_size int DEFAULT NULL, p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: make the warm pool on local whole again: as many spare copies of the template as servers.pool_size says (p_size sets it first; 0 turns the pool off, and the spare databases left are still handed out), each with PUBLIC's CONNECT revoked; a pool database whose create failed is tried again, and one dropped by hand forgotten. Shares create_database's lock: it copies the template */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_create admmgt.work_item[] := '{}'::admmgt.work_item[];
    v_adopt admmgt.work_item[] := '{}'::admmgt.work_item[];
    v_run bigint;
    v_error admmgt.error_state;
    v_ready int;
BEGIN
    PERFORM admmgt._check_call('refill_pool', p_parallel);
    IF p_size IS NOT NULL AND (p_size < 0 OR p_size > 1000) THEN
        RAISE EXCEPTION 'admmgt.refill_pool: p_size must be between 0 and 1000, not %', p_size
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'p_size is how many spare databases to keep ready on local; 0 turns the pool off.';
    END IF;
    v_template := admmgt._template();
    CALL admmgt._begin_call('pool', 'refill_pool', p_wait_seconds, v_run);
    BEGIN
        IF p_size IS NOT NULL THEN
            UPDATE admmgt.servers SET pool_size = p_size WHERE name = 'local';
        END IF;
        v_template := admmgt._template();
        IF admmgt._pool_deficit() > 0 THEN
            SELECT * INTO v_create, v_adopt FROM admmgt._pending_tenant_items(v_template, true);
            PERFORM admmgt._check_template_free(v_create, v_template.dbname);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('pool', v_run, v_error);
    COMMIT;
    CALL admmgt._run('adopt', v_adopt, p_parallel, v_run);
    CALL admmgt._run('create', v_create, p_parallel, v_run);
    v_ready := cardinality(admmgt._pool_ready());
    RAISE NOTICE 'admmgt pool: % of % spare database(s) ready on local at version %', v_ready,
                 (SELECT s.pool_size FROM admmgt.servers s WHERE s.name = 'local'), v_template.scriptversion;
    CALL admmgt._end_call('pool', v_run);
END;
$$;
