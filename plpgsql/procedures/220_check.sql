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

CREATE OR REPLACE FUNCTION admmgt._check_query(p_target admmgt.targets)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what check_targets asks one target: its ledger's state ('ledger:<version>' or 'objects:...') and whether PUBLIC may connect to it (to a schema target: use its schema) */
SELECT CASE WHEN p_target.nsp IS NULL
            THEN format('SELECT (%s), pg_catalog.has_database_privilege(''public'', pg_catalog.current_database(), ''CONNECT'')',
                        admmgt._adopt_check_sql())
            ELSE admmgt._schema_check_sql(p_target.nsp) END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_problem(p_target admmgt.targets, p_ledger int, p_public boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what is wrong with a target, from what it answered, as a DBA should read it (NULL: nothing) */
SELECT nullif(concat_ws('; ',
    CASE WHEN p_ledger IS NULL AND p_target.version > 0
         THEN 'it has no ledger (admmgt.applied_scripts): it was not made from the template' END,
    CASE WHEN p_ledger < p_target.version
         THEN format('its ledger is at version %s, the registry says %s: it is older than its row (restored from an older copy?); set scriptversion = %s and run applyScripts()',
                     p_ledger, p_target.version, p_ledger) END,
    CASE WHEN p_ledger > p_target.version
         THEN format('its ledger is at version %s, ahead of the registry (%s): the next applyScripts() records the scripts in between as already applied',
                     p_ledger, p_target.version) END,
    CASE WHEN p_public AND NOT p_target.istemplate AND p_target.nsp IS NULL
         THEN format('PUBLIC may connect: run REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC on server %s', p_target.dbname, p_target.server) END,
    CASE WHEN p_public AND p_target.nsp IS NOT NULL
         THEN format('PUBLIC may use schema %I: run REVOKE ALL ON SCHEMA %I FROM PUBLIC in database %s', p_target.nsp, p_target.nsp, p_target.conn_db) END), '');
$$;

CREATE OR REPLACE FUNCTION admmgt.check_targets(p_dbname text DEFAULT NULL, p_server text DEFAULT NULL, p_parallel int DEFAULT NULL)
RETURNS TABLE (dbname text, server text, registry_version int, ledger_version int, public_connect boolean, problem text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: ask every created target but the warm pool's spare databases (or the one named, or those on one server), p_parallel at a time (default 4) over connections kept while the next target is in the same database, on the server its row names, and compare it with the registry: the version of its tenant-side ledger, and whether PUBLIC may connect (to a schema target: use its schema); problem is NULL when all agree */
DECLARE
    v_targets admmgt.targets[];
    v_n int;
    v_p int;
    v_next int := 1;
    v_slot int[];
    v_key text[];
    v_state text[];
    v_public boolean[];
    v_problem text[];
    v_name text;
    v_t admmgt.targets;
    v_progress boolean;
    v_detail text;
    v_got record;
BEGIN
    PERFORM admmgt._check_parallel('check_targets', p_parallel);
    v_targets := ARRAY(SELECT t FROM admmgt.targets t
                        WHERE NOT t.pool AND (p_dbname IS NULL OR t.dbname = lower(btrim(p_dbname)))
                          AND (p_server IS NULL OR t.server = lower(btrim(p_server)))
                        ORDER BY t.istemplate DESC, t.servertemplate DESC, t.server, t.conn_db, t.dbname);
    v_n := cardinality(v_targets);
    v_p := greatest(1, least(coalesce(p_parallel, 4), v_n, current_setting('max_connections')::int / 4));
    v_slot := array_fill(0, ARRAY[v_p]);
    v_key := array_fill(NULL::text, ARRAY[v_p]);
    v_state := array_fill(NULL::text, ARRAY[greatest(v_n, 1)]);
    v_public := array_fill(NULL::boolean, ARRAY[greatest(v_n, 1)]);
    v_problem := array_fill(NULL::text, ARRAY[greatest(v_n, 1)]);
    WHILE v_next <= v_n OR EXISTS (SELECT 1 FROM unnest(v_slot) x WHERE x <> 0) LOOP
        v_progress := false;
        FOR s IN 1 .. v_p LOOP
            v_name := 'admmgt_check_' || s;
            IF v_slot[s] = 0 AND v_next <= v_n THEN
                v_t := v_targets[v_next];
                v_slot[s] := v_next;
                v_next := v_next + 1;
                v_progress := true;
                BEGIN
                    IF v_key[s] IS DISTINCT FROM format('%s/%s', v_t.server, v_t.conn_db) THEN
                        IF v_name = ANY (coalesce(dblink_get_connections(), '{}')) THEN
                            PERFORM dblink_disconnect(v_name);
                        END IF;
                        v_key[s] := NULL;
                        PERFORM dblink_connect(v_name, admmgt._connstr(v_t.server, v_t.conn_db));
                        v_key[s] := format('%s/%s', v_t.server, v_t.conn_db);
                    END IF;
                    PERFORM dblink_send_query(v_name, admmgt._check_query(v_t));
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
                    v_problem[v_slot[s]] := format('server %s, database %s: %s', v_t.server, v_t.conn_db, concat_ws(': ', SQLERRM, nullif(btrim(v_detail), '')));
                    v_slot[s] := 0;
                END;
            ELSIF v_slot[s] <> 0 AND dblink_is_busy(v_name) = 0 THEN
                v_progress := true;
                v_t := v_targets[v_slot[s]];
                BEGIN
                    SELECT * INTO v_got FROM dblink_get_result(v_name) AS r(state text, pub boolean);
                    v_state[v_slot[s]] := v_got.state;
                    v_public[v_slot[s]] := v_got.pub;
                    PERFORM * FROM dblink_get_result(v_name) AS r(state text, pub boolean);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
                    v_problem[v_slot[s]] := format('server %s, database %s: %s', v_t.server, v_t.conn_db, concat_ws(': ', SQLERRM, nullif(btrim(v_detail), '')));
                    PERFORM dblink_disconnect(v_name);
                    v_key[s] := NULL;
                END;
                v_slot[s] := 0;
            END IF;
        END LOOP;
        IF NOT v_progress THEN
            PERFORM pg_sleep(0.001);
        END IF;
    END LOOP;
    FOR s IN 1 .. v_p LOOP
        IF ('admmgt_check_' || s) = ANY (coalesce(dblink_get_connections(), '{}')) THEN
            PERFORM dblink_disconnect('admmgt_check_' || s);
        END IF;
    END LOOP;
    FOR i IN 1 .. v_n LOOP
        v_t := v_targets[i];
        dbname := v_t.dbname;
        server := v_t.server;
        registry_version := v_t.version;
        ledger_version := CASE WHEN v_state[i] ~ '^ledger:[0-9]{1,9}$' THEN split_part(v_state[i], ':', 2)::int END;
        public_connect := v_public[i];
        problem := coalesce(v_problem[i], admmgt._check_problem(v_t, ledger_version, public_connect));
        RETURN NEXT;
    END LOOP;
END;
$$;
