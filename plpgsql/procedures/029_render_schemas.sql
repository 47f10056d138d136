-- Render layer: scripts for schema targets. Script rows name the template schema; each
-- schema target runs them in its own. A script's statements (frozen, or rendered now) are turned
-- once per call into a form where every code reference to the template schema is a marker
-- (_schema_template, 018_schema_refs.sql); each schema target's copy then costs one replace() (_for_schema).
-- The rules of what counts as a reference, and where rewriting stops, are in docs/schema-mode.md.

CREATE OR REPLACE FUNCTION admmgt._schema_template_name()
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the schema of the schema template, created or pending (NULL when there is none) */
SELECT lower(btrim(r.dbname)) FROM admmgt.registry r
 WHERE r.istemplate AND NOT r.deleted AND (r.kind = 'schema' OR (r.kind IS NULL AND r.status <> 2));
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_marked(p_sql text, p_schema text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: admmgt's own statements (maintenance) in the form schema targets share: every qualified name in the template schema, in code and inside the strings of its DO blocks alike, with the marker for the schema; only for text admmgt wrote from checked names, never for a row's own SQL */
SELECT regexp_replace(p_sql, '(^|[^A-Za-z0-9_$."])' || p_schema || '(\s*\.)', '\1' || chr(1) || '\2', 'g');
$$;

CREATE OR REPLACE FUNCTION admmgt._for_schema(p_stmts text[], p_nsp text)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: statements in the form schema targets share, as the schema target p_nsp runs them (unchanged for a database target, p_nsp NULL): the marker of the template schema made its own schema */
SELECT CASE WHEN p_nsp IS NULL OR p_stmts IS NULL THEN p_stmts
            ELSE ARRAY(SELECT replace(s, chr(1), quote_ident(p_nsp)) FROM unnest(p_stmts) WITH ORDINALITY AS x(s, n) ORDER BY n) END;
$$;

CREATE OR REPLACE FUNCTION admmgt._parts_map(p_parts admmgt.script_parts[], p_schema text, p_nsp text)
RETURNS admmgt.script_parts[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a script's parts in the form schema targets share (p_nsp NULL: every code reference to the template schema p_schema made the marker), or as the schema target p_nsp runs that form (p_schema NULL) */
SELECT coalesce(array_agg(ROW(p.scriptid, p.part, p.txmode,
                              CASE WHEN p_nsp IS NULL
                                   THEN ARRAY(SELECT admmgt._schema_template(s, p_schema) FROM unnest(p.stmts) WITH ORDINALITY AS x(s, n) ORDER BY n)
                                   ELSE admmgt._for_schema(p.stmts, p_nsp) END,
                              p.sources,
                              CASE WHEN p.index_def ->> 'schema' = coalesce(p_schema, chr(1))
                                   THEN jsonb_set(p.index_def, '{schema}', to_jsonb(coalesce(p_nsp, chr(1)))) ELSE p.index_def END,
                              p.destructive)::admmgt.script_parts ORDER BY p.part), '{}')
  FROM unnest(p_parts) AS p;
$$;

CREATE OR REPLACE FUNCTION admmgt._in_admin_db(p_target admmgt.targets)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: whether a target is a schema of the admin database itself, where a build CONCURRENTLY would wait for admmgt's own session, which waits for it: PostgreSQL sees no deadlock there, and both would wait for ever */
SELECT p_target.nsp IS NOT NULL AND p_target.conn_db = current_database() AND coalesce(p_target.server, 'local') = 'local';
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_row_tables()
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the script row tables whose rows name a schema */
SELECT ARRAY['script_tables', 'script_table_fkeys', 'script_indexes', 'script_column_changes', 'script_table_changes',
             'script_constraints', 'script_views', 'script_triggers'];
$$;

CREATE OR REPLACE FUNCTION admmgt._check_schema_scripts(p_ids int[], p_asof date, p_down boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: before any schema target is touched, refuse, naming the row, a script row that would not stay in the tenant's own schema (p_down: a down step a rollback runs): a typed row that names another schema than the template's, a CALL or SQL step that names another schema target, or any row whose text names the template schema inside a string, where it cannot be rewritten (a typed column's default nextval('unitemplate.seq') too) */
DECLARE
    v_schema text := admmgt._schema_template_name();
    v_table text;
    v_id bigint;
    v_name text;
    r record;
BEGIN
    IF v_schema IS NULL OR coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    FOREACH v_table IN ARRAY admmgt._schema_row_tables() LOOP
        EXECUTE format('SELECT x.id, x.schemaname FROM admmgt.%I x WHERE x.scriptid = ANY ($1) AND lower(btrim(x.schemaname)) IS DISTINCT FROM $2 ORDER BY x.id LIMIT 1', v_table)
           INTO v_id, v_name USING p_ids, v_schema;
        IF v_id IS NOT NULL THEN
            RAISE EXCEPTION 'admmgt: % names schema %, not the template schema %', admmgt._row(v_table, v_id), quote_literal(v_name), v_schema
                USING ERRCODE = 'invalid_schema_name',
                      HINT = format('With schema targets, script rows name the template schema (%s); each tenant gets the object in its own schema.', v_schema);
        END IF;
    END LOOP;
    -- p_down: the down steps a rollback runs (render_down), instead of what an apply runs. free:
    -- a SQL step or CALL as its row has it; the others are rendered from typed rows, whose
    -- expressions (a column default, a check) are the row's own text too.
    FOR r IN SELECT s.source, s.stmt, s.txmode, (s.source LIKE 'admmgt.script_sql %' OR s.source LIKE 'admmgt.script_procs %') AS free
               FROM unnest(p_ids) AS i(id), LATERAL admmgt.render_steps(i.id, p_asof) s
              WHERE NOT p_down
             UNION ALL
             SELECT d.source, d.stmt, 'script', true FROM unnest(p_ids) AS i(id), LATERAL admmgt.render_down(i.id) d WHERE p_down LOOP
        IF r.free THEN
            IF r.txmode = 'none' AND r.stmt ~* '\mconcurrently\M'
               AND EXISTS (SELECT 1 FROM admmgt.registry g
                            WHERE NOT g.deleted AND (g.kind = 'schema' OR (g.kind IS NULL AND g.status = 1))
                              AND g.schema_db IS NULL AND coalesce(g.on_server, 'local') = 'local') THEN
                RAISE EXCEPTION 'admmgt: % builds or drops CONCURRENTLY, which cannot run in a schema target of the admin database', r.source
                    USING ERRCODE = 'feature_not_supported',
                          HINT = 'A build CONCURRENTLY waits for every transaction of its database, admmgt''s own session too, which waits for it. Use a typed index (script_indexes, built in the transaction there), or keep such schema targets in a database of their own (schema_db).';
            END IF;
        END IF;
        -- Typed rows too: a view's query or a check is the row's own text, and may name any schema.
        SELECT n INTO v_name FROM unnest(admmgt._code_schemas(r.stmt)) n
         WHERE n <> v_schema AND EXISTS (SELECT 1 FROM admmgt.registry g WHERE g.kind = 'schema' AND NOT g.deleted AND lower(btrim(g.dbname)) = n)
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'admmgt: % names schema %, which is another schema target', r.source, v_name
                USING ERRCODE = 'invalid_schema_name',
                      HINT = format('A row reaches its own tenant''s schema by naming the template schema (%s), which every tenant''s copy names as its own.', v_schema);
        END IF;
        IF cardinality(admmgt._schema_kept(r.stmt, v_schema)) > 0 THEN
            RAISE EXCEPTION 'admmgt: % names the template schema % inside a string: %', r.source, v_schema, (admmgt._schema_kept(r.stmt, v_schema))[1]
                USING ERRCODE = 'invalid_schema_name',
                      HINT = format('admmgt rewrites %s to each tenant''s schema only where it is code (%s.name), not inside strings: every tenant would reach the template''s objects. %s',
                                    v_schema, v_schema,
                                    CASE WHEN r.free THEN 'Write the name as code.'
                                         ELSE 'A default nextval(''schema.seq'') would share the template''s sequence: make the column an identity column (isidentity), and each tenant''s table gets its own.' END);
        END IF;
    END LOOP;
END;
$$;
