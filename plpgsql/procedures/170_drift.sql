-- CALL admmgt.detectDrift();
--
-- Drift: what a target's app schemas hold that the template at the target's version does not, and
-- the reverse. One query (_fingerprint_sql) lists every object of a database's app schemas with
-- its definition, as one jsonb value; it runs on each target as a work item of kind 'fingerprint'
-- (one statement, no transaction), several targets at a time through the executor. The template's
-- fingerprint at a version is recorded when the template reaches that version (applyScripts runs
-- one after each script on the template: step 'record') or, when none was recorded, taken live
-- while the template is at that version. Comparing is done on the admin side (_drift_of), after
-- the run, and kept in admmgt.drift.
--
-- A fleet where nothing changed is checked without the fingerprint query, whose planning and
-- execution on a fresh session cost several times a plain query: detectDrift reads a target's
-- fingerprint together with its catalog stamp (_stamp_sql: the md5 of the oid and xmin of every
-- catalog row the fingerprint reads, in one statement), and next time sends the stamp query alone
-- when it kept a fingerprint of the target's version taken by the same query; a stamp that moved
-- asks for the fingerprint on the same connection (step 'stamp', _book_fingerprint). Any DDL on
-- those rows moves the stamp (VACUUM FREEZE does not: the xmin column keeps the raw value).
-- p_verify => true (admmgt drift --verify, admmgt check) takes every fingerprint anew. What the
-- stamp cannot see is a change outside the app schemas that only shows in a definition there: a
-- role renamed (in a grant), a type, collation or function of another schema renamed (in a
-- column type, default or body).
--
-- What is compared: schemas (with their grants), tables (partitioning key, row security, grants),
-- columns (type, collation, NOT NULL, default, identity, generated, column grants), constraints
-- (not the NOT NULL ones, which the columns say), indexes (not those behind a constraint), the
-- triggers of tables, views and materialized views (md5 of the definition, grants), functions and
-- procedures (md5 of pg_get_functiondef, grants), and the partitions whose names are not of the
-- period form <parent>..._pYYYYMMDD. Not compared: the period partitions maintenance makes (each
-- target has those of its own windows), anything of a partition (columns, constraints, indexes,
-- triggers: they are the parent's, cloned), owners (each server's admmgt role owns what it ran),
-- sequences, types and domains, policies, extension members, and schemas pg_*, information_schema
-- and admmgt. Grants are compared with the owner written as (owner).
--
-- A schema target is fingerprinted alone (_fingerprint_sql(p_nsp)) in the database that holds it,
-- and compared with the schema template's fingerprint (template_fingerprints of kind schema). Its
-- name differs from the template schema's by design, in object names and inside definitions (view
-- and routine bodies, defaults, foreign keys, index and trigger definitions, a routine's own
-- search_path): the query writes it as (schema) before bodies are hashed (_schema_neutral_sql), and
-- the grants to the target's own login role as (tenant role) (left out when the schema template has
-- no login role: nothing to compare them with).

