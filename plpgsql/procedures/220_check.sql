-- After a restore or a move: what is really in each target, against what the registry says.

CREATE OR REPLACE FUNCTION admmgt.check_targets(p_dbname text DEFAULT NULL, p_server text DEFAULT NULL)
RETURNS TABLE (dbname text, server text, registry_version int, ledger_version int, public_connect boolean, problem text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
/* purpose: connect to every created target (or the one named, or those on one server) on the server its row names, and compare it with the registry: the version of its tenant-side ledger, and whether PUBLIC may connect; problem is NULL when all agree */
DECLARE
    v admmgt.targets;
    v_state text;
    v_detail text;
BEGIN
    FOR v IN SELECT * FROM admmgt.targets t
              WHERE (p_dbname IS NULL OR t.dbname = lower(btrim(p_dbname)))
                AND (p_server IS NULL OR t.server = lower(btrim(p_server)))
              ORDER BY t.istemplate DESC, t.servertemplate DESC, t.server, t.dbname LOOP
        dbname := v.dbname;
        server := v.server;
        registry_version := v.version;
        ledger_version := NULL;
        public_connect := NULL;
        problem := NULL;
        BEGIN
            SELECT r.state, r.pub INTO v_state, public_connect
              FROM dblink(admmgt._connstr(v.server, v.dbname),
                          format('SELECT (%s), pg_catalog.has_database_privilege(''public'', pg_catalog.current_database(), ''CONNECT'')',
                                 admmgt._adopt_check_sql())) AS r(state text, pub boolean);
            ledger_version := CASE WHEN v_state LIKE 'ledger:%' THEN split_part(v_state, ':', 2)::int END;
            problem := nullif(concat_ws('; ',
                CASE WHEN ledger_version IS NULL AND v.version > 0
                     THEN 'it has no ledger (admmgt.applied_scripts): it was not made from the template' END,
                CASE WHEN ledger_version < v.version
                     THEN format('its ledger is at version %s, the registry says %s: it is older than its row (restored from an older copy?); set scriptversion = %s and run applyScripts()',
                                 ledger_version, v.version, ledger_version) END,
                CASE WHEN ledger_version > v.version
                     THEN format('its ledger is at version %s, ahead of the registry (%s): the next applyScripts() records the scripts in between as already applied',
                                 ledger_version, v.version) END,
                CASE WHEN public_connect AND NOT v.istemplate
                     THEN format('PUBLIC may connect: run REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC on server %s', v.dbname, v.server) END), '');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
            problem := format('server %s, database %s: %s', v.server, v.dbname, concat_ws(': ', SQLERRM, nullif(btrim(v_detail), '')));
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
