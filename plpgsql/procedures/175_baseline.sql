-- CALL admmgt.baseline('shop001', 12);
-- A database made before admmgt (or outside it) joins the fleet at a version: compared with the
-- template at that version (the fingerprints of 170_drift.sql), refused with the differences
-- listed unless forced, then given its ledger and PUBLIC's CONNECT revoked, and registered as a
-- created tenant at that version. A schema (p_kind => 'schema') the same way, with the schema
-- template: its rows in the ledger of the database that holds it, and the access create_schema
-- gives a schema.

CREATE OR REPLACE FUNCTION admmgt._baseline_new(p_name text, p_version int, p_kind text)
RETURNS admmgt.vendor_db_settings
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a baseline of a name that is registered, or of a version the template of kind p_kind (database, schema) never had; returns that template */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template(p_kind);
    v_which text := CASE WHEN p_kind = 'schema' THEN 'schema template' ELSE 'template' END;
BEGIN
    IF EXISTS (SELECT 1 FROM admmgt.registry r WHERE lower(btrim(r.dbname)) = p_name AND NOT r.deleted) THEN
        RAISE EXCEPTION 'admmgt: % is registered already', p_name
            USING ERRCODE = 'duplicate_object', HINT = format('SELECT * FROM admmgt.tenant_status shows it; baseline is for a %s admmgt does not know yet.', p_kind);
    END IF;
    IF p_version IS NULL OR p_version < 0 OR p_version > v_template.scriptversion
       OR EXISTS (SELECT 1 FROM admmgt.scripts s WHERE s.id <= p_version AND s.status NOT IN (1, 2)) THEN
        RAISE EXCEPTION 'admmgt: baseline at version % is not possible: the % is at version %', coalesce(p_version::text, 'NULL'), v_which, v_template.scriptversion
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Give a version the %s has reached, whose scripts are all ready or applied.', v_which);
    END IF;
    RETURN v_template;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._baseline_check(p_name text, p_version int, p_server text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, before anything is touched, a baseline of a name that is registered or reserved, of a version the template never had, or of a database that is not there */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._baseline_new(p_name, p_version, 'database');
    v_dbs text[];
BEGIN
    IF p_name IN ('postgres', 'template0', 'template1', v_template.dbname, current_database(), admmgt._maint_db(p_server)) THEN
        RAISE EXCEPTION 'admmgt: % is a reserved database', p_name
            USING ERRCODE = 'reserved_name', HINT = 'A tenant cannot be postgres, template0, template1, the admin database, the template or the maintenance database of its server.';
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

CREATE OR REPLACE FUNCTION admmgt._baseline_reference(p_version int, p_kind text DEFAULT 'database')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the fingerprint of the template of a kind at a version: the one recorded when it got there, or taken now while it is there */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template(p_kind);
    v_objects jsonb := (SELECT f.objects FROM admmgt.template_fingerprints f WHERE f.kind = p_kind AND f.version = p_version);
BEGIN
    IF v_objects IS NULL AND v_template.scriptversion = p_version THEN
        PERFORM admmgt._record_template_fingerprint(v_template);
        v_objects := (SELECT f.objects FROM admmgt.template_fingerprints f WHERE f.kind = p_kind AND f.version = p_version);
    END IF;
    IF v_objects IS NULL THEN
        RAISE EXCEPTION 'admmgt: no fingerprint of the % template at version % is recorded, and it is at version % now', p_kind, p_version, v_template.scriptversion
            USING ERRCODE = 'no_data_found',
                  HINT = 'A fingerprint is recorded each time the template reaches a version with applyScripts(); baseline at the template''s version now, or with p_force => true without a comparison.';
    END IF;
    RETURN v_objects;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._baseline_compare(p_what text, p_reference jsonb, p_objects jsonb, p_version int)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse what is baselined (p_what: database or schema, and its name) when its fingerprint differs from the template's at p_version, listing the differences */
DECLARE
    v_diff text[];
BEGIN
    SELECT array_agg(format('%s %s', d.kind, d.object) ORDER BY d.object) INTO v_diff FROM admmgt._drift_of(p_reference, p_objects) d;
    IF v_diff IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: % differs from the template at version % in % object(s)', p_what, p_version, cardinality(v_diff)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = array_to_string(v_diff[1:20], E'\n') || CASE WHEN cardinality(v_diff) > 20 THEN format(E'\n... and %s more', cardinality(v_diff) - 20) ELSE '' END,
                  HINT = 'Make it match (missing: the template has it; extra: only it has it), baseline at another version, or pass p_force => true to take it as it is (detectDrift() then lists the differences).';
    END IF;
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

CREATE OR REPLACE FUNCTION admmgt._baseline_schema_check(p_nsp text, p_version int, p_server text, p_conn_db text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, before anything is touched, a baseline of a schema that is registered, of a version the schema template never had, or of a schema that is not in its database or has ledger rows there already */
DECLARE
    v_got record;
BEGIN
    PERFORM admmgt._baseline_new(p_nsp, p_version, 'schema');
    SELECT * INTO v_got FROM dblink(admmgt._connstr(p_server, p_conn_db), admmgt._schema_check_sql(p_nsp)) AS r(state text, pub boolean);
    IF v_got.pub IS NULL THEN
        RAISE EXCEPTION 'admmgt: schema % is not in database % on server %', p_nsp, p_conn_db, p_server
            USING ERRCODE = 'invalid_schema_name',
                  HINT = 'Name a schema that exists there (p_schema_db: the database that holds it, default the admin database); a new tenant is made with create_schema() instead.';
    ELSIF v_got.state <> 'ledger:0' AND v_got.state LIKE 'ledger:%' THEN
        RAISE EXCEPTION 'admmgt: schema % has rows in the ledger of database % already (%)', p_nsp, p_conn_db, v_got.state
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('It was a schema target: delete its rows (DELETE FROM admmgt.applied_schema_scripts WHERE schemaname = %L, in database %s) to baseline it anew.', p_nsp, p_conn_db);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._baseline_schema_sql(p_row admmgt.vendor_db_settings, p_nsp text, p_conn_db text, p_version int)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statements that make a baselined schema a schema target at p_version, in the database that holds it: the ledger of that database with one row per script up to it, and who may use the schema as create_schema sets it (the schema itself is there) */
SELECT array_to_string(admmgt._schema_ledger_tables()
                       || ARRAY(SELECT admmgt._ledger_insert(s.id, p_nsp) || ' ON CONFLICT DO NOTHING' FROM admmgt.scripts s WHERE s.id <= p_version ORDER BY s.id)
                       || (admmgt._schema_access_stmts(p_row, p_nsp, p_conn_db))[2:] || admmgt._schema_connect_stmts(p_row, p_conn_db),
                       '; ');
$$;

CREATE OR REPLACE PROCEDURE admmgt._baseline_schema(p_row admmgt.vendor_db_settings, p_version int, p_force boolean, p_wait_seconds int)
LANGUAGE plpgsql
AS $$
/* purpose: baseline() of an existing schema (p_row: the row it gets, not inserted yet): compared with the schema template at p_version unless p_force, then given its ledger rows and access and registered as a created schema target */
DECLARE
    v_nsp text := admmgt._check_schema_row(p_row, (admmgt._template('schema')).dbname::text, 'the argument p_dbname of admmgt.baseline');
    v_server text := coalesce(p_row.server::text, 'local');
    v_conn_db text := coalesce(lower(btrim(p_row.schema_db)), current_database());
    v_objects jsonb;
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    PERFORM admmgt._baseline_schema_check(v_nsp, p_version, v_server, v_conn_db);
    SELECT r.s::jsonb INTO v_objects
      FROM dblink(admmgt._connstr(v_server, v_conn_db), admmgt._schema_fingerprint_sql(v_nsp, p_row.loginrole, false)) AS r(s text);
    IF NOT coalesce(p_force, false) THEN
        PERFORM admmgt._baseline_compare('schema ' || v_nsp, admmgt._baseline_reference(p_version, 'schema'), v_objects, p_version);
    END IF;

    CALL admmgt._begin_call('create', 'baseline', p_wait_seconds, v_run);
    BEGIN
        PERFORM admmgt._baseline_schema_check(v_nsp, p_version, v_server, v_conn_db);
        INSERT INTO admmgt.vendor_db_settings (dbname, status, kind, server, schema_db, scriptversion, baseversion, loginrole)
        VALUES (v_nsp, 2, 'schema', p_row.server, lower(btrim(p_row.schema_db)), p_version, p_version, lower(btrim(p_row.loginrole)));
        PERFORM dblink_exec(admmgt._connstr(v_server, v_conn_db), admmgt._baseline_schema_sql(p_row, v_nsp, v_conn_db, p_version));
        PERFORM admmgt._baseline_logged(v_nsp, v_server, p_version, p_force, v_run);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    CALL admmgt._end_call('create', v_run);
    RAISE NOTICE 'admmgt: schema % joined the fleet at version %; applyScripts() brings it further', v_nsp, p_version;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._baseline_logged(p_name text, p_server text, p_version int, p_force boolean, p_run bigint)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: the log line of a baseline */
INSERT INTO admmgt.script_log (scriptid, dbname, commstat, run_id, operation, outcome, server)
VALUES (p_version, p_name, format('baselined at version %s%s', p_version, CASE WHEN p_force THEN ' (p_force: not compared)' ELSE '' END),
        p_run, 'baseline', 'ok', p_server);
$$;

CREATE OR REPLACE PROCEDURE admmgt.baseline(p_dbname text, p_version int, p_force boolean DEFAULT false, p_server text DEFAULT 'local',
                                            p_loginrole text DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                            p_kind text DEFAULT 'database', p_schema_db text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: register an existing database on a server as a created tenant at p_version: its app schemas are compared with the template's at that version and any difference refuses it, listed, unless p_force; then it gets the ledger of a copy of the template at that version and PUBLIC's CONNECT is revoked, as for a database create_database() made; with p_kind => 'schema', an existing schema (of the admin database, or of p_schema_db) with the schema template */
DECLARE
    v_name text := admmgt._tenant_name(p_dbname, 'the argument p_dbname of admmgt.baseline');
    v_server text := admmgt._server_name(coalesce(p_server, 'local'), 'the argument p_server of admmgt.baseline');
    v_ledger text;
    v_objects jsonb;
    v_id bigint;
    v_run bigint;
    v_error admmgt.error_state;
    v_row admmgt.vendor_db_settings;
BEGIN
    PERFORM admmgt._check_call('baseline', NULL);
    PERFORM admmgt._server(v_server);
    IF p_loginrole IS NOT NULL THEN
        PERFORM admmgt._login_role(p_loginrole, 'the argument p_loginrole of admmgt.baseline');
    END IF;
    IF p_kind IS DISTINCT FROM 'database' AND p_kind IS DISTINCT FROM 'schema' OR (p_kind = 'database' AND p_schema_db IS NOT NULL) THEN
        RAISE EXCEPTION 'admmgt: baseline was given p_kind => %', coalesce(quote_literal(p_kind), 'NULL')
                        || CASE WHEN p_schema_db IS NOT NULL THEN format(' and p_schema_db => %L', p_schema_db) ELSE '' END
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'p_kind is database (the default) or schema; p_schema_db names the database that holds a schema (default the admin database).';
    END IF;
    IF p_kind = 'schema' THEN
        v_row.dbname := p_dbname;
        v_row.loginrole := p_loginrole;
        v_row.schema_db := p_schema_db;
        v_row.server := CASE WHEN v_server <> 'local' THEN v_server END;
        v_row.istemplate := false;
        CALL admmgt._baseline_schema(v_row, p_version, p_force, p_wait_seconds);
        RETURN;
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
        PERFORM admmgt._baseline_compare('database ' || v_name, admmgt._baseline_reference(p_version), v_objects, p_version);
    END IF;

    CALL admmgt._begin_call('create', 'baseline', p_wait_seconds, v_run);
    BEGIN
        PERFORM admmgt._baseline_check(v_name, p_version, v_server);
        INSERT INTO admmgt.vendor_db_settings (dbname, status, kind, server, scriptversion, baseversion, loginrole)
        VALUES (v_name, 2, 'database', v_server, p_version, p_version, lower(btrim(p_loginrole)))
        RETURNING id INTO v_id;
        PERFORM dblink_exec(admmgt._connstr(v_server, v_name), admmgt._baseline_ledger_sql(p_version));
        PERFORM dblink_exec(admmgt._connstr(v_server, admmgt._maint_db(v_server)), s) FROM unnest(admmgt._access_stmts(v_id, v_name)) AS s;
        PERFORM admmgt._baseline_logged(v_name, v_server, p_version, p_force, v_run);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    CALL admmgt._end_call('create', v_run);
    RAISE NOTICE 'admmgt: database % joined the fleet at version %; applyScripts() brings it further', v_name, p_version;
END;
$$;
