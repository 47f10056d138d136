-- CALL admmgt.refesh_stored_procedures();   (the spelling is part of the interface)

CREATE OR REPLACE FUNCTION admmgt._check_definers(p_template text, p_nsp text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, naming them, the SECURITY DEFINER routines of the template's app schemas (of the template schema p_nsp in database p_template) that a superuser owns or that pin no search_path, unless admmgt.definer_allowed lists them: refresh would give every tenant a way to run code with those rights */
DECLARE
    v_bad text;
BEGIN
    SELECT string_agg(format('%s (%s)', r.sig, r.why), ', ' ORDER BY r.sig) INTO v_bad
      FROM dblink(admmgt._connstr('local', p_template), format($q$
            SELECT p.oid::pg_catalog.regprocedure::text,
                   pg_catalog.concat_ws(' and ',
                       CASE WHEN o.rolsuper THEN 'owned by superuser ' || o.rolname END,
                       CASE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c WHERE c LIKE 'search\_path=%%')
                            THEN 'no SET search_path' END)
              FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              JOIN pg_catalog.pg_roles o ON o.oid = p.proowner
             WHERE p.prosecdef
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt') AND n.nspname NOT LIKE 'pg\_%%'
               -- The routines refresh copies (_template_routines), no others.
               AND p.prokind IN ('f', 'p')
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
               AND (o.rolsuper OR NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c WHERE c LIKE 'search\_path=%%'))
               AND (%1$L IS NULL OR n.nspname = %1$L)
           $q$, p_nsp)) AS r(sig text, why text)
     WHERE r.sig NOT IN (SELECT a.signature FROM admmgt.definer_allowed a);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: refresh would copy SECURITY DEFINER routines of template % into every tenant: %', p_template, v_bad
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Every tenant could run them with their owner''s rights. Give such a routine an owner that is not a superuser and SET search_path = pg_catalog, <its schema>; or, once reviewed, list it: INSERT INTO admmgt.definer_allowed (signature, note) VALUES (''schema.name(argtypes)'', ''why'').';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._template_routines(p_template text, p_nsp text DEFAULT NULL, p_routines boolean DEFAULT true,
                                                     p_views boolean DEFAULT false, p_schemas boolean DEFAULT false)
RETURNS text[]
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE SCHEMA IF NOT EXISTS for each app schema that has routines or views (with p_schemas: for every app schema of the template, empty ones too, not made by an extension), then CREATE OR REPLACE of every function (trigger functions included) and procedure in the template's app schemas (extension members excluded), with its owner and EXECUTE privileges; of the template schema p_nsp only, when given; then, with p_views, every view of those schemas, in the order they were made */
DECLARE
    v_stmts text[];
