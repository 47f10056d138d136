-- After a restore or a move: what is really in each target, against what the registry says.

CREATE OR REPLACE FUNCTION admmgt._schema_check_sql(p_nsp text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the query check_targets runs for a schema target in its database: 'ledger:<version>' from the ledger of that database's schemas ('objects:' when the schema or the ledger is missing), and whether PUBLIC may use the schema */
SELECT format($q$SELECT CASE
    WHEN pg_catalog.to_regclass('admmgt.applied_schema_scripts') IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = %1$L) THEN 'ledger:' ||
        (pg_catalog.xpath('/row/v/text()', pg_catalog.query_to_xml(
            pg_catalog.format('SELECT coalesce(max(scriptid), 0) AS v FROM admmgt.applied_schema_scripts WHERE schemaname = %%L', %1$L), false, true, '')))[1]::text
    ELSE 'objects:' END,
    CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = %1$L) THEN pg_catalog.has_schema_privilege('public', %1$L, 'USAGE') END$q$, p_nsp);
$$;

CREATE OR REPLACE FUNCTION admmgt.check_targets(p_dbname text DEFAULT NULL, p_server text DEFAULT NULL)
RETURNS TABLE (dbname text, server text, registry_version int, ledger_version int, public_connect boolean, problem text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
/* purpose: connect to every created target (or the one named, or those on one server) on the server its row names, and compare it with the registry: the version of its tenant-side ledger, and whether PUBLIC may connect (to a schema target: use its schema); problem is NULL when all agree */
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
              FROM dblink(admmgt._connstr(v.server, v.conn_db),
                          CASE WHEN v.nsp IS NULL
                               THEN format('SELECT (%s), pg_catalog.has_database_privilege(''public'', pg_catalog.current_database(), ''CONNECT'')',
                                           admmgt._adopt_check_sql())
                               ELSE admmgt._schema_check_sql(v.nsp) END) AS r(state text, pub boolean);
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
                CASE WHEN public_connect AND NOT v.istemplate AND v.nsp IS NULL
                     THEN format('PUBLIC may connect: run REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC on server %s', v.dbname, v.server) END,
                CASE WHEN public_connect AND v.nsp IS NOT NULL
                     THEN format('PUBLIC may use schema %I: run REVOKE ALL ON SCHEMA %I FROM PUBLIC in database %s', v.nsp, v.nsp, v.conn_db) END), '');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
            problem := format('server %s, database %s: %s', v.server, v.dbname, concat_ws(': ', SQLERRM, nullif(btrim(v_detail), '')));
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
