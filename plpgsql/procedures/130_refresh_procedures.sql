-- CALL admmgt.refesh_stored_procedures();   (the spelling is part of the interface)

CREATE OR REPLACE FUNCTION admmgt._check_definers(p_template text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, naming them, the SECURITY DEFINER routines of the template's app schemas that a superuser owns or that pin no search_path, unless admmgt.definer_allowed lists them: refresh would give every tenant a way to run code with those rights */
DECLARE
    v_bad text;
BEGIN
    SELECT string_agg(format('%s (%s)', r.sig, r.why), ', ' ORDER BY r.sig) INTO v_bad
      FROM dblink(admmgt._connstr('local', p_template), $q$
            SELECT p.oid::pg_catalog.regprocedure::text,
                   pg_catalog.concat_ws(' and ',
                       CASE WHEN o.rolsuper THEN 'owned by superuser ' || o.rolname END,
                       CASE WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
                            THEN 'no SET search_path' END)
              FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              JOIN pg_catalog.pg_roles o ON o.oid = p.proowner
             WHERE p.prosecdef
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt') AND n.nspname NOT LIKE 'pg\_%'
               -- The routines refresh copies (_template_routines), no others.
               AND p.prokind IN ('f', 'p')
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')
               AND (o.rolsuper OR NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c WHERE c LIKE 'search\_path=%'))
           $q$) AS r(sig text, why text)
     WHERE r.sig NOT IN (SELECT a.signature FROM admmgt.definer_allowed a);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: refresh would copy SECURITY DEFINER routines of template % into every tenant: %', p_template, v_bad
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Every tenant could run them with their owner''s rights. Give such a routine an owner that is not a superuser and SET search_path = pg_catalog, <its schema>; or, once reviewed, list it: INSERT INTO admmgt.definer_allowed (signature, note) VALUES (''schema.name(argtypes)'', ''why'').';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._template_routines(p_template text)
RETURNS text[]
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE SCHEMA IF NOT EXISTS for each app schema, then CREATE OR REPLACE of every function (trigger functions included) and procedure in the template's app schemas (extension members excluded), with its owner and EXECUTE privileges */
DECLARE
    v_stmts text[];
BEGIN
    SELECT array_agg(r.stmt ORDER BY r.ord, r.n)
      INTO v_stmts
      FROM dblink(admmgt._connstr('local', p_template), $q$
            WITH app AS (
                SELECT p.oid, n.nspname, p.proowner, p.proacl,
                       format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig
                  FROM pg_catalog.pg_proc p
                  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt')
                   AND n.nspname NOT LIKE 'pg\_%'
                   -- Trigger functions too: a trigger's function changed in the template reaches the tenants.
                   AND p.prokind IN ('f', 'p')
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))
            SELECT 0, row_number() OVER (ORDER BY nspname), format('CREATE SCHEMA IF NOT EXISTS %I', nspname)
              FROM (SELECT DISTINCT nspname FROM app) s
            UNION ALL
            SELECT 1, row_number() OVER (ORDER BY nspname, oid), pg_catalog.pg_get_functiondef(oid)
              FROM app
            -- A definition carries neither owner nor privileges: copy both, so that a SECURITY
            -- DEFINER routine runs as the template's owner, not as whoever ran the refresh.
            UNION ALL
            SELECT 2, row_number() OVER (ORDER BY nspname, oid),
                   format('ALTER ROUTINE %s OWNER TO %I', sig, pg_catalog.pg_get_userbyid(proowner))
              FROM app
            UNION ALL
            SELECT 3, row_number() OVER (ORDER BY nspname, oid), format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', sig)
              FROM app WHERE proacl IS NOT NULL
            UNION ALL
            SELECT 4, row_number() OVER (ORDER BY a.nspname, a.oid, x.grantee),
                   format('GRANT EXECUTE ON ROUTINE %s TO %s', a.sig,
                          CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x.grantee)) END)
              FROM app a CROSS JOIN LATERAL pg_catalog.aclexplode(a.proacl) x
             WHERE a.proacl IS NOT NULL AND x.privilege_type = 'EXECUTE' AND x.grantee <> a.proowner
           $q$) AS r(ord int, n bigint, stmt text);
    RETURN coalesce(v_stmts, '{}');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._refresh_items(p_stmts text[], p_targets admmgt.targets[])
RETURNS admmgt.work_item[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one batch of the template's routines (p_stmts) for each of the given targets, in their order */
SELECT coalesce(array_agg(admmgt._item('routines', t.id, t.dbname, t.server, t.dbname, NULL, p_stmts, true) ORDER BY t.ordinality), '{}')
  FROM unnest(p_targets) WITH ORDINALITY AS t
 WHERE cardinality(p_stmts) > 0;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_routines(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a refresh batch: it also holds schemas, owners and grants, so log one line counting the definitions */
SELECT admmgt._success_lines(p_booking,
    ARRAY[format('refreshed %s routines', (SELECT count(*) FROM unnest(p_item.stmts) AS s WHERE s LIKE 'CREATE OR REPLACE %'))]);
$$;

CREATE OR REPLACE PROCEDURE admmgt.refesh_stored_procedures(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                                            p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: create or replace every function (trigger functions included) and procedure of the template's app schemas in its copies on other servers and in every created tenant with updateflag (or the chosen ones) */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_stmts text[];
    v_run bigint;
BEGIN
    PERFORM admmgt._check_call('refesh_stored_procedures', p_parallel);
    PERFORM admmgt._check_selection('refesh_stored_procedures', p_tenants, p_server, p_tag);
    v_template := admmgt._template();
    -- Read the template before taking the lock: an error after it would leave the lock with this session.
    PERFORM admmgt._check_definers(v_template.dbname);
    v_stmts := admmgt._template_routines(v_template.dbname);
    -- The fleet gets the template's routines as they are now: so does the fingerprint of its version (170_drift.sql).
    PERFORM admmgt._record_template_fingerprint(v_template);
    CALL admmgt._begin_call('refresh', 'refesh_stored_procedures', p_wait_seconds, v_run);
    IF cardinality(v_stmts) = 0 THEN
        RAISE NOTICE 'admmgt refresh: the template % has no functions or procedures in its app schemas', v_template.dbname;
    ELSE
        CALL admmgt._run('refresh', admmgt._refresh_items(v_stmts, admmgt._select(admmgt._update_targets(), p_tenants, p_server, p_tag)),
                         p_parallel, v_run);
    END IF;
    CALL admmgt._end_call('refresh', v_run);
END;
$$;
