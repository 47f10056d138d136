-- Render layer, part 8: a script as parts, and the tenant-side ledger that makes every part
-- exactly-once. A script whose steps all run in its transaction is one part, sent as one batch as
-- it always was. A step with txmode none is a part of its own, run alone outside any transaction;
-- a step with txmode alone starts a new transactional part. The target's ledger records each
-- part, so a rerun resumes at the first part that did not finish, and the script itself
-- (admmgt.applied_scripts, which moves the version) only once every part is done.

CREATE OR REPLACE FUNCTION admmgt._render_parts(p_scriptid int, p_asof date)
RETURNS SETOF admmgt.script_parts
LANGUAGE sql STABLE
ROWS 50
SET search_path FROM CURRENT
AS $$
/* purpose: a script's statements grouped into parts, as render_steps orders them */
WITH s AS (
    SELECT r.*, (r.txmode IN ('none', 'alone') OR lag(r.txmode) OVER (ORDER BY r.seq) = 'none') AND r.seq > 1 AS brk
      FROM admmgt.render_steps(p_scriptid, p_asof) r
), p AS (
    SELECT s.*, 1 + (sum(s.brk::int) OVER (ORDER BY s.seq))::int AS part FROM s
)
SELECT p_scriptid, p.part, CASE WHEN bool_or(p.txmode = 'none') THEN 'none' ELSE 'script' END,
       array_agg(p.stmt ORDER BY p.seq), array_agg(p.source ORDER BY p.seq),
       -- A typed index row's definition; a SQL step's CREATE INDEX CONCURRENTLY names its index too.
       coalesce((array_agg(p.index_def) FILTER (WHERE p.index_def IS NOT NULL))[1],
                CASE WHEN bool_or(p.txmode = 'none') THEN admmgt._sql_concurrent_index(min(p.stmt)) END),
       array_agg(coalesce(p.destructive, false) ORDER BY p.seq)
  FROM p GROUP BY p.part ORDER BY p.part;
$$;

CREATE OR REPLACE FUNCTION admmgt._script_parts(p_scriptid int, p_asof date)
RETURNS SETOF admmgt.script_parts
LANGUAGE sql STABLE
ROWS 50
SET search_path FROM CURRENT
AS $$
/* purpose: what a target runs for a script: its frozen parts once the template applied it, else its rows rendered now */
SELECT f.* FROM admmgt.script_parts f WHERE f.scriptid = p_scriptid
UNION ALL
SELECT r.* FROM admmgt._render_parts(p_scriptid, p_asof) r
 WHERE NOT EXISTS (SELECT 1 FROM admmgt.script_parts f WHERE f.scriptid = p_scriptid)
ORDER BY 2;
$$;

CREATE OR REPLACE FUNCTION admmgt._ledger_tables(p_parts boolean)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the tenant-side ledger's DDL: applied_scripts, and applied_parts for a script in parts */
SELECT ARRAY[
    'CREATE SCHEMA IF NOT EXISTS admmgt',
    'CREATE TABLE IF NOT EXISTS admmgt.applied_scripts (scriptid integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())']
    || CASE WHEN p_parts THEN ARRAY[
    'CREATE TABLE IF NOT EXISTS admmgt.applied_parts (scriptid integer, part integer, token text, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, PRIMARY KEY (scriptid, part))']
    ELSE '{}'::text[] END;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_ledger_tables()
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the tenant-side ledger of the schema targets a database holds, made once per database before any of them (create_schema): one row per schema and script, and per schema, script and part */
SELECT ARRAY[
    'CREATE SCHEMA IF NOT EXISTS admmgt',
    'REVOKE ALL ON SCHEMA admmgt FROM PUBLIC',
    'CREATE TABLE IF NOT EXISTS admmgt.applied_schema_scripts (schemaname name, scriptid integer, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (schemaname, scriptid))',
    'CREATE TABLE IF NOT EXISTS admmgt.applied_schema_parts (schemaname name, scriptid integer, part integer, token text, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, PRIMARY KEY (schemaname, scriptid, part))'];
$$;

