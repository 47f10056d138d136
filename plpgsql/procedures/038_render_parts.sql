-- Render layer, part 8: a script as parts, and the tenant-side ledger that makes every part
-- exactly-once. A script whose steps all run in its transaction is one part, sent as one batch as
-- it always was. A step with txmode none is a part of its own, run alone outside any transaction;
-- a step with txmode alone starts a new transactional part. The target's ledger records each
-- part, so a rerun resumes at the first part that did not finish, and the script itself
-- (admmgt.applied_scripts, which moves the version) only once every part is done.

CREATE OR REPLACE FUNCTION admmgt._render_parts(p_scriptid int, p_asof date)
RETURNS SETOF admmgt.script_parts
LANGUAGE sql STABLE
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
       -- A SQL step's CREATE INDEX CONCURRENTLY names its index too.
       coalesce(max(p.index_schema), CASE WHEN bool_or(p.txmode = 'none') THEN (admmgt._sql_concurrent_index(min(p.stmt)))[1] END),
       coalesce(max(p.index_name), CASE WHEN bool_or(p.txmode = 'none') THEN (admmgt._sql_concurrent_index(min(p.stmt)))[2] END),
       array_agg(coalesce(p.destructive, false) ORDER BY p.seq)
  FROM p GROUP BY p.part ORDER BY p.part;
$$;

CREATE OR REPLACE FUNCTION admmgt._script_parts(p_scriptid int, p_asof date)
RETURNS SETOF admmgt.script_parts
LANGUAGE sql STABLE
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

CREATE OR REPLACE FUNCTION admmgt._ledger_insert(p_scriptid int)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the tenant-side ledger row of a script; its primary key refuses a second apply */
SELECT format('INSERT INTO admmgt.applied_scripts (scriptid) VALUES (%s)', p_scriptid);
$$;

CREATE OR REPLACE FUNCTION admmgt._ledger_part_insert(p_scriptid int, p_part int)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the ledger row of a transactional part, written in the part's own transaction; its primary key refuses a second run */
SELECT format('INSERT INTO admmgt.applied_parts (scriptid, part, finished_at) VALUES (%s, %s, now())', p_scriptid, p_part);
$$;

CREATE OR REPLACE FUNCTION admmgt._part_begin_sql(p_part admmgt.script_parts, p_known admmgt.part_attempts)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the DO block that opens a part outside a transaction on a target: a new part is marked started; a finished one is left alone; one started before and not finished is retried when the earlier attempt is known to have failed (an index build: when the catalog shows it did not finish, after its INVALID leftover is dropped), marked finished when it is known to have run, and refused otherwise */
SELECT 'DO ' || admmgt._dollar_quote(format($f$
DECLARE
    v_token text;
    v_started timestamptz;
    v_finished timestamptz;
    v_valid boolean;
    v_known boolean;
    v_new text := pg_catalog.md5(pg_catalog.clock_timestamp()::text || pg_catalog.pg_backend_pid()::text);
BEGIN
    SELECT token, started_at, finished_at INTO v_token, v_started, v_finished FROM admmgt.applied_parts WHERE scriptid = %1$s AND part = %2$s;
    IF NOT FOUND THEN
        INSERT INTO admmgt.applied_parts (scriptid, part, token) VALUES (%1$s, %2$s, v_new);
        RETURN;
    END IF;
    IF v_finished IS NOT NULL THEN
        RETURN;
    END IF;
    IF %3$L IS NOT NULL THEN
        -- An index build: the catalog tells whether it finished.
        SELECT i.indisvalid INTO v_valid
          FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %3$L AND c.relname = %4$L;
        IF v_valid THEN
            UPDATE admmgt.applied_parts SET finished_at = pg_catalog.now() WHERE scriptid = %1$s AND part = %2$s;
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
            UPDATE admmgt.applied_parts SET finished_at = pg_catalog.now() WHERE scriptid = %1$s AND part = %2$s;
            RETURN;
        ELSIF NOT v_known OR %6$L IS DISTINCT FROM 'failed' THEN
            RAISE EXCEPTION 'admmgt: part %2$s of script %1$s was started (at %%) and admmgt cannot tell whether it finished', v_started
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = pg_catalog.format('Check the target, then CALL admmgt.resolve_part(%%L, %1$s, %2$s, true) if it ran or false to run it again.',
                                               pg_catalog.current_database());
        END IF;
    END IF;
    UPDATE admmgt.applied_parts SET token = v_new, started_at = pg_catalog.now() WHERE scriptid = %1$s AND part = %2$s;
END
$f$, p_part.scriptid, p_part.part, p_part.index_schema, p_part.index_name, p_known.token, p_known.state), 'admmgt');
$$;