BEGIN
    SELECT array_agg(r.stmt ORDER BY r.ord, r.n)
      INTO v_stmts
      FROM dblink(admmgt._connstr('local', p_template), format($q$
            WITH app AS (
                SELECT p.oid, n.nspname, p.proowner, p.proacl,
                       format('%%I.%%I(%%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig
                  FROM pg_catalog.pg_proc p
                  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 WHERE %2$L AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt')
                   AND n.nspname NOT LIKE 'pg\_%%'
                   AND (%1$L IS NULL OR n.nspname = %1$L)
                   -- Trigger functions too: a trigger's function changed in the template reaches the tenants.
                   AND p.prokind IN ('f', 'p')
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))
            , views AS (
                SELECT c.oid, n.nspname, c.relname, c.reloptions FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE %3$L AND c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt')
                   AND n.nspname NOT LIKE 'pg\_%%' AND (%1$L IS NULL OR n.nspname = %1$L)
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))
            SELECT 0, row_number() OVER (ORDER BY nspname), format('CREATE SCHEMA IF NOT EXISTS %%I', nspname)
              FROM (SELECT nspname FROM app UNION SELECT nspname FROM views
                    -- A copy made empty on another server has none of them, and SQL steps assume them.
                    UNION SELECT n.nspname FROM pg_catalog.pg_namespace n
                     WHERE %4$L AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt') AND n.nspname NOT LIKE 'pg\_%%'
                       AND (%1$L IS NULL OR n.nspname = %1$L)
                       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                        WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')) s
            UNION ALL
            SELECT 1, row_number() OVER (ORDER BY nspname, oid), pg_catalog.pg_get_functiondef(oid)
              FROM app
            -- A definition carries neither owner nor privileges: copy both, so that a SECURITY
            -- DEFINER routine runs as the template's owner, not as whoever ran the refresh.
            UNION ALL
            SELECT 2, row_number() OVER (ORDER BY nspname, oid),
                   format('ALTER ROUTINE %%s OWNER TO %%I', sig, pg_catalog.pg_get_userbyid(proowner))
              FROM app
            UNION ALL
            SELECT 3, row_number() OVER (ORDER BY nspname, oid), format('REVOKE ALL ON ROUTINE %%s FROM PUBLIC', sig)
              FROM app WHERE proacl IS NOT NULL
            UNION ALL
            SELECT 4, row_number() OVER (ORDER BY a.nspname, a.oid, x.grantee),
                   format('GRANT EXECUTE ON ROUTINE %%s TO %%s', a.sig,
                          CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END)
              FROM app a CROSS JOIN LATERAL pg_catalog.aclexplode(a.proacl) x
             WHERE a.proacl IS NOT NULL AND x.privilege_type = 'EXECUTE' AND x.grantee <> a.proowner
            UNION ALL
            SELECT 5, row_number() OVER (ORDER BY oid),
                   format('CREATE OR REPLACE VIEW %%I.%%I%%s AS %%s', nspname, relname,
                          CASE WHEN reloptions IS NOT NULL THEN ' WITH (' || pg_catalog.array_to_string(reloptions, ', ') || ')' ELSE '' END,
                          pg_catalog.rtrim(pg_catalog.pg_get_viewdef(oid), ';'))
              FROM views
           $q$, p_nsp, p_routines, p_views, p_schemas)) AS r(ord int, n bigint, stmt text);
    RETURN coalesce(v_stmts, '{}');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._refresh_items(p_stmts text[], p_targets admmgt.targets[])
