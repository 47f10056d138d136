-- CALL admmgt.create_schema();
-- Pending schema targets (and the schema template, when it is pending itself) become schemas in
-- the admin database or in the database schema_db names. Each is made in one transaction on its
-- database together with every script it needs to reach its template's version (the frozen
-- batches, for its own schema), so a schema target is either absent or complete at a version.
-- Before any of them, each database that holds schema targets gets the ledger they share.

CREATE OR REPLACE FUNCTION admmgt._pending_schemas()
RETURNS SETOF admmgt.vendor_db_settings
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the rows create_schema() works on: pending, not deleted, schema rows, and rows that say no kind while no database template is registered (the later original tool's workflow) */
SELECT v.* FROM admmgt.vendor_db_settings v
 WHERE v.status = 1 AND NOT coalesce(v.deleted, false) AND NOT v.servertemplate
   AND (v.kind = 'schema'
        OR (v.kind IS NULL AND NOT EXISTS (SELECT 1 FROM admmgt.registry r WHERE r.istemplate AND NOT r.deleted AND r.kind = 'database')))
 ORDER BY v.istemplate DESC, v.id;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_schema_row(p_row admmgt.vendor_db_settings, p_template text, p_where text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, naming the row (or p_where), a pending schema target whose name or login role is bad, or that names a reserved schema (public, admmgt, information_schema, pg_*, the template's for a tenant); returns the folded name */
DECLARE
    v_where text := coalesce(p_where, admmgt._row('vendor_db_settings', p_row.id));
    v_name text := admmgt._tenant_name(p_row.dbname, v_where);
BEGIN
    IF p_row.loginrole IS NOT NULL THEN
        PERFORM admmgt._login_role(p_row.loginrole, v_where);
    END IF;
    IF quote_ident(v_name) <> v_name THEN
        -- Statements name a schema target without quotes, in code and in strings alike.
        RAISE EXCEPTION 'admmgt: % names schema %, which is not a plain identifier', v_where, quote_literal(v_name)
            USING ERRCODE = 'invalid_name',
                  HINT = 'A schema target''s name is a letter or _, then letters, digits or _, and not an SQL keyword.';
    END IF;
    IF v_name IN ('public', 'admmgt', 'information_schema') OR v_name LIKE 'pg\_%'
       OR (v_name = p_template AND NOT coalesce(p_row.istemplate, false)) THEN
        RAISE EXCEPTION 'admmgt: % names the reserved schema %', v_where, v_name
            USING ERRCODE = 'reserved_name',
                  HINT = 'A schema target cannot be public, admmgt, information_schema, a pg_ schema or the template schema.';
    END IF;
    IF p_row.schema_db IS NOT NULL THEN
        PERFORM admmgt._tenant_name(p_row.schema_db, v_where || ' (schema_db)');
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_access_stmts(p_row admmgt.vendor_db_settings, p_nsp text, p_conn_db text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a new schema target and who may use it: admmgt's role owns it and everything in it, PUBLIC has nothing in it; its login role, if it has one, may use its schema and the objects admmgt makes there (read and write rows, use sequences, run routines), and create nothing in it, so that nothing it could plant there is ever found by a script or a refresh (CONNECT on its database: _schema_connect_stmts) */
SELECT ARRAY[format('CREATE SCHEMA %I', p_nsp), format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', p_nsp)]
    || CASE WHEN r.role IS NULL THEN '{}'::text[] ELSE ARRAY[
           admmgt._login_role_sql(r.role),
           format('GRANT USAGE ON SCHEMA %I TO %I', p_nsp, r.role),
           format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', p_nsp, r.role),
           format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I', p_nsp, r.role),
           format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT EXECUTE ON ROUTINES TO %I', p_nsp, r.role)] END
  FROM (SELECT lower(btrim(p_row.loginrole)) AS role) r;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_connect_stmts(p_row admmgt.vendor_db_settings, p_conn_db text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the last statements of the transaction that makes a schema target with a login role: CONNECT on the database that holds it. Every such grant updates that database's one pg_database row, and two transactions that update it at once fail one of them (tuple concurrently updated), so schema targets made in parallel take turns for it, last, from the grant to their commit */
SELECT CASE WHEN r.role IS NULL THEN '{}'::text[] ELSE ARRAY[
           format('SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext(%L))', 'admmgt: GRANT CONNECT ON DATABASE ' || p_conn_db),
           format('GRANT CONNECT ON DATABASE %I TO %I', p_conn_db, r.role)] END
  FROM (SELECT lower(btrim(p_row.loginrole)) AS role) r;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_script_parts(p_template text, p_upto int)
RETURNS admmgt.script_parts[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the parts of every script up to p_upto that a new schema target gets (ready or applied, in id order, each script's parts in order), in the form schema targets share: read or rendered and rewritten once per create_schema() call, not once per schema */
SELECT coalesce(array_agg(p ORDER BY s.id, p.part), '{}')
  FROM admmgt.scripts s
 CROSS JOIN LATERAL unnest(admmgt._parts_map(ARRAY(SELECT x FROM admmgt._script_parts(s.id, current_date) x), p_template, NULL)) p
 WHERE s.id > 0 AND s.id <= p_upto AND s.status IN (1, 2);
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_script_stmts(p_nsp text, p_parts admmgt.script_parts[], p_upto int, INOUT p_stmts text[], INOUT p_version int)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statements that bring a new schema target from p_version up to p_upto in the transaction that makes it: each script's parts for its schema and its ledger row; a typed index outside a transaction is built inside it (the schema is empty); a script with another step outside a transaction ends the list, and applyScripts() goes on from there; p_parts: the scripts' parts in the form schema targets share (_schema_script_parts) */
DECLARE
    v_parts admmgt.script_parts[];
    v_p admmgt.script_parts;
    v_id int;
BEGIN
    FOR v_id IN SELECT s.id FROM admmgt.scripts s WHERE s.id > p_version AND s.id <= p_upto AND s.status IN (1, 2) ORDER BY s.id LOOP
        v_parts := admmgt._parts_map(ARRAY(SELECT p_parts[k] FROM generate_subscripts(p_parts, 1) AS k WHERE (p_parts[k]).scriptid = v_id ORDER BY k), NULL, p_nsp);
        IF EXISTS (SELECT 1 FROM unnest(v_parts) p WHERE p.txmode = 'none' AND NOT coalesce(p.index_def ? 'tail', false)) THEN
            RAISE NOTICE 'admmgt create: schema % is made at version %: script % has a step outside a transaction, which applyScripts() runs', p_nsp, p_version, v_id;
            RETURN;
        END IF;
        FOREACH v_p IN ARRAY v_parts LOOP
            p_stmts := p_stmts || CASE WHEN v_p.txmode = 'none' THEN ARRAY[admmgt._index_create(v_p.index_def, false)] ELSE v_p.stmts END;
        END LOOP;
        p_stmts := p_stmts || admmgt._ledger_insert(v_id, p_nsp);
        p_version := v_id;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_item(p_row admmgt.vendor_db_settings, p_parts admmgt.script_parts[], p_upto int,
                                               p_routines text[] DEFAULT '{}', p_views text[] DEFAULT '{}')
RETURNS admmgt.work_item
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the one transaction that makes a schema target: the schema and its grants; the template schema's routines (p_routines, in the form schema targets share: a script may call them), the scripts up to p_upto, the routines again (a script may have replaced one) and the template schema's views; scriptid is the version it is made at; p_parts: those scripts' parts in the shared form (_schema_script_parts) */
DECLARE
    v_nsp text := lower(btrim(p_row.dbname));
    v_conn_db text := coalesce(lower(btrim(p_row.schema_db)), current_database());
    v_stmts text[] := admmgt._schema_access_stmts(p_row, v_nsp, v_conn_db);
    v_own text[] := admmgt._for_schema(p_routines, v_nsp);
    v_version int := 0;
BEGIN
    IF cardinality(v_own) > 0 THEN
        -- A routine may name a table that a later script makes: its body is checked in the second round.
        v_stmts := v_stmts || 'SET LOCAL check_function_bodies = off'::text || v_own;
    END IF;
    SELECT * INTO v_stmts, v_version FROM admmgt._schema_script_stmts(v_nsp, p_parts, p_upto, v_stmts, v_version);
    IF cardinality(v_own) > 0 THEN
        v_stmts := v_stmts || 'SET LOCAL check_function_bodies = on'::text || v_own;
    END IF;
    v_stmts := v_stmts || admmgt._for_schema(p_views, v_nsp) || admmgt._schema_connect_stmts(p_row, v_conn_db);
    RETURN admmgt._item('schema', p_row.id, v_nsp, coalesce(p_row.server, 'local'), v_conn_db, v_version, v_stmts, true,
                        NULL, NULL, NULL, v_nsp);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_schema(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a new schema target: it is created, a schema, at the version its transaction reached */
BEGIN
    IF p_booking.ok THEN
        UPDATE admmgt.vendor_db_settings
           SET status = 2, kind = 'schema', server = coalesce(server, 'local'), scriptversion = p_item.scriptid, baseversion = p_item.scriptid,
               modifiedon = current_timestamp
         WHERE id = p_item.target_id;
    END IF;
    RETURN admmgt._success_lines(p_booking, ARRAY[format('created schema %s in database %s at version %s', p_item.nsp, p_item.conn_db, p_item.scriptid)]);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_ledger(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of the ledger of a database's schema targets */
SELECT admmgt._success_lines(p_booking, ARRAY[format('the ledger of the schema targets of database %s is there', p_item.conn_db)]);
$$;

CREATE OR REPLACE FUNCTION admmgt._ledger_items(p_rows admmgt.vendor_db_settings[])
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one item per database that will hold the given schema targets: the ledger they share */
SELECT coalesce(array_agg(admmgt._item('ledger', d.id, d.conn_db, d.server, d.conn_db, NULL, admmgt._schema_ledger_tables(), true)
                          ORDER BY d.server, d.conn_db), '{}')
  FROM (SELECT min(r.id) AS id, coalesce(r.server, 'local') AS server, coalesce(lower(btrim(r.schema_db)), current_database()) AS conn_db
          FROM unnest(p_rows) r GROUP BY 2, 3) d;
$$;

CREATE OR REPLACE PROCEDURE admmgt.create_schema(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: make every pending schema target (status 1): the schema template first when it is pending itself, then each tenant in one transaction of its own that creates its schema and applies every script its template has; each gets status 2 at that version */
DECLARE
    v_template text := admmgt._schema_template_name();
    v_rows admmgt.vendor_db_settings[];
    v_row admmgt.vendor_db_settings;
    v_items admmgt.work_item[] := '{}'::admmgt.work_item[];
    v_run bigint;
    v_error admmgt.error_state;
    v_version int;
    v_tpl admmgt.vendor_db_settings;
    v_db text;
    v_routines text[];
    v_views text[];
    v_parts admmgt.script_parts[];
BEGIN
    PERFORM admmgt._check_call('create_schema', p_parallel);
    IF v_template IS NULL THEN
        PERFORM admmgt._template('schema');
    END IF;
    v_rows := ARRAY(SELECT p FROM admmgt._pending_schemas() p);
    FOREACH v_row IN ARRAY v_rows LOOP
        PERFORM admmgt._check_schema_row(v_row, v_template);
    END LOOP;
    IF cardinality(v_rows) = 0 THEN
        RAISE NOTICE 'admmgt create: no schema target is pending (status 1)';
        RETURN;
    END IF;
    -- A template schema made now runs scripts that no schema target ran before: check them first.
    PERFORM admmgt._check_schema_scripts(ARRAY(SELECT s.id FROM admmgt.scripts s WHERE s.status = 2 AND s.id <= admmgt._template_upto(r, '{}')), current_date)
       FROM unnest(v_rows) r WHERE r.istemplate;
    CALL admmgt._begin_call('create', 'create_schema', p_wait_seconds, v_run);
    BEGIN
        v_rows := ARRAY(SELECT p FROM admmgt._pending_schemas() p);
        v_items := admmgt._ledger_items(v_rows);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    CALL admmgt._run('create', v_items, p_parallel, v_run);
    BEGIN
        -- The template first, alone: its tenants are made at the version it reaches.
        v_items := ARRAY(SELECT admmgt._schema_item(p, admmgt._schema_script_parts(v_template, u.upto), u.upto)
                           FROM admmgt._pending_schemas() p, LATERAL (SELECT admmgt._template_upto(p, '{}') AS upto) u WHERE p.istemplate);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    CALL admmgt._run('create', v_items, 1, v_run);
    BEGIN
        v_version := (SELECT t.version FROM admmgt.targets t WHERE t.istemplate AND t.kind = 'schema');
        IF v_version IS NULL THEN
            RAISE WARNING 'admmgt create: the schema template % is not created, so no tenant schema is made', v_template
                USING HINT = 'See SELECT * FROM admmgt.failures; fix the cause and call create_schema() again.';
            v_items := '{}'::admmgt.work_item[];
        ELSE
            v_tpl := admmgt._template('schema');
            v_db := coalesce(lower(btrim(v_tpl.schema_db)), current_database());
            v_routines := admmgt._schema_copies(admmgt._template_routines(v_db, v_template, true, false), v_template);
            v_views := admmgt._schema_copies(admmgt._template_routines(v_db, v_template, false, true), v_template);
            -- The scripts' parts once for all the schemas: each schema's copy costs a replace().
            v_parts := admmgt._schema_script_parts(v_template, v_version);
            v_items := ARRAY(SELECT admmgt._schema_item(p, v_parts, v_version, v_routines, v_views)
                               FROM admmgt._pending_schemas() p WHERE NOT p.istemplate);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    CALL admmgt._run('create', v_items, p_parallel, v_run);
    CALL admmgt._end_call('create', v_run);
END;
$$;