CREATE OR REPLACE FUNCTION admmgt._part_state_sql(p_part admmgt.script_parts)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what the opening of a part outside a transaction returns: done, or run:<token of this attempt> */
SELECT format('SELECT CASE WHEN finished_at IS NULL THEN ''run:'' || token ELSE ''done'' END FROM admmgt.applied_parts WHERE scriptid = %s AND part = %s',
              p_part.scriptid, p_part.part);
$$;

CREATE OR REPLACE FUNCTION admmgt._script_items(p_target admmgt.targets, p_parts admmgt.script_parts[], p_scriptid int)
RETURNS admmgt.work_item[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the work items of one script for one target: one batch for a script of one transactional part; else per part its batch (a part outside a transaction: open, run, finish), then the script's own ledger row */
DECLARE
    v_items admmgt.work_item[] := '{}';
    v_p admmgt.script_parts;
    v_known admmgt.part_attempts;
    v_n int := coalesce(cardinality(p_parts), 0);
    v_ledger text[];
BEGIN
    IF v_n = 0 OR (v_n = 1 AND p_parts[1].txmode = 'script') THEN
        v_ledger := admmgt._ledger_tables(false) || admmgt._ledger_insert(p_scriptid);
        RETURN ARRAY[admmgt._item('script', p_target.id, p_target.dbname, p_target.server, p_target.dbname, p_scriptid,
                                  v_ledger || coalesce(p_parts[1].stmts, '{}'), true, 1, NULL,
                                  array_fill(NULL::text, ARRAY[cardinality(v_ledger)]) || coalesce(p_parts[1].sources, '{}'))];
    END IF;
    v_ledger := admmgt._ledger_tables(true);
    FOREACH v_p IN ARRAY p_parts LOOP
        IF v_p.txmode = 'script' THEN
            v_items := v_items || admmgt._item('script', p_target.id, p_target.dbname, p_target.server, p_target.dbname, p_scriptid,
                                               v_ledger || admmgt._ledger_part_insert(p_scriptid, v_p.part) || v_p.stmts, true, v_p.part, 'part',
                                               array_fill(NULL::text, ARRAY[cardinality(v_ledger) + 1]) || v_p.sources);
            CONTINUE;
        END IF;
        SELECT * INTO v_known FROM admmgt.part_attempts a
         WHERE a.target_id = p_target.id AND a.scriptid = p_scriptid AND a.part = v_p.part;
        v_items := v_items
            || admmgt._item('script', p_target.id, p_target.dbname, p_target.server, p_target.dbname, p_scriptid,
                            v_ledger || admmgt._part_begin_sql(v_p, v_known) || admmgt._part_state_sql(v_p), true, v_p.part, 'begin')
            || admmgt._item('script', p_target.id, p_target.dbname, p_target.server, p_target.dbname, p_scriptid,
                            v_p.stmts, false, v_p.part, 'run', v_p.sources)
            || admmgt._item('script', p_target.id, p_target.dbname, p_target.server, p_target.dbname, p_scriptid,
                            ARRAY[format('UPDATE admmgt.applied_parts SET finished_at = now() WHERE scriptid = %s AND part = %s',
                                         p_scriptid, v_p.part)], true, v_p.part, 'finish');
    END LOOP;
    RETURN v_items || admmgt._item('script', p_target.id, p_target.dbname, p_target.server, p_target.dbname, p_scriptid,
                                   v_ledger || admmgt._ledger_insert(p_scriptid), true, v_n + 1, 'end');
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
