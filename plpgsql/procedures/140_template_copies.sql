-- The copies of the template on servers other than local. PostgreSQL copies a database only
-- within one server, so the first tenant placed on another server makes admmgt register a copy of
-- the template there (a row with servertemplate), create it empty and bring it to the template's
-- version with the other operations' own steps: the template's app schemas (empty ones too: an
-- SQL step may assume one) and routines (scripts may call them), the scripts, then the routines
-- again (a script may have replaced one). Tenants on that server are then made from it
-- (100_create_database.sql).

CREATE OR REPLACE FUNCTION admmgt._pending_copies()
RETURNS SETOF admmgt.vendor_db_settings
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the copies of the template that are registered and not created yet */
SELECT v.* FROM admmgt.vendor_db_settings v
 WHERE v.status = 1 AND NOT coalesce(v.deleted, false) AND v.servertemplate
 ORDER BY v.id;
$$;

CREATE OR REPLACE FUNCTION admmgt._copy_targets_below(p_version int)
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the created copies of the template below a version, as a target list */
SELECT coalesce(array_agg(t ORDER BY t.id), '{}') FROM admmgt.targets t WHERE t.servertemplate AND t.version < p_version;
$$;

CREATE OR REPLACE FUNCTION admmgt._ensure_copies(p_template admmgt.vendor_db_settings)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: register a copy of the template (pending) on every server other than local that has placed pending tenants and no copy yet */
INSERT INTO admmgt.vendor_db_settings (dbname, server, servertemplate, status, scriptversion, updateflag)
SELECT p_template.dbname, x.server, true, 1, 0, true
  FROM (SELECT DISTINCT p.server FROM admmgt._pending_tenants() p WHERE p.server <> 'local') x
 WHERE NOT EXISTS (SELECT 1 FROM admmgt.vendor_db_settings c
                    WHERE c.servertemplate AND c.server = x.server AND NOT coalesce(c.deleted, false));
$$;

CREATE OR REPLACE FUNCTION admmgt._pending_copy_items(OUT p_create admmgt.work_item[], OUT p_adopt admmgt.work_item[])
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: for every pending copy of the template, on its server: CREATE DATABASE (empty, at version 0), or the adoption of its database when that exists already; then the grant step */
DECLARE
    v_row admmgt.vendor_db_settings;
    v_name text;
    v_dbs jsonb;
BEGIN
    p_create := '{}';
    p_adopt := '{}';
    v_dbs := admmgt._databases_by_server(ARRAY(SELECT p.server FROM admmgt._pending_copies() p));
    FOR v_row IN SELECT * FROM admmgt._pending_copies() LOOP
        v_name := lower(btrim(v_row.dbname));
        SELECT * INTO p_create, p_adopt
          FROM admmgt._add_new_database(p_create, p_adopt, v_row.id, v_name, v_row.server, v_dbs, format('CREATE DATABASE %I', v_name), 0);
    END LOOP;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._create_copies(p_template admmgt.vendor_db_settings, p_parallel int, p_wait_seconds int, p_run bigint,
                                                  INOUT p_error admmgt.error_state)
LANGUAGE plpgsql
AS $$
/* purpose: create the copies of the template that servers with pending tenants need, and bring every copy below the template's version up to it. Maintenance and refresh are held off meanwhile: they would meet a copy half built. Runs inside create_database's frame, so it raises nothing: an error comes back in p_error */
DECLARE
    v_items record;
    v_routines text[];
    v_refresh admmgt.work_item[];
    v_apply admmgt.work_item[];
    v_holder text;
BEGIN
    BEGIN
        PERFORM admmgt._ensure_copies(p_template);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS p_error.sqlstate = RETURNED_SQLSTATE, p_error.message = MESSAGE_TEXT, p_error.detail = PG_EXCEPTION_DETAIL, p_error.hint = PG_EXCEPTION_HINT;
        RETURN;
    END;
    COMMIT;
    IF NOT EXISTS (SELECT 1 FROM admmgt._pending_copies()) AND cardinality(admmgt._copy_targets_below(p_template.scriptversion)) = 0 THEN
        RETURN;
    END IF;
    v_holder := admmgt._hold_upkeep(p_wait_seconds);
    IF v_holder IS NOT NULL THEN
        RAISE WARNING 'admmgt create: the copies of the template are not built now: maintenance or refresh is running: %', v_holder
            USING HINT = 'Tenants on servers without a created copy wait; call create_database() again later, or with p_wait_seconds.';
        RETURN;
    END IF;
    BEGIN
        v_items := admmgt._pending_copy_items();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS p_error.sqlstate = RETURNED_SQLSTATE, p_error.message = MESSAGE_TEXT, p_error.detail = PG_EXCEPTION_DETAIL, p_error.hint = PG_EXCEPTION_HINT;
        PERFORM admmgt._release_upkeep();
        RETURN;
    END;
    CALL admmgt._run('adopt', v_items.p_adopt, p_parallel, p_run);
    CALL admmgt._run('create', v_items.p_create, p_parallel, p_run);
    IF cardinality(admmgt._copy_targets_below(p_template.scriptversion)) > 0 THEN
        BEGIN
            PERFORM admmgt._check_definers(p_template.dbname);
            v_routines := admmgt._template_routines(p_template.dbname, p_schemas => true);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'admmgt create: could not read the routines of template %: % (SQLSTATE %)', p_template.dbname, SQLERRM, SQLSTATE
                USING HINT = 'The copies of the template stay below its version; tenants made from them start there and applyScripts() brings them up.';
        END;
        IF v_routines IS NOT NULL THEN
            -- A copy's tables come with the scripts, so routine bodies are not checked against it (as pg_dump does).
            IF cardinality(v_routines) > 0 THEN
                v_routines := 'SET LOCAL check_function_bodies = off'::text || v_routines;
            END IF;
            -- Rendering the scripts may raise (a row that no longer renders): not under the lock.
            BEGIN
                v_refresh := admmgt._refresh_items(v_routines, admmgt._copy_targets_below(p_template.scriptversion));
                v_apply := admmgt._apply_items(admmgt._copy_targets_below(p_template.scriptversion), p_template.scriptversion, current_date);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS p_error.sqlstate = RETURNED_SQLSTATE, p_error.message = MESSAGE_TEXT, p_error.detail = PG_EXCEPTION_DETAIL, p_error.hint = PG_EXCEPTION_HINT;
                PERFORM admmgt._release_upkeep();
                RETURN;
            END;
            CALL admmgt._run('refresh', v_refresh, p_parallel, p_run);
            CALL admmgt._run('apply', v_apply, p_parallel, p_run);
            CALL admmgt._run('refresh', admmgt._refresh_items(v_routines, admmgt._copy_targets_below(p_template.scriptversion + 1)), p_parallel, p_run);
        END IF;
    END IF;
    PERFORM admmgt._release_upkeep();
END;
$$;
