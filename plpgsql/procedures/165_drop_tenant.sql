-- CALL admmgt.drop_tenant('acme', p_confirm => 'acme');
-- Offboarding: a created tenant's sessions ended, its database or schema renamed to an archive
-- name (or dropped), its registry row marked deleted, every step in script_log (operation drop).
-- Without a confirmation that retypes the tenant's name (or with p_plan) it only says what it
-- would do. It holds the lock of create and apply (_lock_key('drop') is 1), so it never races
-- create_database(), create_schema() or applyScripts(), and works through work items of kind
-- drop run by _run like every other operation: on its server's maintenance database for a
-- database target, in the database that holds it for a schema target.

CREATE OR REPLACE FUNCTION admmgt._drop_row(p_dbname text)
RETURNS admmgt.vendor_db_settings
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the registry row drop_tenant works on: a created tenant; the template, a copy of it, a pending, deleted or unknown name are refused, naming it, before anything happens */
DECLARE
    v admmgt.vendor_db_settings;
    v_name text := lower(btrim(p_dbname));
    v_when timestamp;
BEGIN
    SELECT * INTO v FROM admmgt.vendor_db_settings
     WHERE lower(btrim(dbname)) = v_name AND NOT coalesce(deleted, false) AND NOT servertemplate AND NOT pool
     ORDER BY id LIMIT 1;
    IF FOUND AND coalesce(v.istemplate, false) THEN
        RAISE EXCEPTION 'admmgt: drop_tenant %: it is the template', v_name
            USING ERRCODE = 'reserved_name',
                  HINT = 'admmgt never drops a template: every tenant of its kind is made from it and every script runs on it first.';
    ELSIF FOUND AND v.status IS DISTINCT FROM 2 THEN
        RAISE EXCEPTION 'admmgt: drop_tenant %: it is not created (status %)', v_name, coalesce(v.status::text, 'NULL')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('A pending row has nothing to drop: DELETE FROM admmgt.vendor_db_settings WHERE id = %s;', v.id);
    ELSIF FOUND THEN
        RETURN v;
    END IF;
    IF EXISTS (SELECT 1 FROM admmgt.vendor_db_settings o
                WHERE lower(btrim(o.dbname)) = v_name AND NOT coalesce(o.deleted, false) AND o.servertemplate) THEN
        RAISE EXCEPTION 'admmgt: drop_tenant %: it is a copy of the template', v_name
            USING ERRCODE = 'reserved_name',
                  HINT = 'The copies of the template on other servers are admmgt''s own: their tenants are made from them.';
    END IF;
    SELECT max(o.deletedon) INTO v_when FROM admmgt.vendor_db_settings o WHERE lower(btrim(o.dbname)) = v_name AND o.deleted;
    IF EXISTS (SELECT 1 FROM admmgt.vendor_db_settings o WHERE lower(btrim(o.dbname)) = v_name AND o.deleted) THEN
        RAISE EXCEPTION 'admmgt: drop_tenant %: it is deleted already%', v_name, coalesce(' (on ' || v_when::text || ')', '')
            USING ERRCODE = 'undefined_object',
                  HINT = format('See SELECT * FROM admmgt.script_log WHERE operation = %L AND dbname = %L ORDER BY id; for where it went.', 'drop', v_name);
    END IF;
    RAISE EXCEPTION 'admmgt: drop_tenant %: no such tenant', coalesce(p_dbname, 'NULL')
        USING ERRCODE = 'undefined_object', HINT = 'See SELECT dbname, status FROM admmgt.tenant_status.';
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._archive_name(p_name text, p_day date)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the name an archived tenant's database or schema gets: <name>_archived_<yyyymmdd>, the name cut so that the whole is at most 63 bytes (tenant names are ASCII) */
SELECT left(p_name, 63 - octet_length('_archived_00000000')) || '_archived_' || to_char(p_day, 'YYYYMMDD');
$$;

CREATE OR REPLACE FUNCTION admmgt._remote_value(p_server text, p_db text, p_query text)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the one value a one-row query returns in a database of a registered server; NULL when it cannot be asked (the work items then fail on their own connection, naming it) */
BEGIN
    RETURN (SELECT r.v FROM dblink(admmgt._connstr(p_server, p_db), p_query) AS r(v text) LIMIT 1);
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._drop_sessions_sql(p_dbname text, p_terminate boolean)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the query, run on the server's maintenance database, that counts (p_terminate: ends, with pg_terminate_backend) the sessions connected to a tenant's database, except the one asking and autovacuum workers (_in_the_way_sql) */
SELECT format('SELECT count(*)%s::text FROM pg_catalog.pg_stat_activity a WHERE a.datname = %L AND a.pid <> pg_catalog.pg_backend_pid() AND %s',
              CASE WHEN p_terminate THEN ' FILTER (WHERE pg_catalog.pg_terminate_backend(a.pid))' ELSE '' END, p_dbname,
              admmgt._in_the_way_sql('a'));
