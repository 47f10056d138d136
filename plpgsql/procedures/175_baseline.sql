-- CALL admmgt.baseline('shop001', 12);
-- A database made before admmgt (or outside it) joins the fleet at a version: compared with the
-- template at that version (the fingerprints of 170_drift.sql), refused with the differences
-- listed unless forced, then given its ledger and PUBLIC's CONNECT revoked, and registered as a
-- created tenant at that version.

CREATE OR REPLACE FUNCTION admmgt._baseline_check(p_name text, p_version int, p_server text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, before anything is touched, a baseline of a name that is registered or reserved, of a version the template never had, or of a database that is not there */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template('database');
    v_dbs text[];
BEGIN
    IF EXISTS (SELECT 1 FROM admmgt.registry r WHERE lower(btrim(r.dbname)) = p_name AND NOT r.deleted) THEN
        RAISE EXCEPTION 'admmgt: % is registered already', p_name
            USING ERRCODE = 'duplicate_object', HINT = 'SELECT * FROM admmgt.tenant_status shows it; baseline is for a database admmgt does not know yet.';
    END IF;
    IF p_name IN ('postgres', 'template0', 'template1', v_template.dbname, current_database(), admmgt._maint_db(p_server)) THEN
        RAISE EXCEPTION 'admmgt: % is a reserved database', p_name
            USING ERRCODE = 'reserved_name', HINT = 'A tenant cannot be postgres, template0, template1, the admin database, the template or the maintenance database of its server.';
    END IF;
    IF p_version IS NULL OR p_version < 0 OR p_version > v_template.scriptversion
       OR EXISTS (SELECT 1 FROM admmgt.scripts s WHERE s.id <= p_version AND s.status NOT IN (1, 2)) THEN
        RAISE EXCEPTION 'admmgt: baseline at version % is not possible: the template is at version %', coalesce(p_version::text, 'NULL'), v_template.scriptversion
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a version the template has reached, whose scripts are all ready or applied.';
    END IF;
    v_dbs := admmgt._server_databases(p_server);
    IF v_dbs IS NULL OR NOT p_name = ANY (v_dbs) THEN
        RAISE EXCEPTION 'admmgt: database % is not on server %', p_name, p_server
            USING ERRCODE = 'invalid_catalog_name',
                  HINT = CASE WHEN v_dbs IS NULL THEN 'The server cannot be reached: see admmgt cluster list.'
                              ELSE 'Name a database that exists there; a new tenant is made with create_database() instead.' END;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._baseline_reference(p_version int)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the template's fingerprint at a version: the one recorded when it got there, or taken now while it is there */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template('database');
    v_objects jsonb := (SELECT f.objects FROM admmgt.template_fingerprints f WHERE f.kind = 'database' AND f.version = p_version);
BEGIN
    IF v_objects IS NULL AND v_template.scriptversion = p_version THEN
        PERFORM admmgt._record_template_fingerprint(v_template);
        v_objects := (SELECT f.objects FROM admmgt.template_fingerprints f WHERE f.kind = 'database' AND f.version = p_version);
    END IF;
    IF v_objects IS NULL THEN
        RAISE EXCEPTION 'admmgt: no fingerprint of the template at version % is recorded, and it is at version % now', p_version, v_template.scriptversion
            USING ERRCODE = 'no_data_found',
                  HINT = 'A fingerprint is recorded each time the template reaches a version with applyScripts(); baseline at the template''s version now, or with p_force => true without a comparison.';
    END IF;
    RETURN v_objects;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._baseline_ledger_sql(p_version int)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statements that give a baselined database the ledger of a copy of the template at p_version: one row per script up to it */
SELECT array_to_string(admmgt._ledger_tables(false)
                       || ARRAY(SELECT admmgt._ledger_insert(s.id) || ' ON CONFLICT DO NOTHING' FROM admmgt.scripts s WHERE s.id <= p_version ORDER BY s.id),
                       '; ');
$$;

CREATE OR REPLACE PROCEDURE admmgt.baseline(p_dbname text, p_version int, p_force boolean DEFAULT false, p_server text DEFAULT 'local',
                                            p_loginrole text DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: register an existing database on a server as a created tenant at p_version: its app schemas are compared with the template's at that version and any difference refuses it, listed, unless p_force; then it gets the ledger of a copy of the template at that version and PUBLIC's CONNECT is revoked, as for a database create_database() made */
DECLARE
    v_name text := admmgt._tenant_name(p_dbname, 'the argument p_dbname of admmgt.baseline');
    v_server text := admmgt._server_name(coalesce(p_server, 'local'), 'the argument p_server of admmgt.baseline');
    v_ledger text;
    v_objects jsonb;
    v_diff text[];
    v_id bigint;
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    PERFORM admmgt._check_call('baseline', NULL);
    PERFORM admmgt._server(v_server);
    IF p_loginrole IS NOT NULL THEN
        PERFORM admmgt._login_role(p_loginrole, 'the argument p_loginrole of admmgt.baseline');
    END IF;
    PERFORM admmgt._baseline_check(v_name, p_version, v_server);
    -- A ledger there already: a copy of the template, which create_database() adopts at its own version.
    SELECT r.state INTO v_ledger FROM dblink(admmgt._connstr(v_server, v_name), admmgt._adopt_check_sql()) AS r(state text);
    IF v_ledger LIKE 'ledger:%' THEN
        RAISE EXCEPTION 'admmgt: database % has a ledger already (%)', v_name, v_ledger
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('It is a copy of the template: register it as pending (INSERT INTO admmgt.vendor_db_settings (dbname, status, server) VALUES (%L, 1, %L)) and create_database() adopts it at its ledger''s version.', v_name, v_server);
    END IF;
    SELECT r.s::jsonb INTO v_objects FROM dblink(admmgt._connstr(v_server, v_name), admmgt._fingerprint_sql()) AS r(s text);
    IF NOT coalesce(p_force, false) THEN
        SELECT array_agg(format('%s %s', d.kind, d.object) ORDER BY d.object) INTO v_diff
          FROM admmgt._drift_of(admmgt._baseline_reference(p_version), v_objects) d;
        IF v_diff IS NOT NULL THEN
            RAISE EXCEPTION 'admmgt: database % differs from the template at version % in % object(s)', v_name, p_version, cardinality(v_diff)
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = array_to_string(v_diff[1:20], E'\n') || CASE WHEN cardinality(v_diff) > 20 THEN format(E'\n... and %s more', cardinality(v_diff) - 20) ELSE '' END,
                      HINT = 'Make it match (missing: the template has it; extra: only the database has it), baseline at another version, or pass p_force => true to take it as it is (detectDrift() then lists the differences).';
        END IF;
    END IF;

    CALL admmgt._begin_call('create', 'baseline', p_wait_seconds, v_run);
    BEGIN
        PERFORM admmgt._baseline_check(v_name, p_version, v_server);
        INSERT INTO admmgt.vendor_db_settings (dbname, status, kind, server, scriptversion, baseversion, loginrole)
        VALUES (v_name, 2, 'database', v_server, p_version, p_version, lower(btrim(p_loginrole)))
        RETURNING id INTO v_id;
        PERFORM dblink_exec(admmgt._connstr(v_server, v_name), admmgt._baseline_ledger_sql(p_version));
        PERFORM dblink_exec(admmgt._connstr(v_server, admmgt._maint_db(v_server)), s) FROM unnest(admmgt._access_stmts(v_id, v_name)) AS s;
        INSERT INTO admmgt.script_log (scriptid, dbname, commstat, run_id, operation, outcome, server)
        VALUES (p_version, v_name, format('baselined at version %s%s', p_version, CASE WHEN p_force THEN ' (p_force: not compared)' ELSE '' END),
                v_run, 'baseline', 'ok', v_server);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    CALL admmgt._end_call('create', v_run);
    RAISE NOTICE 'admmgt: database % joined the fleet at version %; applyScripts() brings it further', v_name, p_version;
END;
$$;