RETURNS admmgt.work_item[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one batch of the template's routines (p_stmts) for each of the given targets, in their order, its scriptid the target's version; a schema target's copy has its own schema where the template's form has the marker of the template schema */
SELECT coalesce(array_agg(admmgt._target_item('routines', p_targets[k], (p_targets[k]).version, admmgt._for_schema(p_stmts, (p_targets[k]).nsp), true) ORDER BY k), '{}')
  FROM generate_subscripts(p_targets, 1) AS k
 WHERE cardinality(p_stmts) > 0;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_routines(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a refresh batch: it also holds schemas, owners and grants, so log one line counting the definitions */
SELECT admmgt._success_lines(p_booking,
    ARRAY[concat(format('refreshed %s routines', (SELECT count(*) FROM unnest(p_item.stmts) AS s WHERE s ~ '^CREATE OR REPLACE (FUNCTION|PROCEDURE) ')),
                 (SELECT format(' and %s views', count(*)) FROM unnest(p_item.stmts) AS s WHERE s LIKE 'CREATE OR REPLACE VIEW %' HAVING count(*) > 0))]);
$$;

CREATE OR REPLACE FUNCTION admmgt._search_path_marked(p_def text, p_template text, p_mark text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a routine definition whose own SET search_path names the template schema (pg_get_functiondef prints it as strings, on a line of its own) with p_mark in its place */
DECLARE
    v_line text := E'(\n SET search_path TO [^\n]*)''' || p_template || '''';
    v_out text := p_def;
BEGIN
    WHILE v_out ~ v_line LOOP
        v_out := regexp_replace(v_out, v_line, E'\\1''' || p_mark || '''');
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_copies(p_stmts text[], p_template text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the template schema's definitions in the form every schema target's copy is made from (a routine's own SET search_path included); a WARNING for each that still names the template schema where admmgt cannot rewrite it (inside a string: dynamic SQL, for one), since every tenant's copy would reach the template's objects there */
DECLARE
    v_out text[] := '{}'::text[];
    v_stmt text;
    v_kept text[];
BEGIN
    FOREACH v_stmt IN ARRAY p_stmts LOOP
        v_kept := admmgt._schema_kept(admmgt._search_path_marked(v_stmt, p_template, ''), p_template);
        IF cardinality(v_kept) > 0 THEN
            RAISE WARNING 'admmgt refresh: % keeps % reference(s) to the template schema % that it cannot rewrite: %',
                          coalesce(substring(v_stmt FROM '^CREATE OR REPLACE (?:FUNCTION|PROCEDURE|VIEW) ([^(\s]+)'), left(v_stmt, 60)),
                          cardinality(v_kept), p_template, array_to_string(v_kept, ', ')
                USING HINT = 'Only names written as code (schema.name) are pointed at each tenant''s own schema; a name inside a string stays the template''s. Build it from the routine''s own schema instead, or pass it in.';
        END IF;
        v_out := v_out || admmgt._search_path_marked(admmgt._schema_template(v_stmt, p_template), p_template, chr(1));
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._refresh_stmts(p_kind text, p_views_only boolean, p_check_only boolean DEFAULT false)
RETURNS text[]
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: read the batch a refresh sends from the template of a kind (its routines, or its views), refusing unsafe SECURITY DEFINER routines; with p_check_only, only that check (NULL) */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template(p_kind);
    v_nsp text := CASE WHEN p_kind = 'schema' THEN v_template.dbname::text END;
    v_db text := CASE WHEN p_kind = 'schema' THEN coalesce(lower(btrim(v_template.schema_db)), current_database()) ELSE v_template.dbname::text END;
    v_stmts text[];
BEGIN
    IF NOT p_views_only THEN
        PERFORM admmgt._check_definers(v_db, v_nsp);
    END IF;
    IF p_check_only THEN
        RETURN NULL;
    END IF;
    v_stmts := admmgt._template_routines(v_db, v_nsp, NOT p_views_only, p_views_only OR p_kind = 'schema');
    IF p_kind = 'schema' THEN
        v_stmts := admmgt._schema_copies(v_stmts, v_nsp);
    END IF;
    -- The fleet gets the template's routines and views as they are now: so does the fingerprint of its version (170_drift.sql).
    PERFORM admmgt._record_template_fingerprint(v_template);
    RETURN v_stmts;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._refresh_kind(p_kind text, p_call text, p_scriptid int, p_views_only boolean, p_parallel int, p_wait_seconds int,
                                                 p_tenants text[], p_server text, p_tag text, p_verify boolean, p_workers int)
LANGUAGE plpgsql
AS $$
/* purpose: refresh for the targets of one kind: the routines (and, for schema targets or with p_views_only, the views) of the template of that kind, into its copies and the chosen tenants with updateflag at version p_scriptid or above; a target last pushed exactly this batch is not connected, unless p_verify */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template(p_kind);
    v_stmts text[];
    v_targets admmgt.targets[];
    v_below int;
    v_refresh text := CASE WHEN p_views_only THEN 'views' ELSE 'routines' END;
    v_items admmgt.work_item[];
    v_held bigint[] := '{}'::bigint[];
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    -- Read the template before taking the lock: an error after it would leave the lock with this session.
    v_stmts := admmgt._refresh_stmts(p_kind, p_views_only);
    v_targets := admmgt._select(admmgt._update_targets(p_kind), p_tenants, p_server, p_tag);
    IF p_scriptid IS NOT NULL THEN
        -- A tenant below the script the definitions need would get routines that name objects it does not have yet.
        v_below := (SELECT count(*)::int FROM unnest(v_targets) t WHERE t.version < p_scriptid);
        v_targets := ARRAY(SELECT t FROM unnest(v_targets) t WHERE t.version >= p_scriptid);
        IF v_below > 0 THEN
            RAISE NOTICE 'admmgt refresh: % target(s) below version % (t_scriptid) are left as they are', v_below, p_scriptid;
        END IF;
    END IF;
    CALL admmgt._begin_call('refresh', p_call, p_wait_seconds, v_run);
    IF cardinality(v_stmts) = 0 THEN
        RAISE NOTICE 'admmgt refresh: the template % has no % in its app schemas', v_template.dbname,
                     CASE WHEN p_views_only THEN 'views' ELSE 'functions or procedures' END;
    ELSE
        v_items := admmgt._refresh_items(v_stmts, v_targets);
        BEGIN
            IF NOT coalesce(p_verify, false) THEN
                v_held := admmgt._refresh_held(v_items, v_refresh);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
        END;
        CALL admmgt._end_call_if_failed('refresh', v_run, v_error);
        PERFORM admmgt._note_skipped('refresh', v_run, cardinality(v_held),
                                     format('the template''s %s as they are now', v_refresh));
        v_items := admmgt._without(v_items, v_held);
        CALL admmgt._run('refresh', v_items, p_parallel, v_run, NULL, p_workers);
        PERFORM admmgt._keep_refresh(v_run, v_items, v_refresh);
    END IF;
    CALL admmgt._end_call('refresh', v_run);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._refresh(p_call text, p_views_only boolean, p_separatedb int, p_scriptid int, p_parallel int,
                                            p_wait_seconds int, p_tenants text[], p_server text, p_tag text, p_verify boolean, p_workers int)
LANGUAGE plpgsql
AS $$
/* purpose: what refesh_stored_procedures and refesh_views do: check the call, then refresh each kind of target asked for */
DECLARE
    v_kind text;
BEGIN
    PERFORM admmgt._check_call(p_call, p_parallel, p_tenants, p_server, p_tag), admmgt._check_workers(p_call, p_workers);
    FOREACH v_kind IN ARRAY admmgt._kinds(p_separatedb, p_call) LOOP
        CALL admmgt._refresh_kind(v_kind, p_call, p_scriptid, p_views_only, p_parallel, p_wait_seconds, p_tenants, p_server, p_tag, p_verify, p_workers);
    END LOOP;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.refesh_stored_procedures(t_separatedb int DEFAULT NULL, t_scriptid int DEFAULT NULL,
                                                            p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                                            p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL,
                                                            p_verify boolean DEFAULT false, p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: create or replace every function (trigger functions included) and procedure of the template's app schemas in its copies on other servers and in every created tenant with updateflag (or the chosen ones); t_separatedb 1: database targets only, 0: schema targets only (whose copies name their own schema, and which get the template schema's views too); t_scriptid: only targets at that version or above; a target last pushed exactly the batch it would get is not connected, unless p_verify; p_workers: that many more admin sessions share the targets */
BEGIN
    CALL admmgt._refresh('refesh_stored_procedures', false, t_separatedb, t_scriptid, p_parallel, p_wait_seconds, p_tenants, p_server, p_tag, p_verify, p_workers);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.refesh_views(t_separatedb int DEFAULT NULL, t_scriptid int DEFAULT NULL,
                                                p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                                p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL,
                                                p_verify boolean DEFAULT false, p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: create or replace every view of the template's app schemas in its copies and every created tenant with updateflag (or the chosen ones), as refesh_stored_procedures does routines; t_separatedb, t_scriptid, p_verify and p_workers as there */
BEGIN
    CALL admmgt._refresh('refesh_views', true, t_separatedb, t_scriptid, p_parallel, p_wait_seconds, p_tenants, p_server, p_tag, p_verify, p_workers);
END;
$$;