$$;

CREATE OR REPLACE FUNCTION admmgt._sessions_gone_sql(p_dbname text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a block run on the maintenance database before a RENAME: pg_terminate_backend only signals, so wait up to five seconds for the ended sessions to go, then refuse, naming them, those still there (one that connected again, say) */
SELECT format('DO %L', format($b$DECLARE
    v_who text;
    v_deadline timestamptz := pg_catalog.clock_timestamp() + interval '5 seconds';
BEGIN
    LOOP
        PERFORM pg_catalog.pg_stat_clear_snapshot();
        SELECT pg_catalog.string_agg(pg_catalog.format('pid %%s (user %%s, application %%L)', a.pid, a.usename, a.application_name), ', ' ORDER BY a.pid)
          INTO v_who
          FROM pg_catalog.pg_stat_activity a WHERE a.datname = %1$L AND a.pid <> pg_catalog.pg_backend_pid() AND %2$s;
        EXIT WHEN v_who IS NULL OR pg_catalog.clock_timestamp() >= v_deadline;
        PERFORM pg_catalog.pg_sleep(0.1);
    END LOOP;
    IF v_who IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: database %% still has sessions: %%', %1$L, v_who
            USING ERRCODE = 'object_in_use',
                  HINT = 'They connected again, or could not be ended (pg_terminate_backend needs pg_signal_backend): stop what connects, then call drop_tenant() again.';
    END IF;
END$b$, p_dbname, admmgt._in_the_way_sql('a')));
$$;

CREATE OR REPLACE FUNCTION admmgt._drop_archive_taken(p_target admmgt.targets, p_archive text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: whether the archive name is taken already where the tenant is: a database of its server, or a schema of the database that holds it; NULL when that cannot be asked */
BEGIN
    IF p_target.nsp IS NULL THEN
        RETURN p_archive = ANY (admmgt._server_databases(p_target.server));
    END IF;
    RETURN admmgt._remote_value(p_target.server, p_target.conn_db,
                                format('SELECT count(*)::text FROM pg_catalog.pg_namespace WHERE nspname = %L', p_archive))::int > 0;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_archive(p_target admmgt.targets, p_archive text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse an archive name that is taken already, naming it; a server that cannot be asked does not count (the rename then fails on its own) */
BEGIN
    IF p_archive IS NOT NULL AND coalesce(admmgt._drop_archive_taken(p_target, p_archive), false) THEN
        IF p_target.nsp IS NULL THEN
            RAISE EXCEPTION 'admmgt: drop_tenant %: its archive name % is a database of server % already', p_target.dbname, p_archive, p_target.server
                USING ERRCODE = 'duplicate_database',
                      HINT = 'The tenant was archived once today already under that name: drop or rename that database, or drop the tenant with p_archive => false.';
        END IF;
        RAISE EXCEPTION 'admmgt: drop_tenant %: its archive name % is a schema of database % already', p_target.dbname, p_archive, p_target.conn_db
            USING ERRCODE = 'duplicate_schema',
                  HINT = 'The tenant was archived once today already under that name: drop or rename that schema, or drop the tenant with p_archive => false.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._archive_revoke(p_target_id bigint, p_what text, p_archive text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: an archived tenant's login role loses what it had on its database or schema (p_what: DATABASE or SCHEMA), which keeps its grants under the archive name */
SELECT coalesce(array_agg(format('REVOKE ALL ON %s %I FROM %I', p_what, p_archive, lower(btrim(v.loginrole)))), '{}')
  FROM admmgt.vendor_db_settings v WHERE v.id = p_target_id AND v.loginrole IS NOT NULL;
$$;

CREATE OR REPLACE FUNCTION admmgt._drop_items(p_target admmgt.targets, p_archive text)
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the work items that offboard a tenant (p_archive: its archive name; NULL drops it). A database: on its server's maintenance database, its sessions ended (step sessions), then, once they are gone, ALTER DATABASE ... RENAME (step rename), or DROP DATABASE ... WITH (FORCE) (step drop, outside a transaction). A schema: in the database that holds it, one transaction that renames (or drops) it together with its rows in that database's ledger (one step). An archive is no longer its login role's */
SELECT CASE
    WHEN p_target.nsp IS NULL AND p_archive IS NOT NULL THEN ARRAY[
        admmgt._item('drop', p_target.id, p_target.dbname, p_target.server, admmgt._maint_db(p_target.server), NULL,
                     ARRAY[admmgt._drop_sessions_sql(p_target.dbname, true)], true, NULL, 'sessions'),
        admmgt._item('drop', p_target.id, p_target.dbname, p_target.server, admmgt._maint_db(p_target.server), NULL,
                     ARRAY[admmgt._sessions_gone_sql(p_target.dbname), format('ALTER DATABASE %I RENAME TO %I', p_target.dbname, p_archive)]
                     || admmgt._archive_revoke(p_target.id, 'DATABASE', p_archive),
                     true, NULL, 'rename')]
    WHEN p_target.nsp IS NULL THEN ARRAY[
        admmgt._item('drop', p_target.id, p_target.dbname, p_target.server, admmgt._maint_db(p_target.server), NULL,
                     ARRAY[admmgt._drop_sessions_sql(p_target.dbname, true)], true, NULL, 'sessions'),
        admmgt._item('drop', p_target.id, p_target.dbname, p_target.server, admmgt._maint_db(p_target.server), NULL,
                     ARRAY[format('DROP DATABASE %I WITH (FORCE)', p_target.dbname)], false, NULL, 'drop')]
    WHEN p_archive IS NOT NULL THEN ARRAY[
        admmgt._target_item('drop', p_target, NULL,
                            ARRAY[format('ALTER SCHEMA %I RENAME TO %I', p_target.nsp, p_archive),
                                  format('UPDATE admmgt.applied_schema_scripts SET schemaname = %L WHERE schemaname = %L', p_archive, p_target.nsp),
                                  format('UPDATE admmgt.applied_schema_parts SET schemaname = %L WHERE schemaname = %L', p_archive, p_target.nsp)]
                            || admmgt._archive_revoke(p_target.id, 'SCHEMA', p_archive),
                            true, NULL, 'rename')]
    ELSE ARRAY[
        admmgt._target_item('drop', p_target, NULL,
                            ARRAY[format('DROP SCHEMA %I CASCADE', p_target.nsp),
                                  format('DELETE FROM admmgt.applied_schema_scripts WHERE schemaname = %L', p_target.nsp),
                                  format('DELETE FROM admmgt.applied_schema_parts WHERE schemaname = %L', p_target.nsp)],
                            true, NULL, 'drop')]
    END;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_drop(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of offboarding: how many sessions were ended; after the rename or drop, the registry row marked deleted, with where the data went (the archive name) in the log */
DECLARE
    v_what text := CASE WHEN p_item.nsp IS NULL THEN 'database' ELSE 'schema' END;
    v_archive text;
BEGIN
    IF NOT p_booking.ok THEN
        RETURN p_booking;
    END IF;
    IF p_item.step = 'sessions' THEN
        RETURN admmgt._success_lines(p_booking, ARRAY[
            format('ended %s session(s) connected to database %s', coalesce(p_state.outputs[cardinality(admmgt._batch_prefix(true)) + 1], '?'), p_item.dbname)]);
    END IF;
    IF p_item.step = 'rename' THEN
        -- The archive name is the last name of the RENAME statement (a database's is its last statement, a schema's its first).
        v_archive := (SELECT (parse_ident(substring(s FROM ' RENAME TO (.+)$')))[1] FROM unnest(p_item.stmts) s WHERE s LIKE 'ALTER % RENAME TO %' LIMIT 1);
    END IF;
    UPDATE admmgt.vendor_db_settings SET deleted = true, deletedon = current_timestamp, modifiedon = current_timestamp
     WHERE id = p_item.target_id;
    RETURN admmgt._success_lines(p_booking,
        ARRAY(SELECT s FROM unnest(p_item.stmts) s WHERE s NOT LIKE 'DO %')
        || CASE WHEN v_archive IS NOT NULL
                THEN format('registry row id %s marked deleted; archive: %s %s%s on server %s', p_item.target_id, v_what, v_archive,
                            CASE WHEN p_item.nsp IS NOT NULL THEN ' in database ' || p_item.conn_db ELSE '' END, coalesce(p_item.server, 'local'))
                ELSE format('registry row id %s marked deleted; %s %s dropped', p_item.target_id, v_what, p_item.dbname) END);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._drop_plan(p_target admmgt.targets, p_row_id bigint, p_archive text)
RETURNS text[]
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: what drop_tenant would do to a tenant, one line each: the sessions it would end (counted now), what it would rename or drop and to what, the row it would mark */
DECLARE
    v_sessions text;
BEGIN
    IF p_target.nsp IS NULL THEN
        v_sessions := admmgt._remote_value(p_target.server, admmgt._maint_db(p_target.server), admmgt._drop_sessions_sql(p_target.dbname, false));
        RETURN ARRAY[
            format('would end %s connected to database %s on server %s', coalesce(v_sessions || ' session(s)', 'the sessions (the server cannot be asked now)'),
                   p_target.dbname, p_target.server),
            CASE WHEN p_archive IS NOT NULL THEN format('would rename database %s to %s', p_target.dbname, p_archive)
                 ELSE format('would drop database %s (DROP DATABASE ... WITH (FORCE))', p_target.dbname) END,
            format('would mark registry row id %s (%s) deleted', p_row_id, p_target.dbname)];
    END IF;
    RETURN ARRAY[
        format('would end no session: schema %s shares database %s with other targets (its statements wait up to admmgt.lock_timeout for their locks)',
               p_target.nsp, p_target.conn_db),
        CASE WHEN p_archive IS NOT NULL
             THEN format('would rename schema %s of database %s to %s, and its rows in that database''s ledger with it', p_target.nsp, p_target.conn_db, p_archive)
             ELSE format('would drop schema %s of database %s (DROP SCHEMA ... CASCADE), and delete its rows in that database''s ledger', p_target.nsp, p_target.conn_db) END,
        format('would mark registry row id %s (%s) deleted', p_row_id, p_target.dbname)];
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.drop_tenant(p_dbname text, p_confirm text DEFAULT NULL, p_archive boolean DEFAULT true,
                                               p_plan boolean DEFAULT false, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: offboard a created tenant: its sessions ended, its database or schema renamed to <name>_archived_<yyyymmdd> (p_archive => false: dropped), its registry row marked deleted, every step logged (operation drop); without p_confirm retyping its name, or with p_plan, only says what it would do */
DECLARE
    v admmgt.vendor_db_settings;
    v_target admmgt.targets;
    v_archive text;
    v_line text;
    v_items admmgt.work_item[];
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    PERFORM admmgt._check_call('drop_tenant', NULL);
    v := admmgt._drop_row(p_dbname);
    SELECT * INTO v_target FROM admmgt.targets t WHERE t.id = v.id;
    v_archive := CASE WHEN coalesce(p_archive, true) THEN admmgt._archive_name(v_target.dbname, current_date) END;
    PERFORM admmgt._check_archive(v_target, v_archive);
    IF coalesce(p_plan, false) OR p_confirm IS NULL OR lower(btrim(p_confirm)) IS DISTINCT FROM v_target.dbname THEN
        RAISE NOTICE 'admmgt drop: plan for tenant % (%)', v_target.dbname,
            CASE WHEN v_target.nsp IS NULL THEN format('database on server %s', v_target.server)
                 ELSE format('schema of database %s on server %s', v_target.conn_db, v_target.server) END;
        FOREACH v_line IN ARRAY admmgt._drop_plan(v_target, v.id, v_archive) LOOP
            RAISE NOTICE 'admmgt drop: %', v_line;
        END LOOP;
        IF NOT coalesce(p_plan, false) AND p_confirm IS NOT NULL THEN
            RAISE EXCEPTION 'admmgt: drop_tenant %: the confirmation % is not its name; nothing was changed', v_target.dbname, quote_literal(p_confirm)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Retype the tenant''s name: CALL admmgt.drop_tenant(%L, p_confirm => %L);', v_target.dbname, v_target.dbname);
        END IF;
        RAISE NOTICE 'admmgt drop: nothing was changed%', CASE WHEN coalesce(p_plan, false) THEN ' (plan)'
            ELSE format('; to do it, retype the name: CALL admmgt.drop_tenant(%L, p_confirm => %L)', v_target.dbname, v_target.dbname) END;
        RETURN;
    END IF;
    CALL admmgt._begin_call('drop', 'drop_tenant', p_wait_seconds, v_run);
    BEGIN
        -- Read again under the lock: a create or apply that was running may have changed the row.
        v := admmgt._drop_row(p_dbname);
        SELECT * INTO v_target FROM admmgt.targets t WHERE t.id = v.id;
        PERFORM admmgt._check_archive(v_target, v_archive);
        v_items := admmgt._drop_items(v_target, v_archive);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('drop', v_run, v_error);
    CALL admmgt._run('drop', v_items, 1, v_run);
    CALL admmgt._end_call('drop', v_run);
    IF EXISTS (SELECT 1 FROM admmgt.vendor_db_settings WHERE id = v.id AND deleted) THEN
        RAISE NOTICE 'admmgt drop: tenant % is %', v_target.dbname,
            CASE WHEN v_archive IS NULL THEN 'dropped' ELSE 'archived as ' || v_archive END;
    END IF;
END;
$$;