CREATE OR REPLACE FUNCTION admmgt._schema_neutral_sql(p_expr text, p_nsp text, p_template_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: an expression of the fingerprint query: text expression p_expr with schema p_nsp (and p_template_nsp, the template schema, whose name a tenant's copy keeps inside strings) written as (schema) wherever it qualifies a name (quoted or not, any case: bodies keep what their author typed; in strings too, as in nextval('s.seq')) and where a routine's own SET search_path names it; p_expr itself when p_nsp is NULL */
SELECT CASE WHEN p_nsp IS NULL THEN p_expr
            ELSE format($f$pg_catalog.regexp_replace(pg_catalog.regexp_replace(%s, %L, '\1(schema)', 'gi'), %L, '\1''(schema)''', 'g')$f$,
                        p_expr, '(^|[^[:alnum:]_$.])("(?:' || e.re || ')"|(?:' || e.re || '))(?=\s*\.)',
                        '(\n SET search_path TO [^\n]*)''(?:' || e.re || ')''') END
  FROM (SELECT string_agg(regexp_replace(n, '([^A-Za-z0-9_])', '\\\1', 'g'), '|') AS re
          FROM unnest(ARRAY[p_nsp, p_template_nsp]) AS n WHERE n IS NOT NULL) e;
$$;

CREATE OR REPLACE FUNCTION admmgt._fingerprint_sql(p_nsp text DEFAULT NULL, p_roles text[] DEFAULT NULL, p_role_grants boolean DEFAULT true,
                                                   p_template_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the one query a target runs for its fingerprint: one row, one text column, a jsonb object of every object of its app schemas, or of schema p_nsp alone with its name (and the template schema's, p_template_nsp) written as (schema): "kind schema.name" -> {"p": the object it belongs to (NULL for none), "d": its definition}; grants to the roles p_roles are written as (tenant role) (each grant once), or left out when p_role_grants is false */
SELECT replace(replace(replace($q$
WITH me AS (
    SELECT ARRAY(SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = ANY ({{roles}}::text[])) AS oids, {{role_grants}}::boolean AS keep),
ns AS (
    SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt') AND n.nspname NOT LIKE 'pg\_%'
       AND ({{nsp}}::text IS NULL OR n.nspname = {{nsp}}::text)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                                                              AND d.objid = n.oid AND d.deptype = 'e')),
rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relispartition, c.relowner, c.relacl, c.relrowsecurity, c.relforcerowsecurity,
           n.nspname, pg_catalog.format('%I.%I', n.nspname, c.relname) AS q
      FROM pg_catalog.pg_class c JOIN ns n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                                              AND d.objid = c.oid AND d.deptype = 'e')),
tbl AS (
    SELECT * FROM rel WHERE relkind IN ('r', 'p', 'f') AND NOT relispartition),
fn AS (
    SELECT p.oid, p.prokind, p.proowner, p.proacl,
           pg_catalog.format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig
      FROM pg_catalog.pg_proc p JOIN ns n ON n.oid = p.pronamespace
     WHERE p.prokind IN ('f', 'p')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                                              AND d.objid = p.oid AND d.deptype = 'e')),
obj (k, p, d, b) AS (
    SELECT 'schema ' || CASE WHEN {{nsp}}::text IS NULL THEN pg_catalog.quote_ident(n.nspname) ELSE '(schema)' END, NULL::text,
           'grants ' || coalesce((SELECT pg_catalog.string_agg(DISTINCT g, ',' ORDER BY g) FROM (
               SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = n.nspowner THEN '(owner)' WHEN x.grantee = ANY ((SELECT m.oids FROM me m)::pg_catalog.oid[]) THEN '(tenant role)'
                                        ELSE pg_catalog.pg_get_userbyid(x.grantee)::text END
                      || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS g
                 FROM pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) x
                    WHERE (SELECT m.keep FROM me m) OR x.grantee <> ALL ((SELECT m.oids FROM me m)::pg_catalog.oid[])) a), ''), NULL::text
      FROM ns n
    UNION ALL
    SELECT CASE t.relkind WHEN 'f' THEN 'foreign table ' ELSE 'table ' END || t.q, NULL,
           pg_catalog.concat_ws('; ',
               CASE WHEN t.relkind = 'p' THEN 'partitioned by ' || pg_catalog.pg_get_partkeydef(t.oid) END,
               CASE WHEN t.relrowsecurity THEN 'row security' || CASE WHEN t.relforcerowsecurity THEN ' forced' ELSE '' END END,
               'grants ' || coalesce((SELECT pg_catalog.string_agg(DISTINCT g, ',' ORDER BY g) FROM (
                   SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = t.relowner THEN '(owner)' WHEN x.grantee = ANY ((SELECT m.oids FROM me m)::pg_catalog.oid[]) THEN '(tenant role)'
                                        ELSE pg_catalog.pg_get_userbyid(x.grantee)::text END
                          || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS g
                     FROM pg_catalog.aclexplode(coalesce(t.relacl, pg_catalog.acldefault('r', t.relowner))) x
                    WHERE (SELECT m.keep FROM me m) OR x.grantee <> ALL ((SELECT m.oids FROM me m)::pg_catalog.oid[])) a), '')), NULL
      FROM tbl t
    UNION ALL
    -- Partitions that every target must have (LIST values, DEFAULT): not the period partitions of maintenance.
    SELECT 'partition ' || r.q, CASE WHEN pr.relispartition THEN 'partition ' ELSE 'table ' END || pr.q,
           pg_catalog.pg_get_expr(c.relpartbound, c.oid)
           || CASE WHEN r.relkind = 'p' THEN '; partitioned by ' || pg_catalog.pg_get_partkeydef(r.oid) ELSE '' END, NULL
      FROM rel r JOIN pg_catalog.pg_class c ON c.oid = r.oid
      JOIN pg_catalog.pg_inherits i ON i.inhrelid = r.oid JOIN rel pr ON pr.oid = i.inhparent
     WHERE r.relispartition AND r.relname !~ '_p[0-9]{8}$'
    UNION ALL
    SELECT 'column ' || t.q || '.' || pg_catalog.quote_ident(a.attname), 'table ' || t.q,
           pg_catalog.concat_ws(' ', pg_catalog.format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                    THEN 'COLLATE ' || (SELECT pg_catalog.quote_ident(co.collname) FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation) END,
               CASE WHEN a.attnotnull THEN 'NOT NULL' END,
               CASE a.attidentity WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY' WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY' END,
               CASE WHEN a.attgenerated <> '' THEN 'GENERATED ALWAYS AS (' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) || ')'
                    WHEN ad.adbin IS NOT NULL THEN 'DEFAULT ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END,
               CASE WHEN a.attacl IS NOT NULL THEN 'grants ' || a.attacl::text END), NULL
      FROM tbl t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid
      JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
      LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint ' || t.q || '.' || pg_catalog.quote_ident(k.conname), 'table ' || t.q, pg_catalog.pg_get_constraintdef(k.oid), NULL
      FROM tbl t JOIN pg_catalog.pg_constraint k ON k.conrelid = t.oid
     WHERE k.contype <> 'n'
    UNION ALL
    SELECT 'index ' || pg_catalog.format('%I.%I', t.nspname, ic.relname),
           CASE WHEN t.relkind = 'm' THEN 'materialized view ' ELSE 'table ' END || t.q,
           pg_catalog.pg_get_indexdef(x.indexrelid) || CASE WHEN x.indisvalid THEN '' ELSE ' (INVALID)' END, NULL
      FROM rel t JOIN pg_catalog.pg_index x ON x.indrelid = t.oid JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
     WHERE t.relkind IN ('r', 'p', 'm') AND NOT t.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = t.oid AND k.contype IN ('p', 'u', 'x'))
    UNION ALL
    SELECT 'trigger ' || t.q || '.' || pg_catalog.quote_ident(g.tgname), 'table ' || t.q,
           pg_catalog.pg_get_triggerdef(g.oid) || CASE g.tgenabled WHEN 'O' THEN '' WHEN 'D' THEN ' (DISABLED)' ELSE ' (ENABLED ' || g.tgenabled::text || ')' END, NULL
      FROM tbl t JOIN pg_catalog.pg_trigger g ON g.tgrelid = t.oid
     WHERE NOT g.tgisinternal
    UNION ALL
    SELECT CASE v.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END || v.q, NULL,
           'grants ' || coalesce((SELECT pg_catalog.string_agg(DISTINCT g, ',' ORDER BY g) FROM (
                   SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = v.relowner THEN '(owner)' WHEN x.grantee = ANY ((SELECT m.oids FROM me m)::pg_catalog.oid[]) THEN '(tenant role)'
                                        ELSE pg_catalog.pg_get_userbyid(x.grantee)::text END
                          || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS g
                     FROM pg_catalog.aclexplode(coalesce(v.relacl, pg_catalog.acldefault('r', v.relowner))) x
                    WHERE (SELECT m.keep FROM me m) OR x.grantee <> ALL ((SELECT m.oids FROM me m)::pg_catalog.oid[])) a), ''), pg_catalog.pg_get_viewdef(v.oid)
      FROM rel v WHERE v.relkind IN ('v', 'm')
    UNION ALL
    SELECT CASE f.prokind WHEN 'p' THEN 'procedure ' ELSE 'function ' END || f.sig, NULL,
           'grants ' || coalesce((SELECT pg_catalog.string_agg(DISTINCT g, ',' ORDER BY g) FROM (
                   SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = f.proowner THEN '(owner)' WHEN x.grantee = ANY ((SELECT m.oids FROM me m)::pg_catalog.oid[]) THEN '(tenant role)'
                                        ELSE pg_catalog.pg_get_userbyid(x.grantee)::text END
                          || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS g
                     FROM pg_catalog.aclexplode(coalesce(f.proacl, pg_catalog.acldefault('f', f.proowner))) x
                    WHERE (SELECT m.keep FROM me m) OR x.grantee <> ALL ((SELECT m.oids FROM me m)::pg_catalog.oid[])) a), ''), pg_catalog.pg_get_functiondef(f.oid)
      FROM fn f)
