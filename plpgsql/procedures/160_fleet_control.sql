-- Fleet control by hand: hold a tenant at a version (pin), let it go (unpin), and record that a
-- tenant fixed by hand has a script (mark_script_applied).

CREATE OR REPLACE FUNCTION admmgt._tenant_row(p_dbname text, p_what text)
RETURNS admmgt.vendor_db_settings
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the registry row of a created tenant (not the template, a copy of it or a pool database), or an error naming it */
DECLARE
    v admmgt.vendor_db_settings;
BEGIN
    SELECT * INTO v FROM admmgt.vendor_db_settings
     WHERE lower(btrim(dbname)) = lower(btrim(p_dbname)) AND NOT coalesce(deleted, false) AND NOT servertemplate AND NOT pool;
    IF NOT FOUND OR v.status <> 2 OR v.istemplate THEN
        RAISE EXCEPTION 'admmgt: % %: %', p_what, coalesce(p_dbname, 'NULL'),
                        CASE WHEN NOT FOUND THEN 'no such tenant' WHEN v.istemplate THEN 'it is the template' ELSE 'it is not created yet' END
            USING ERRCODE = 'undefined_object', HINT = 'See SELECT dbname, status FROM admmgt.tenant_status.';
    END IF;
    RETURN v;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.pin_tenant(p_dbname text, p_version int)
LANGUAGE plpgsql
AS $$
/* purpose: hold a tenant at a version: applyScripts() brings it up to p_version and no further until it is unpinned */
DECLARE
    v admmgt.vendor_db_settings := admmgt._tenant_row(p_dbname, 'pin_tenant');
BEGIN
    IF p_version IS NULL OR p_version < coalesce(v.scriptversion, 0) THEN
        RAISE EXCEPTION 'admmgt: % is at version %, above the pin %', v.dbname, coalesce(v.scriptversion, 0), coalesce(p_version::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pin a tenant at its version or above; a pin never takes a script back.';
    END IF;
    UPDATE admmgt.vendor_db_settings SET pinned_version = p_version, modifiedon = current_timestamp WHERE id = v.id;
    RAISE NOTICE 'admmgt: % pinned at version % (it is at %)', v.dbname, p_version, coalesce(v.scriptversion, 0);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.unpin_tenant(p_dbname text)
LANGUAGE plpgsql
AS $$
/* purpose: let a pinned tenant move with the fleet again */
DECLARE
    v admmgt.vendor_db_settings := admmgt._tenant_row(p_dbname, 'unpin_tenant');
BEGIN
    UPDATE admmgt.vendor_db_settings SET pinned_version = NULL, modifiedon = current_timestamp WHERE id = v.id;
    RAISE NOTICE 'admmgt: % unpinned (it was %)', v.dbname, coalesce('pinned at ' || v.pinned_version, 'not pinned');
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.mark_script_applied(p_dbname text, p_scriptid int, p_note text DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: record that a tenant has the next script it lacks because a DBA applied it by hand: its ledger row in the tenant, its version, a log row; never runs the script */
DECLARE
    v admmgt.vendor_db_settings := admmgt._tenant_row(p_dbname, 'mark_script_applied');
    v_target admmgt.targets;
    v_next int;
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    SELECT min(s.id) INTO v_next FROM admmgt.scripts s WHERE s.id > coalesce(v.scriptversion, 0) AND s.status IN (1, 2);
    IF p_scriptid IS DISTINCT FROM v_next THEN
        RAISE EXCEPTION 'admmgt: % is at version %: the next script it lacks is %, not %', v.dbname, coalesce(v.scriptversion, 0),
                        coalesce(v_next::text, 'none'), coalesce(p_scriptid::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Scripts are marked in id order, one at a time, as applyScripts() would run them.';
    END IF;
    CALL admmgt._begin_call('apply', 'mark_script_applied', p_wait_seconds, v_run);
    BEGIN
        -- A schema target's ledger is that of the database holding it (create_schema made it).
        SELECT * INTO v_target FROM admmgt.targets t WHERE t.id = v.id;
        PERFORM dblink_exec(admmgt._connstr(coalesce(v.server, 'local'), coalesce(v_target.conn_db, lower(btrim(v.dbname)))),
                            array_to_string(CASE WHEN v_target.nsp IS NULL THEN admmgt._ledger_tables(false) ELSE '{}'::text[] END
                                            || format('%s ON CONFLICT DO NOTHING', admmgt._ledger_insert(p_scriptid, v_target.nsp)), '; '));
        UPDATE admmgt.vendor_db_settings SET scriptversion = p_scriptid, modifiedon = current_timestamp WHERE id = v.id;
        INSERT INTO admmgt.script_log (scriptid, dbname, commstat, run_id, operation, outcome, server)
        VALUES (p_scriptid, lower(btrim(v.dbname)), coalesce('marked applied by hand: ' || p_note, 'marked applied by hand'), v_run,
                'mark-applied', 'marked applied', coalesce(v.server, 'local'));
        INSERT INTO admmgt.target_results AS r (operation, scriptid, target_id, dbname, ok, run_id)
        VALUES ('apply', p_scriptid, v.id, lower(btrim(v.dbname)), true, v_run)
        ON CONFLICT (operation, scriptid, target_id) DO UPDATE
           SET ok = true, sqlstate = NULL, message = NULL, detail = NULL, hint = NULL, statement = NULL,
               run_id = EXCLUDED.run_id, finished_at = now(), elapsed_ms = NULL;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('apply', v_run, v_error);
    PERFORM admmgt._mark_applied((SELECT coalesce(scriptversion, 0) FROM admmgt._template(coalesce(v_target.kind, 'database'))));
    CALL admmgt._end_call('apply', v_run);
    RAISE NOTICE 'admmgt: % marked as having script % (its ledger and version; the script did not run)', v.dbname, p_scriptid;
END;
$$;