CREATE OR REPLACE FUNCTION admmgt._ledger_insert(p_scriptid int, p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the tenant-side ledger row of a script (of a schema target: of its schema); its primary key refuses a second apply */
SELECT CASE WHEN p_nsp IS NULL THEN format('INSERT INTO admmgt.applied_scripts (scriptid) VALUES (%s)', p_scriptid)
            ELSE format('INSERT INTO admmgt.applied_schema_scripts (schemaname, scriptid) VALUES (%L, %s)', p_nsp, p_scriptid) END;
$$;

CREATE OR REPLACE FUNCTION admmgt._parts_table(p_nsp text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the tenant-side ledger table of parts: a database target's own, or the one of the schemas of its database */
SELECT CASE WHEN p_nsp IS NULL THEN 'admmgt.applied_parts' ELSE 'admmgt.applied_schema_parts' END;
$$;

CREATE OR REPLACE FUNCTION admmgt._parts_key(p_scriptid int, p_part int, p_nsp text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the condition that finds one part's ledger row */
SELECT concat(CASE WHEN p_nsp IS NOT NULL THEN format('schemaname = %L AND ', p_nsp) END,
              format('scriptid = %s AND part = %s', p_scriptid, p_part));
$$;

CREATE OR REPLACE FUNCTION admmgt._parts_insert(p_scriptid int, p_part int, p_nsp text, p_col text, p_value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the INSERT of one part's ledger row, with one more column (token, or finished_at) given as SQL */
SELECT format('INSERT INTO %s (%sscriptid, part, %s) VALUES (%s%s, %s, %s)', admmgt._parts_table(p_nsp),
              CASE WHEN p_nsp IS NOT NULL THEN 'schemaname, ' END, p_col,
              CASE WHEN p_nsp IS NOT NULL THEN quote_literal(p_nsp) || ', ' END, p_scriptid, p_part, p_value);
$$;

CREATE OR REPLACE FUNCTION admmgt._ledger_part_insert(p_scriptid int, p_part int, p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the ledger row of a transactional part, written in the part's own transaction; its primary key refuses a second run */
SELECT admmgt._parts_insert(p_scriptid, p_part, p_nsp, 'finished_at', 'now()');
$$;

CREATE OR REPLACE FUNCTION admmgt._part_finish_sql(p_scriptid int, p_part int, p_nsp text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statement that marks a part finished in the ledger */
SELECT format('UPDATE %s SET finished_at = pg_catalog.now() WHERE %s', admmgt._parts_table(p_nsp), admmgt._parts_key(p_scriptid, p_part, p_nsp));
$$;

CREATE OR REPLACE FUNCTION admmgt._part_begin_sql(p_part admmgt.script_parts, p_known admmgt.part_attempts, p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the DO block that opens a part outside a transaction on a target: a new part is marked started; a finished one is left alone; one started before and not finished is retried when it is a typed index build (what is left to build is read from the catalog), when it is a SQL step's index build that the catalog shows unfinished (after its INVALID leftover is dropped), or when the earlier attempt is known to have failed; it is marked finished when it is known to have run, and refused otherwise */
SELECT 'DO ' || admmgt._dollar_quote(format($f$
DECLARE
    v_token text;
    v_started timestamptz;
    v_finished timestamptz;
    v_valid boolean;
    v_known boolean;
    v_new text := pg_catalog.md5(pg_catalog.clock_timestamp()::text || pg_catalog.pg_backend_pid()::text);
BEGIN
    SELECT token, started_at, finished_at INTO v_token, v_started, v_finished FROM %8$s WHERE %9$s;
    IF NOT FOUND THEN
        %10$s;
        RETURN;
    END IF;
    IF v_finished IS NOT NULL THEN
        RETURN;
    END IF;
    IF %7$L::boolean THEN
        NULL;  -- a typed index build: the part's own query reads what is left to build
    ELSIF %3$L IS NOT NULL THEN
        -- A SQL step's index build: the catalog tells whether it finished.
        SELECT i.indisvalid INTO v_valid
          FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %3$L AND c.relname = %4$L;
        IF v_valid THEN
            UPDATE %8$s SET finished_at = pg_catalog.now() WHERE %9$s;
            RETURN;
        END IF;
        IF v_valid IS NOT NULL THEN
            EXECUTE pg_catalog.format('DROP INDEX %%I.%%I', %3$L, %4$L);
        END IF;
    ELSE
        -- What the admin side knows is of this attempt (the same token), or was said by hand
        -- (resolve_part leaves no token: it speaks of whatever attempt the target recorded).
        v_known := coalesce(v_token = %5$L OR %5$L = '', false);
        IF v_known AND %6$L = 'ran' THEN
            UPDATE %8$s SET finished_at = pg_catalog.now() WHERE %9$s;
            RETURN;
        ELSIF NOT v_known OR %6$L IS DISTINCT FROM 'failed' THEN
            RAISE EXCEPTION 'admmgt: part %2$s of script %1$s was started (at %%) and admmgt cannot tell whether it finished', v_started
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = pg_catalog.format('Check the target, then CALL admmgt.resolve_part(%%L, %1$s, %2$s, true) if it ran or false to run it again.',
                                               %11$s);
        END IF;
    END IF;
    UPDATE %8$s SET token = v_new, started_at = pg_catalog.now() WHERE %9$s;
END
$f$, p_part.scriptid, p_part.part, p_part.index_def ->> 'schema', p_part.index_def ->> 'name', p_known.token, p_known.state,
     p_part.index_def ? 'tail', admmgt._parts_table(p_nsp), admmgt._parts_key(p_part.scriptid, p_part.part, p_nsp),
     admmgt._parts_insert(p_part.scriptid, p_part.part, p_nsp, 'token', 'v_new'),
     coalesce(quote_literal(p_nsp), 'pg_catalog.current_database()')), 'admmgt');
$$;

CREATE OR REPLACE FUNCTION admmgt._index_suffix(p_def jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what the index of a partition is named after: the partition's name (cut to 50 bytes) and this, from the index's name */
SELECT '_' || substr(md5(p_def ->> 'name'), 1, 8);
$$;

CREATE OR REPLACE FUNCTION admmgt._index_begin_sql(p_part admmgt.script_parts, p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: on a partitioned table with partitions, the index on the parent only (instant, invalid until every partition's index is attached); refuses partitions that are partitioned themselves */
SELECT 'DO ' || admmgt._dollar_quote(format($f$
DECLARE
    v_table oid := pg_catalog.to_regclass(%1$L);
BEGIN
    IF v_table IS NULL OR NOT EXISTS (SELECT 1 FROM %4$s WHERE %5$s AND finished_at IS NULL)
       OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = v_table) <> 'p'
       OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhparent = v_table) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid
                WHERE h.inhparent = v_table AND c.relkind = 'p') THEN
        RAISE EXCEPTION 'admmgt: %1$s has partitions that are partitioned themselves: its index %2$s cannot be built partition by partition'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Build it with concurrent = 0, or write the statements as SQL steps.';
    END IF;
    EXECUTE %3$L;
END
$f$, format('%I.%I', p_part.index_def ->> 'schema', p_part.index_def ->> 'table'), p_part.index_def ->> 'name',
     regexp_replace(admmgt._index_create(p_part.index_def, false, true), '^CREATE (UNIQUE )?INDEX ', 'CREATE \1INDEX IF NOT EXISTS '),
     admmgt._parts_table(p_nsp), admmgt._parts_key(p_part.scriptid, p_part.part, p_nsp)), 'admmgt');
$$;

CREATE OR REPLACE FUNCTION admmgt._index_todo_sql(p_part admmgt.script_parts, p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the query that lists, as a text[], the statements a target still has to run one by one for an index part: on a plain table the index; on a partitioned one the index of every partition not attached yet; each CONCURRENTLY, after dropping an INVALID leftover of a failed build */
SELECT format($f$
WITH open AS (SELECT 1 FROM %1$s WHERE %2$s AND finished_at IS NULL),
t AS (SELECT c.oid, c.relkind FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(%3$L)),
root AS (SELECT i.indexrelid AS oid, i.indisvalid FROM pg_catalog.pg_index i WHERE i.indexrelid = pg_catalog.to_regclass(%4$L)),
todo AS (
    SELECT ''::text AS ord, n.nspname AS nsp, c.relname AS rel, %5$L::text AS idx
      FROM t JOIN pg_catalog.pg_class c ON c.oid = t.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE (t.relkind = 'r' OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhparent = t.oid))
       AND NOT coalesce((SELECT r.indisvalid FROM root r), false)
    UNION ALL
    SELECT c.relname, n.nspname, c.relname, pg_catalog.left(c.relname, 50) || %6$L
      FROM t JOIN pg_catalog.pg_inherits h ON h.inhparent = t.oid JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE t.relkind = 'p' AND c.relkind = 'r'
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index x JOIN pg_catalog.pg_inherits hi ON hi.inhrelid = x.indexrelid
                        WHERE x.indrelid = c.oid AND hi.inhparent = (SELECT r.oid FROM root r))
), state AS (
    SELECT d.*, (SELECT i.indisvalid FROM pg_catalog.pg_index i
                  WHERE i.indexrelid = pg_catalog.to_regclass(pg_catalog.quote_ident(d.nsp) || '.' || pg_catalog.quote_ident(d.idx))) AS valid
      FROM todo d
)
SELECT coalesce(pg_catalog.array_agg(x.stmt ORDER BY x.ord, x.k), '{}')::text
  FROM state s CROSS JOIN LATERAL (VALUES
       (s.ord, 1, CASE WHEN NOT s.valid THEN pg_catalog.format('DROP INDEX CONCURRENTLY IF EXISTS %%I.%%I', s.nsp, s.idx) END),
       (s.ord, 2, CASE WHEN s.valid IS NOT TRUE THEN pg_catalog.format('CREATE %7$sINDEX CONCURRENTLY IF NOT EXISTS %%I ON %%I.%%I', s.idx, s.nsp, s.rel) || %8$L END)
  ) AS x(ord, k, stmt)
 WHERE x.stmt IS NOT NULL AND EXISTS (SELECT 1 FROM open)$f$,
    admmgt._parts_table(p_nsp), admmgt._parts_key(p_part.scriptid, p_part.part, p_nsp),
    format('%I.%I', p_part.index_def ->> 'schema', p_part.index_def ->> 'table'),
    format('%I.%I', p_part.index_def ->> 'schema', p_part.index_def ->> 'name'), p_part.index_def ->> 'name',
    admmgt._index_suffix(p_part.index_def), CASE WHEN (p_part.index_def ->> 'unique')::boolean THEN 'UNIQUE ' ELSE '' END,
    p_part.index_def ->> 'tail');
$$;

CREATE OR REPLACE FUNCTION admmgt._index_finish_sql(p_part admmgt.script_parts, p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the DO block that ends an index part: every partition's index attached to the parent's, the index valid, the part marked finished */
SELECT 'DO ' || admmgt._dollar_quote(format($f$
DECLARE
    v_table oid := pg_catalog.to_regclass(%1$L);
    v_index oid := pg_catalog.to_regclass(%2$L);
    r record;
BEGIN
    FOR r IN SELECT n.nspname, c.relname FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE h.inhparent = v_table AND c.relkind = 'r'
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index x JOIN pg_catalog.pg_inherits hi ON hi.inhrelid = x.indexrelid
                                 WHERE x.indrelid = c.oid AND hi.inhparent = v_index)
              ORDER BY c.relname LOOP
        EXECUTE pg_catalog.format('ALTER INDEX %%s ATTACH PARTITION %%I.%%I', v_index::regclass, r.nspname, pg_catalog.left(r.relname, 50) || %3$L);
    END LOOP;
    IF NOT coalesce((SELECT i.indisvalid FROM pg_catalog.pg_index i WHERE i.indexrelid = v_index), false) THEN
        RAISE EXCEPTION 'admmgt: index %2$s is not valid after its build' USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Run applyScripts() again: what is missing is built then.';
    END IF;
    %4$s;
END
$f$, format('%I.%I', p_part.index_def ->> 'schema', p_part.index_def ->> 'table'),
     format('%I.%I', p_part.index_def ->> 'schema', p_part.index_def ->> 'name'), admmgt._index_suffix(p_part.index_def),
     admmgt._part_finish_sql(p_part.scriptid, p_part.part, p_nsp)), 'admmgt');
$$;

CREATE OR REPLACE FUNCTION admmgt._part_state_sql(p_part admmgt.script_parts, p_nsp text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what the opening of a part outside a transaction returns: done, or run:<token of this attempt> */
SELECT format('SELECT CASE WHEN finished_at IS NULL THEN ''run:'' || token ELSE ''done'' END FROM %s WHERE %s',
              admmgt._parts_table(p_nsp), admmgt._parts_key(p_part.scriptid, p_part.part, p_nsp));
$$;

CREATE OR REPLACE FUNCTION admmgt._script_items(p_target admmgt.targets, p_parts admmgt.script_parts[], p_scriptid int)
RETURNS admmgt.work_item[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the work items of one script for one target: one batch for a script of one transactional part; else per part its batch (a part outside a transaction: open, run, finish; an index: open and list what is left to build, which the run loop sends one statement at a time, then attach and finish), then the script's own ledger row. A schema target's ledger is made with its schema (create_schema), not in each batch */
DECLARE
    v_items admmgt.work_item[] := '{}'::admmgt.work_item[];
    v_p admmgt.script_parts;
    v_known admmgt.part_attempts;
    v_n int := coalesce(cardinality(p_parts), 0);
    v_nsp text := p_target.nsp;
    v_ledger text[];
BEGIN
    IF v_n = 0 OR (v_n = 1 AND p_parts[1].txmode = 'script') THEN
        v_ledger := CASE WHEN v_nsp IS NULL THEN admmgt._ledger_tables(false) ELSE '{}' END || admmgt._ledger_insert(p_scriptid, v_nsp);
        RETURN ARRAY[admmgt._target_item('script', p_target, p_scriptid, v_ledger || coalesce(p_parts[1].stmts, '{}'), true, 1, NULL,
                                         array_fill(NULL::text, ARRAY[cardinality(v_ledger)]) || coalesce(p_parts[1].sources, '{}'))];
    END IF;
    v_ledger := CASE WHEN v_nsp IS NULL THEN admmgt._ledger_tables(true) ELSE '{}' END;
    FOREACH v_p IN ARRAY p_parts LOOP
        IF v_p.txmode = 'script' THEN
            v_items := v_items || admmgt._target_item('script', p_target, p_scriptid,
                                                      v_ledger || admmgt._ledger_part_insert(p_scriptid, v_p.part, v_nsp) || v_p.stmts, true, v_p.part, 'part',
                                                      array_fill(NULL::text, ARRAY[cardinality(v_ledger) + 1]) || v_p.sources);
            CONTINUE;
        END IF;
        SELECT * INTO v_known FROM admmgt.part_attempts a
         WHERE a.target_id = p_target.id AND a.scriptid = p_scriptid AND a.part = v_p.part;
        IF v_p.index_def ? 'tail' THEN
            -- What is left to build is read on the target: its partitions are its own.
            v_items := v_items
                || admmgt._target_item('script', p_target, p_scriptid,
                                       v_ledger || admmgt._part_begin_sql(v_p, v_known, v_nsp) || admmgt._index_begin_sql(v_p, v_nsp)
                                       || admmgt._part_state_sql(v_p, v_nsp) || admmgt._index_todo_sql(v_p, v_nsp), true, v_p.part, 'build',
                                       array_fill(NULL::text, ARRAY[cardinality(v_ledger) + 1]) || v_p.sources || ARRAY[NULL, NULL]::text[])
                || admmgt._target_item('script', p_target, p_scriptid, ARRAY[admmgt._index_finish_sql(v_p, v_nsp)], true, v_p.part, 'finish', v_p.sources);
            CONTINUE;
        END IF;
        v_items := v_items
            || admmgt._target_item('script', p_target, p_scriptid,
                                   v_ledger || admmgt._part_begin_sql(v_p, v_known, v_nsp) || admmgt._part_state_sql(v_p, v_nsp), true, v_p.part, 'begin')
            || admmgt._target_item('script', p_target, p_scriptid, v_p.stmts, false, v_p.part, 'run', v_p.sources)
            || admmgt._target_item('script', p_target, p_scriptid, ARRAY[admmgt._part_finish_sql(p_scriptid, v_p.part, v_nsp)], true, v_p.part, 'finish');
    END LOOP;
    RETURN v_items || admmgt._target_item('script', p_target, p_scriptid, v_ledger || admmgt._ledger_insert(p_scriptid, v_nsp), true, v_n + 1, 'end');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.script_batch(p_scriptid int, p_asof date DEFAULT current_date)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what one target runs for a script of one transactional part, in one transaction: the ledger first, then the script */
DECLARE
    v_parts admmgt.script_parts[] := ARRAY(SELECT p FROM admmgt._script_parts(p_scriptid, p_asof) p);
BEGIN
    PERFORM admmgt._finite_date(p_asof, 'p_asof');
    IF cardinality(v_parts) > 1 OR v_parts[1].txmode <> 'script' THEN
        RAISE EXCEPTION 'admmgt: script % runs in % parts, not as one batch', p_scriptid, cardinality(v_parts)
            USING ERRCODE = 'feature_not_supported', HINT = 'SELECT * FROM admmgt.plan_scripts() shows every part.';
    END IF;
    RETURN admmgt._ledger_tables(false) || admmgt._ledger_insert(p_scriptid) || coalesce(v_parts[1].stmts, '{}');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._parts_in_admin_db(p_parts admmgt.script_parts[])
RETURNS admmgt.script_parts[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the parts a schema target of the admin database runs: a typed index built outside a transaction is built inside one instead (CREATE INDEX without CONCURRENTLY, which holds writes to its table while it builds) */
SELECT coalesce(array_agg(CASE WHEN p.txmode = 'none' AND p.index_def ? 'tail'
                               THEN ROW(p.scriptid, p.part, 'script', ARRAY[admmgt._index_create(p.index_def, false)], p.sources, NULL::jsonb,
                                        p.destructive)::admmgt.script_parts
                               ELSE p END ORDER BY p.part), '{}')
  FROM unnest(p_parts) AS p;
$$;