$q$ || format($f$SELECT coalesce(pg_catalog.jsonb_object_agg(%s, pg_catalog.jsonb_build_object('p', %s, 'd',
           CASE WHEN b IS NULL THEN %s ELSE 'md5 ' || pg_catalog.md5(%s) || '; ' || d END)), '{}')::text FROM obj$f$,
              admmgt._schema_neutral_sql('k', p_nsp, p_template_nsp), admmgt._schema_neutral_sql('p', p_nsp, p_template_nsp),
              admmgt._schema_neutral_sql('d', p_nsp, p_template_nsp), admmgt._schema_neutral_sql('b', p_nsp, p_template_nsp)),
    '{{roles}}', quote_nullable(p_roles)), '{{role_grants}}', quote_literal(coalesce(p_role_grants, true))), '{{nsp}}', quote_nullable(p_nsp));
$$;

CREATE OR REPLACE FUNCTION admmgt._stamp_sql(p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the query of a target's catalog stamp: one row, one text column, the md5 of the identity and row version (xmin) of every catalog row of its app schemas (or of schema p_nsp alone) that the fingerprint reads (extension membership included), but those of the period partitions maintenance makes and of their indexes; DDL there (a dropped row, a new one, an updated one) gives another stamp */
SELECT replace($q$(WITH ns AS (
    SELECT pg_catalog.array_agg(n.oid) AS o, pg_catalog.string_agg(n.oid::text || ':' || n.xmin::text, ',' ORDER BY n.oid) AS s
      FROM pg_catalog.pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt') AND n.nspname NOT LIKE 'pg\_%'
       AND ({{nsp}}::text IS NULL OR n.nspname = {{nsp}}::text)),
c AS (
    SELECT pg_catalog.array_agg(c.oid) FILTER (WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition) AS o,
           pg_catalog.string_agg(c.oid::text || ':' || c.xmin::text, ',' ORDER BY c.oid) AS s
      FROM pg_catalog.pg_class c
     WHERE c.relnamespace = ANY ((SELECT ns.o FROM ns)::pg_catalog.oid[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'i', 'I')
       AND (NOT c.relispartition OR (c.relkind IN ('r', 'p', 'f') AND c.relname !~ '_p[0-9]{8}$')))
SELECT pg_catalog.md5(pg_catalog.concat_ws('|', (SELECT ns.s FROM ns), (SELECT c.s FROM c),
    (SELECT pg_catalog.string_agg(x.oid::text || ':' || x.xmin::text, ',' ORDER BY x.oid) FROM pg_catalog.pg_proc x
      WHERE x.pronamespace = ANY ((SELECT ns.o FROM ns)::pg_catalog.oid[])),
    (SELECT pg_catalog.string_agg(x.attrelid::text || '.' || x.attnum::text || ':' || x.xmin::text, ',' ORDER BY x.attrelid, x.attnum)
       FROM pg_catalog.pg_attribute x WHERE x.attrelid = ANY ((SELECT c.o FROM c)::pg_catalog.oid[]) AND x.attnum > 0),
    (SELECT pg_catalog.string_agg(x.oid::text || ':' || x.xmin::text, ',' ORDER BY x.oid) FROM pg_catalog.pg_attrdef x
      WHERE x.adrelid = ANY ((SELECT c.o FROM c)::pg_catalog.oid[])),
    (SELECT pg_catalog.string_agg(x.oid::text || ':' || x.xmin::text, ',' ORDER BY x.oid) FROM pg_catalog.pg_constraint x
      WHERE x.conrelid = ANY ((SELECT c.o FROM c)::pg_catalog.oid[])),
    (SELECT pg_catalog.string_agg(x.oid::text || ':' || x.xmin::text, ',' ORDER BY x.oid) FROM pg_catalog.pg_trigger x
      WHERE x.tgrelid = ANY ((SELECT c.o FROM c)::pg_catalog.oid[]) AND NOT x.tgisinternal),
    (SELECT pg_catalog.string_agg(x.oid::text || ':' || x.xmin::text, ',' ORDER BY x.oid) FROM pg_catalog.pg_rewrite x
      WHERE x.ev_class = ANY ((SELECT c.o FROM c)::pg_catalog.oid[])),
    -- CREATE INDEX CONCURRENTLY marks the index valid in pg_index alone.
    (SELECT pg_catalog.string_agg(x.indexrelid::text || ':' || x.xmin::text, ',' ORDER BY x.indexrelid) FROM pg_catalog.pg_index x
      WHERE x.indrelid = ANY ((SELECT c.o FROM c)::pg_catalog.oid[])),
    -- ALTER EXTENSION ... ADD / DROP changes what the fingerprint leaves out in pg_depend alone.
    (SELECT pg_catalog.string_agg(x.classid::text || '.' || x.objid::text || ':' || x.xmin::text, ',' ORDER BY x.classid, x.objid)
       FROM pg_catalog.pg_depend x
      WHERE x.deptype = 'e'
        AND ((x.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND x.objid = ANY ((SELECT ns.o FROM ns)::pg_catalog.oid[]))
          OR (x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND x.objid = ANY ((SELECT c.o FROM c)::pg_catalog.oid[]))
          OR (x.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
              AND x.objid IN (SELECT f.oid FROM pg_catalog.pg_proc f WHERE f.pronamespace = ANY ((SELECT ns.o FROM ns)::pg_catalog.oid[]))))))))$q$,
    '{{nsp}}', quote_nullable(p_nsp));
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_fingerprint_sql(p_nsp text, p_loginrole text, p_template boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the fingerprint query of schema p_nsp whose login role is p_loginrole: the template schema's (p_template), or a tenant's with the template schema's name in it written as (schema) too (a copy keeps it in strings); the grants to its login role are written as (tenant role) (on a tenant, the template's login role's too: a refresh copies the template's routine grants), left out when the schema template has no login role to compare them with */
SELECT admmgt._fingerprint_sql(p_nsp, ARRAY[lower(btrim(p_loginrole)), CASE WHEN NOT p_template THEN lower(btrim(tpl.loginrole)) END],
                               tpl.loginrole IS NOT NULL, CASE WHEN NOT p_template THEN tpl.nsp END)
  FROM (SELECT NULL) one
  LEFT JOIN (SELECT lower(btrim(r.dbname)) AS nsp, r.loginrole FROM admmgt.registry r
              WHERE r.istemplate AND NOT r.deleted AND r.kind = 'schema') tpl ON true;
$$;

CREATE OR REPLACE FUNCTION admmgt._target_fingerprint_sql(p_target_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the fingerprint query of one target: a database's app schemas, a schema target's (or the schema template's) own schema */
SELECT CASE WHEN t.kind = 'schema' THEN admmgt._schema_fingerprint_sql(t.nsp, v.loginrole, t.istemplate) ELSE admmgt._fingerprint_sql() END
  FROM admmgt.targets t JOIN admmgt.vendor_db_settings v ON v.id = t.id
 WHERE t.id = p_target_id;
$$;

CREATE OR REPLACE FUNCTION admmgt._stamped_sql(p_stamp_sql text, p_fingerprint_sql text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what detectDrift runs on a target for its fingerprint: one row, one text column, its catalog stamp (p_stamp_sql), a newline, then its fingerprint (p_fingerprint_sql); the stamp is read in the same statement, so that it is never newer than the fingerprint */
SELECT format($f$SELECT %s || E'\n' || f.s FROM (%s) AS f(s)$f$, p_stamp_sql, p_fingerprint_sql);
$$;

CREATE OR REPLACE FUNCTION admmgt._stamped_fingerprint_sql(p_target_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the stamped fingerprint query of one target (_stamped_sql) */
SELECT admmgt._stamped_sql(admmgt._stamp_sql(t.nsp), admmgt._target_fingerprint_sql(t.id))
  FROM admmgt.targets t WHERE t.id = p_target_id;
$$;

CREATE OR REPLACE FUNCTION admmgt._fingerprint_items(p_targets admmgt.targets[], p_verify boolean DEFAULT true)
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one fingerprint item per target, in the list's order, run where the target is (a schema target: in the database that holds it); scriptid carries the version the registry gives the target now, which its fingerprint is kept with. Unless p_verify, a target whose kept fingerprint is of that version and was taken by the same query sends its catalog stamp only (step 'stamp'): its booking takes the fingerprint when the stamp moved */
WITH db AS (
    -- Every database target runs the same query: built once, not once per target.
    SELECT admmgt._stamped_sql(admmgt._stamp_sql(), admmgt._fingerprint_sql()) AS sql)
SELECT coalesce(array_agg(CASE WHEN NOT p_verify AND f.stamp IS NOT NULL AND f.version = (p_targets[k]).version AND f.query_md5 = md5(q.sql)
                               THEN admmgt._target_item('fingerprint', p_targets[k], (p_targets[k]).version,
                                                        ARRAY[admmgt._stamp_sql((p_targets[k]).nsp)], false, NULL, 'stamp')
                               ELSE admmgt._target_item('fingerprint', p_targets[k], (p_targets[k]).version, ARRAY[q.sql], false) END ORDER BY k), '{}')
  FROM generate_subscripts(p_targets, 1) AS k
  CROSS JOIN db
  CROSS JOIN LATERAL (SELECT CASE WHEN (p_targets[k]).kind = 'database' THEN db.sql
                                  ELSE admmgt._stamped_fingerprint_sql((p_targets[k]).id) END AS sql) q
  LEFT JOIN admmgt.target_fingerprints f ON f.target_id = (p_targets[k]).id;
$$;

CREATE OR REPLACE FUNCTION admmgt._with_fingerprints(p_items admmgt.work_item[])
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: for applyScripts on the template: a fingerprint item (step 'record') after the last item of each script, so that the template's fingerprint is recorded at every version it reaches */
SELECT coalesce(array_agg(s.x ORDER BY s.k, s.o), '{}')
  FROM (SELECT k, 0 AS o, p_items[k] AS x FROM generate_subscripts(p_items, 1) AS k
        UNION ALL
        SELECT k, 1, admmgt._item('fingerprint', (p_items[k]).target_id, (p_items[k]).dbname, (p_items[k]).server,
                                  (p_items[k]).conn_db, (p_items[k]).scriptid, ARRAY[admmgt._target_fingerprint_sql((p_items[k]).target_id)], false, NULL, 'record',
                                  NULL, (p_items[k]).nsp)
          FROM generate_subscripts(p_items, 1) AS k
         WHERE k = cardinality(p_items) OR (p_items[k + 1]).scriptid IS DISTINCT FROM (p_items[k]).scriptid
            OR (p_items[k + 1]).target_id <> (p_items[k]).target_id) s;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_fingerprint(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a fingerprint item: keep the target's fingerprint (its one query's row, after the executor's prefix: with detectDrift, its catalog stamp first) with the version it was taken at, and the template's as the fingerprint of that version; log one line. A stamp item (step 'stamp') whose stamp is that of the kept fingerprint marks it as seen in this run; one whose stamp moved asks for the fingerprint. A fingerprint the template fails to give in applyScripts (step 'record') does not hold its scripts back: a WARNING, and the item counts as done */
DECLARE
    b admmgt.booking := p_booking;
    v_out text;
    v_stamp text;
    v_objects jsonb;
BEGIN
    IF b.ok THEN
        BEGIN
            v_out := p_state.outputs[cardinality(admmgt._batch_prefix(p_item.atomic)) + 1];
            IF p_item.step = 'stamp' THEN
                UPDATE admmgt.target_fingerprints f SET seen_at = p_state.finished_at
                 WHERE f.target_id = p_item.target_id AND f.version = p_item.scriptid AND f.stamp = v_out;
                IF FOUND THEN
                    b := admmgt._success_lines(b, ARRAY[format('fingerprint at version %s: catalogs unchanged since %s', p_item.scriptid,
                                                               (SELECT f.taken_at FROM admmgt.target_fingerprints f WHERE f.target_id = p_item.target_id))]);
                ELSE
                    b.lines := '{}';
                    b.expand := ARRAY[admmgt._stamped_fingerprint_sql(p_item.target_id)];
                END IF;
                RETURN b;
            END IF;
            IF p_item.step IS DISTINCT FROM 'record' THEN
                v_stamp := split_part(v_out, E'\n', 1);
                v_out := substr(v_out, length(v_stamp) + 2);
            END IF;
            v_objects := v_out::jsonb;
            INSERT INTO admmgt.target_fingerprints AS f (target_id, dbname, server, version, objects, taken_at, stamp, query_md5, seen_at)
            VALUES (p_item.target_id, p_item.dbname, coalesce(p_item.server, 'local'), p_item.scriptid, v_objects, p_state.finished_at,
                    v_stamp, CASE WHEN v_stamp IS NOT NULL THEN md5(p_item.stmts[1]) END, p_state.finished_at)
            ON CONFLICT (target_id) DO UPDATE
               SET dbname = EXCLUDED.dbname, server = EXCLUDED.server, version = EXCLUDED.version,
                   objects = EXCLUDED.objects, taken_at = EXCLUDED.taken_at, stamp = EXCLUDED.stamp,
                   query_md5 = EXCLUDED.query_md5, seen_at = EXCLUDED.seen_at;
            -- The template's fingerprint is that of its version, while the registry still says it is at that version.
            IF EXISTS (SELECT 1 FROM admmgt.vendor_db_settings v
                        WHERE v.id = p_item.target_id AND v.istemplate AND coalesce(v.scriptversion, 0) = p_item.scriptid) THEN
                INSERT INTO admmgt.template_fingerprints AS f (kind, version, dbname, objects, taken_at)
                VALUES (CASE WHEN p_item.nsp IS NULL THEN 'database' ELSE 'schema' END, p_item.scriptid, p_item.dbname, v_objects, p_state.finished_at)
                ON CONFLICT (kind, version) DO UPDATE SET dbname = EXCLUDED.dbname, objects = EXCLUDED.objects, taken_at = EXCLUDED.taken_at;
            END IF;
            b := admmgt._success_lines(b, ARRAY[format('fingerprint at version %s: %s objects', p_item.scriptid,
                                                       (SELECT count(*) FROM jsonb_object_keys(v_objects)))]);
        EXCEPTION WHEN OTHERS THEN
            b := admmgt._refused(b, SQLSTATE, 'admmgt: could not keep the fingerprint: ' || SQLERRM, NULL, 'fingerprint');
        END;
    END IF;
    IF NOT b.ok THEN
        b.lines := ARRAY['fingerprint'];
        IF p_item.step = 'record' THEN
            RAISE WARNING 'admmgt: the fingerprint of template % at version % was not recorded: % (SQLSTATE %)',
                          p_item.dbname, p_item.scriptid, b.message, b.sqlstate
                USING HINT = 'detectDrift() takes it while the template is at that version; tenants left at it cannot be compared after that.';
            b.ok := true;
            b.outcome := 'ok';
            b.lines := ARRAY[format('fingerprint at version %s not recorded: %s', p_item.scriptid, b.message)];
        END IF;
    END IF;
    RETURN b;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._record_template_fingerprint(p_template admmgt.vendor_db_settings)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: for a refresh, which gives the fleet the template's routines or views without a new version: record the template's fingerprint (of its kind) at its version again, read through dblink; a WARNING instead of an error when it cannot be read */
DECLARE
    v_objects jsonb;
    t admmgt.targets;
BEGIN
    SELECT * INTO STRICT t FROM admmgt.targets x WHERE x.id = p_template.id;
    SELECT r.s::jsonb INTO v_objects FROM dblink(admmgt._connstr(t.server, t.conn_db), admmgt._target_fingerprint_sql(t.id)) AS r(s text);
    INSERT INTO admmgt.template_fingerprints AS f (kind, version, dbname, objects)
    VALUES (t.kind, t.version, t.dbname, v_objects)
    ON CONFLICT (kind, version) DO UPDATE SET dbname = EXCLUDED.dbname, objects = EXCLUDED.objects, taken_at = EXCLUDED.taken_at;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'admmgt: the fingerprint of template % at version % was not recorded: % (SQLSTATE %)',
                  p_template.dbname, coalesce(p_template.scriptversion, 0), SQLERRM, SQLSTATE
        USING HINT = 'detectDrift() may report the refreshed routines as different until the template''s fingerprint is taken again.';
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._drift_of(p_template jsonb, p_target jsonb)
RETURNS TABLE (object text, kind text, detail text)
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: compare two fingerprints: each object missing from the target, extra in it, or with another definition; an object whose parent (its table) is missing or extra too is not listed, its parent is */
WITH d AS (
    SELECT coalesce(r.key, f.key) AS object,
           CASE WHEN f.key IS NULL THEN 'missing' WHEN r.key IS NULL THEN 'extra' ELSE 'different' END AS kind,
           coalesce(r.value ->> 'p', f.value ->> 'p') AS parent,
           CASE WHEN f.key IS NULL THEN 'template: ' || (r.value ->> 'd')
                WHEN r.key IS NULL THEN 'target: ' || (f.value ->> 'd')
                ELSE format('template: %s | target: %s', r.value ->> 'd', f.value ->> 'd') END AS detail
      FROM jsonb_each(p_template) r
      FULL JOIN jsonb_each(p_target) f ON f.key = r.key
     WHERE (r.value ->> 'd') IS DISTINCT FROM (f.value ->> 'd') OR r.key IS NULL OR f.key IS NULL
)
SELECT d.object, d.kind, d.detail FROM d
 WHERE d.kind = 'different' OR NOT EXISTS (SELECT 1 FROM d x WHERE x.object = d.parent AND x.kind = d.kind)
 ORDER BY d.object;
$$;

CREATE OR REPLACE FUNCTION admmgt._drift_targets(p_tenants text[], p_server text, p_tag text)
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the chosen targets that are compared: every created target but the templates and the pool databases (the database template's copies on other servers included), each with the template of its kind */
SELECT admmgt._select(coalesce(array_agg(t ORDER BY t.servertemplate DESC, t.server, t.id), '{}'), p_tenants, p_server, p_tag)
  FROM admmgt.targets t WHERE NOT t.istemplate AND NOT t.pool;
$$;

CREATE OR REPLACE FUNCTION admmgt._drift_references(p_chosen admmgt.targets[])
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what must be fingerprinted live as well: for each kind and version of a chosen target that has no recorded template fingerprint, the template of that kind when it is at that version, and the copies of the database template at that version on the servers of those targets */
WITH need AS (
    SELECT DISTINCT c.kind, c.server, c.version FROM unnest(p_chosen) c
     WHERE NOT EXISTS (SELECT 1 FROM admmgt.template_fingerprints f WHERE f.kind = c.kind AND f.version = c.version)
)
SELECT coalesce(array_agg(t ORDER BY t.istemplate DESC, t.id), '{}')
  FROM admmgt.targets t
 WHERE (t.istemplate AND (t.kind, t.version) IN (SELECT n.kind, n.version FROM need n))
    OR (t.servertemplate AND (t.kind, t.server, t.version) IN (SELECT n.kind, n.server, n.version FROM need n));
$$;

CREATE OR REPLACE FUNCTION admmgt._distinct_targets(p_targets admmgt.targets[])
RETURNS admmgt.targets[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a target list without repeats, each target where it first appears */
SELECT admmgt._at(coalesce(p_targets, '{}'::admmgt.targets[]), ARRAY(SELECT min(t.ordinality)::int FROM unnest(p_targets) WITH ORDINALITY AS t
                                     GROUP BY t.id ORDER BY 1));
$$;

CREATE OR REPLACE FUNCTION admmgt._keep_drift(p_chosen admmgt.targets[], p_run bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: after the fingerprint run: replace the drift rows of every chosen target with what its fingerprint of this run differs in from the template's at its version (recorded, or the live one of the template's copy on its server); cannot compare when it has no fingerprint of this run, its version moved meanwhile, or there is nothing to compare it with */
DECLARE
    v_since timestamptz := (SELECT r.started_at FROM admmgt.runs r WHERE r.run_id = p_run);
    t admmgt.targets;
    f admmgt.target_fingerprints;
    v_ref jsonb;
    v_why text;
BEGIN
    DELETE FROM admmgt.drift d WHERE d.target_id IN (SELECT c.id FROM unnest(p_chosen) c);
    FOREACH t IN ARRAY p_chosen LOOP
        v_why := NULL;
        v_ref := NULL;
        SELECT * INTO f FROM admmgt.target_fingerprints x WHERE x.target_id = t.id AND x.seen_at >= v_since;
        IF NOT FOUND THEN
            v_why := 'no fingerprint was taken: ' || coalesce((SELECT r.message FROM admmgt.target_results r
                                                               WHERE r.operation = 'drift' AND r.target_id = t.id AND r.run_id = p_run AND NOT r.ok),
                                                              'the target was not reached');
        ELSIF f.version <> (SELECT x.version FROM admmgt.targets x WHERE x.id = t.id) THEN
            v_why := format('its version moved from %s during the check (applyScripts ran meanwhile): check again', f.version);
        ELSE
            v_ref := (SELECT x.objects FROM admmgt.template_fingerprints x WHERE x.kind = t.kind AND x.version = f.version);
            IF v_ref IS NULL THEN
                v_ref := (SELECT x.objects FROM admmgt.target_fingerprints x JOIN admmgt.targets c ON c.id = x.target_id
                           WHERE c.servertemplate AND c.kind = t.kind AND c.server = t.server AND c.id <> t.id
                             AND x.version = f.version AND x.seen_at >= v_since);
            END IF;
            IF v_ref IS NULL THEN
                v_why := CASE WHEN t.kind = 'schema'
                              THEN format('no fingerprint of the schema template at version %s is recorded, and it is not at that version now', f.version)
                              ELSE format('no fingerprint of the template at version %s is recorded, and neither the template nor its copy on server %s is at that version now',
                                          f.version, t.server) END;
            END IF;
        END IF;
        IF v_why IS NOT NULL THEN
            INSERT INTO admmgt.drift (target_id, dbname, server, version, object, kind, detail, run_id)
            VALUES (t.id, t.dbname, t.server, t.version, '', 'cannot compare', v_why, p_run);
        ELSE
            INSERT INTO admmgt.drift (target_id, dbname, server, version, object, kind, detail, run_id)
            SELECT t.id, t.dbname, t.server, f.version, d.object, d.kind, d.detail, p_run FROM admmgt._drift_of(v_ref, f.objects) d;
        END IF;
    END LOOP;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.detectdrift(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                               p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL,
                                               p_verify boolean DEFAULT false, p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: fingerprint the app schemas of every chosen created target (not the templates; the database template's copies included; a schema target: its own schema), several at a time, compare each with the template of its kind at the target's version and keep what differs in admmgt.drift, replacing each checked target's rows; a target whose catalog stamp is the one of its kept fingerprint is compared with that fingerprint, unless p_verify, which fingerprints every one; p_workers: the targets spread over that many sessions on the admin database, as in applyScripts */
DECLARE
    v_chosen admmgt.targets[];
    v_items admmgt.work_item[];
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    PERFORM admmgt._check_call('detectDrift', p_parallel), admmgt._check_workers('detectDrift', p_workers);
    PERFORM admmgt._check_selection('detectDrift', p_tenants, p_server, p_tag);
    -- The template of each kind of target there is (the database's on an empty fleet) is what they are compared with.
    PERFORM admmgt._template(k)
       FROM unnest(coalesce((SELECT array_agg(DISTINCT t.kind) FROM admmgt.targets t WHERE NOT t.istemplate AND NOT t.pool), ARRAY['database'])) AS k;
    CALL admmgt._begin_call('drift', 'detectDrift', p_wait_seconds, v_run);
    BEGIN
        v_chosen := admmgt._drift_targets(p_tenants, p_server, p_tag);
        -- The live references first; a target that is both is fingerprinted once.
        v_items := admmgt._fingerprint_items(admmgt._distinct_targets(admmgt._drift_references(v_chosen) || v_chosen), coalesce(p_verify, false));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('drift', v_run, v_error);
    CALL admmgt._run('drift', v_items, p_parallel, v_run, NULL, p_workers);
    BEGIN
        PERFORM admmgt._keep_drift(v_chosen, v_run);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('drift', v_run, v_error);
    CALL admmgt._end_call('drift', v_run);
END;
$$;
