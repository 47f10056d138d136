-- CALL admmgt.applyScripts();

CREATE OR REPLACE FUNCTION admmgt._ready_scripts(p_version int)
RETURNS int[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the ready scripts the template does not have yet, in id order, up to the first one that is not ready; refuses a ready script added below the template's version */
DECLARE
    v_ids int[] := '{}'::int[];
    v_s admmgt.scripts;
    v_late int;
BEGIN
    -- A ready script at or below the template's version that the template never ran was added out of
    -- order: the template would never get it, and the status update of a run would mark it applied.
    SELECT min(s.id) INTO v_late
      FROM admmgt.scripts s
     WHERE s.status = 1 AND s.id <= p_version
       AND NOT EXISTS (SELECT 1 FROM admmgt.target_results r JOIN admmgt.vendor_db_settings v ON v.id = r.target_id
                        WHERE r.operation = 'apply' AND r.scriptid = s.id AND r.ok AND v.istemplate);
    IF v_late IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: % is ready, but the template is already at version % and never ran it', admmgt._row('scripts', v_late), p_version
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Scripts run in id order: give it an id above %s, or set its status to 2 if the template already has it.', p_version);
    END IF;
    FOR v_s IN SELECT * FROM admmgt.scripts WHERE id > p_version ORDER BY id LOOP
        IF v_s.status <> 1 THEN
            IF EXISTS (SELECT 1 FROM admmgt.scripts WHERE id > v_s.id AND status = 1) THEN
                RAISE NOTICE 'admmgt apply: script % has status % (%), so the ready scripts after it wait', v_s.id, v_s.status,
                             CASE v_s.status WHEN 0 THEN 'designing' WHEN 3 THEN 'failed' ELSE 'applied' END;
            END IF;
            EXIT;
        END IF;
        v_ids := v_ids || v_s.id;
    END LOOP;
    RETURN v_ids;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._apply_items(p_targets admmgt.targets[], p_upto int, p_asof date)
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: for each of the given targets, every script up to p_upto (or its pin) that it lacks, in order (copies of the template before tenants), as work items; each script's parts read (frozen) or rendered once */
WITH targets AS (
    -- A pinned tenant goes up to its pin and no further.
    SELECT u AS t, u.id, u.version, u.servertemplate, least(p_upto, coalesce(u.pinned_version, p_upto)) AS upto
      FROM unnest(p_targets) AS u WHERE u.version < least(p_upto, coalesce(u.pinned_version, p_upto))
), blocked AS (
    -- A script a lagging target still needs that is no longer ready (set back to 0 to be edited,
    -- or failed) stops that target there: no script is ever skipped.
    SELECT min(x.id) AS id FROM admmgt.scripts x
     WHERE x.id <= p_upto AND x.status NOT IN (1, 2) AND x.id > (SELECT min(t.version) FROM targets t)
), rendered AS MATERIALIZED (
    SELECT s.id, ARRAY(SELECT p FROM admmgt._script_parts(s.id, p_asof) p) AS parts
      FROM admmgt.scripts s
     WHERE s.id <= p_upto AND s.status IN (1, 2) AND s.id > (SELECT min(t.version) FROM targets t)
       AND s.id < coalesce((SELECT b.id FROM blocked b), p_upto + 1)
), batches AS MATERIALIZED (
    -- Schema targets share one form of each script that names no schema of its own (029).
    SELECT r.id, r.parts,
           CASE WHEN EXISTS (SELECT 1 FROM targets t WHERE (t.t).nsp IS NOT NULL)
                THEN admmgt._parts_map(r.parts, admmgt._schema_template_name(), NULL) END AS tparts
      FROM rendered r
)
SELECT coalesce(array_agg(i.items[g.n] ORDER BY t.servertemplate DESC, t.id, b.id, g.n), '{}')
  FROM targets t JOIN batches b ON b.id > t.version AND b.id <= t.upto
 CROSS JOIN LATERAL (SELECT admmgt._script_items(t.t, CASE WHEN (t.t).nsp IS NULL THEN b.parts
                                                      WHEN admmgt._in_admin_db(t.t) THEN admmgt._parts_in_admin_db(admmgt._parts_map(b.tparts, NULL, (t.t).nsp))
                                                      ELSE admmgt._parts_map(b.tparts, NULL, (t.t).nsp) END,
                                                 b.id) AS items) i
 CROSS JOIN LATERAL generate_subscripts(i.items, 1) AS g(n);
$$;

CREATE OR REPLACE FUNCTION admmgt._failed_source(p_item admmgt.work_item, p_state admmgt.exec_result)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the script row the statement a batch stopped at comes from, if it is one of the script's own */
SELECT p_item.sources[p_state.failed_index - cardinality(admmgt._batch_prefix(p_item.atomic))];
$$;

CREATE OR REPLACE FUNCTION admmgt._named_failure(p_booking admmgt.booking, p_item admmgt.work_item, p_state admmgt.exec_result)
RETURNS admmgt.booking
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a failed statement's message prefixed with the script row it comes from (not for a lost connection, which is no row's fault) */
DECLARE
    b admmgt.booking := p_booking;
    v_source text;
BEGIN
    IF b.ok OR p_state.broken THEN
        RETURN b;
    END IF;
    v_source := admmgt._failed_source(p_item, p_state);
    IF v_source IS NOT NULL THEN
        b.message := format('%s: %s', v_source, b.message);
    END IF;
    RETURN b;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._part_attempt_hook(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: what the admin side keeps of a part outside a transaction: its opening's token (or that it was done before: the rest of the part is skipped), whether its statement ran or failed (a lost connection leaves it unknown), and nothing once it is finished */
DECLARE
    b admmgt.booking := p_booking;
    -- Results come one per statement sent, the executor's own before the item's.
    v_last int := cardinality(admmgt._batch_prefix(p_item.atomic)) + cardinality(p_item.stmts);
    v_out text := p_state.outputs[v_last];
BEGIN
    IF p_item.step = 'build' AND b.ok THEN
        -- An index part: its state comes before the list of what is left to build.
        b.expand := v_out::text[];
        v_out := p_state.outputs[v_last - 1];
    END IF;
    IF p_item.step IN ('begin', 'build') AND b.ok AND v_out = 'done' THEN
        DELETE FROM admmgt.part_attempts WHERE target_id = p_item.target_id AND scriptid = p_item.scriptid AND part = p_item.part;
        b.outcome := 'already applied';
        b.skip_part := true;
        b.lines := ARRAY[format('part %s of script %s: finished before', p_item.part, p_item.scriptid)];
    ELSIF p_item.step IN ('begin', 'build') AND b.ok THEN
        INSERT INTO admmgt.part_attempts AS a (target_id, scriptid, part, token, state, run_id)
        SELECT p_item.target_id, p_item.scriptid, p_item.part, substr(v_out, 5), 'started', r.run_id
          FROM (SELECT max(run_id) AS run_id FROM admmgt.runs WHERE pid = pg_backend_pid() AND finished_at IS NULL) r
        ON CONFLICT (target_id, scriptid, part) DO UPDATE
           SET token = EXCLUDED.token, state = 'started', run_id = EXCLUDED.run_id, updated_at = now();
        b.lines := ARRAY[format('part %s of script %s: started, outside a transaction', p_item.part, p_item.scriptid)];
    ELSIF p_item.step = 'run' AND (b.ok OR NOT p_state.broken) THEN
        UPDATE admmgt.part_attempts SET state = CASE WHEN b.ok THEN 'ran' ELSE 'failed' END, updated_at = now()
         WHERE target_id = p_item.target_id AND scriptid = p_item.scriptid AND part = p_item.part;
    ELSIF p_item.step = 'finish' AND b.ok THEN
        DELETE FROM admmgt.part_attempts WHERE target_id = p_item.target_id AND scriptid = p_item.scriptid AND part = p_item.part;
        b.lines := ARRAY[format('part %s of script %s: finished', p_item.part, p_item.scriptid)];
    END IF;
    RETURN b;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_script(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a script item: its statements logged as one line; a target that committed the whole script (or its last part) moves to the script's version; a ledger row already there (the admin side lost track) counts as already applied; a statement of the script that fails on the template, or a batch that does not parse there, marks the script failed and names its row (a lost connection is retried next run) */
DECLARE
    b admmgt.booking := p_booking;
BEGIN
    b.scriptid := p_item.scriptid;
    IF NOT b.ok AND b.sqlstate = '23505'
       AND b.statement IN (admmgt._ledger_insert(p_item.scriptid, p_item.nsp), admmgt._ledger_part_insert(p_item.scriptid, p_item.part, p_item.nsp)) THEN
        b.ok := true;
        b.outcome := 'already applied';
        b.lines := ARRAY[b.statement];
    END IF;
    IF NOT b.ok AND NOT p_state.broken AND p_state.failed_index = 1 AND p_item.atomic THEN
        -- BEGIN cannot fail: the batch as a whole did not parse, so no statement ran. The script
        -- is at fault, not BEGIN.
        b.statement := format('script %s%s as a whole, which does not parse (no statement ran)', p_item.scriptid,
                              CASE WHEN p_item.step IS NOT NULL THEN format(' part %s', p_item.part) ELSE '' END);
        b.lines := ARRAY[b.statement];
    END IF;
    b := admmgt._named_failure(b, p_item, p_state);
    IF p_item.step IN ('begin', 'build', 'run', 'finish') THEN
        b := admmgt._part_attempt_hook(p_item, p_state, b);
    END IF;
    IF b.ok AND b.outcome = 'ok' AND cardinality(b.lines) > 1 THEN
        -- One log row per target and item: the statements it ran, in order, as one text.
        b.lines := ARRAY[array_to_string(b.lines, E';\n')];
    END IF;
    IF b.ok AND (p_item.step IS NULL OR p_item.step = 'end') THEN
        -- _record moves vendor_db_settings.scriptversion in the statement that logs the item.
        b.version := p_item.scriptid;
    ELSIF NOT b.ok AND NOT p_state.broken
          AND (admmgt._failed_source(p_item, p_state) IS NOT NULL OR b.statement LIKE 'script % as a whole, %')
          AND EXISTS (SELECT 1 FROM admmgt.vendor_db_settings v WHERE v.id = p_item.target_id AND v.istemplate) THEN
        UPDATE admmgt.scripts SET status = 3, last_error = format('%s (SQLSTATE %s) at: %s', b.message, b.sqlstate, b.statement)
         WHERE id = p_item.scriptid;
        -- Its rows may be fixed now, unless the template committed a part of it already: changed
        -- parts would make a rerun there repeat or skip some.
        IF NOT admmgt._template_started(p_item.scriptid) THEN
            PERFORM admmgt._unfreeze(p_item.scriptid);
        END IF;
    END IF;
    RETURN b;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._notice_blocked(p_version int)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: say which script holds lagging tenants back when one they need is not ready any more */
DECLARE
    v_s admmgt.scripts;
BEGIN
    SELECT * INTO v_s FROM admmgt.scripts x
     WHERE x.id <= p_version AND x.status NOT IN (1, 2)
       AND EXISTS (SELECT 1 FROM admmgt.update_targets u WHERE u.version < x.id)
     ORDER BY x.id LIMIT 1;
    IF FOUND THEN
        RAISE WARNING 'admmgt apply: script % has status % but tenants below it still need it: they stop before it', v_s.id, v_s.status
            USING HINT = 'Set it ready again (status 1) once its rows are right.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._plan_items(p_asof date, p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL,
                                              p_separatedb int DEFAULT NULL, p_upto int DEFAULT NULL)
RETURNS TABLE (ord int, item admmgt.work_item)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the work items applyScripts() would run now with the same options, each template's first, if the templates take every ready script (up to p_upto); a selection narrows the tenants as it does there */
DECLARE
    v_kind text;
    v_n int := 0;
    v_template admmgt.vendor_db_settings;
    v_ready int[];
    v_upto int;
BEGIN
    PERFORM admmgt._check_selection('plan', p_tenants, p_server, p_tag);
    PERFORM admmgt._check_apply_options(p_upto, NULL, NULL);
    FOREACH v_kind IN ARRAY admmgt._kinds(p_separatedb, 'plan') LOOP
        v_template := admmgt._template(v_kind);
        v_ready := ARRAY(SELECT r FROM unnest(admmgt._ready_scripts(v_template.scriptversion)) r WHERE r <= coalesce(p_upto, r));
        v_upto := least(admmgt._template_upto(v_template, v_ready), coalesce(p_upto, admmgt._template_upto(v_template, v_ready)));
        RETURN QUERY SELECT 2 * v_n, i FROM unnest(admmgt._apply_items(admmgt._template_targets(v_kind), v_upto, p_asof)) i;
        RETURN QUERY SELECT 2 * v_n + 1, i
                       FROM unnest(admmgt._apply_items(admmgt._select(admmgt._update_targets(v_kind), p_tenants, p_server, p_tag), v_upto, p_asof)) i;
        v_n := v_n + 1;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.plan_scripts(p_asof date DEFAULT current_date, p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL,
                                               p_tag text DEFAULT NULL, t_separatedb int DEFAULT NULL, p_upto int DEFAULT NULL)
RETURNS TABLE (dbname text, scriptid int, seq int, stmt text, server text)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what applyScripts() would run now with the same options, per target (database or schema, and server) and script, if the template takes every ready script; a script in parts shows each part's items in order */
SELECT (p.item).dbname, (p.item).scriptid, (row_number() OVER (PARTITION BY p.ord, (p.item).target_id, (p.item).scriptid ORDER BY p.n, s.n))::int,
       s.stmt, coalesce((p.item).server, 'local')
  FROM (SELECT x.ord, x.item, row_number() OVER () AS n FROM admmgt._plan_items(p_asof, p_tenants, p_server, p_tag, t_separatedb, p_upto) x) p
 CROSS JOIN LATERAL unnest((p.item).stmts) WITH ORDINALITY AS s(stmt, n)
 ORDER BY p.ord, (p.item).target_id, (p.item).scriptid, p.n, s.n;
$$;

CREATE OR REPLACE FUNCTION admmgt.plan_steps(p_asof date DEFAULT current_date, p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL,
                                             p_tag text DEFAULT NULL, t_separatedb int DEFAULT NULL, p_upto int DEFAULT NULL)
RETURNS TABLE (scriptid int, part int, txmode text, seq int, source text, destructive boolean, stmt text, targets int)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: every step of every script applyScripts() would run now with the same options, as the targets get it (frozen, or rendered now), with its part, transaction mode, row, whether it destroys data, and how many targets would run it */
WITH planned AS (
    SELECT (i.item).scriptid AS scriptid, count(DISTINCT (i.item).target_id)::int AS targets
      FROM admmgt._plan_items(p_asof, p_tenants, p_server, p_tag, t_separatedb, p_upto) i GROUP BY 1
)
SELECT p.scriptid, sp.part, sp.txmode, (row_number() OVER (PARTITION BY p.scriptid ORDER BY sp.part, st.n))::int,
       sp.sources[st.n], sp.destructive[st.n], st.stmt, p.targets
  FROM planned p
 CROSS JOIN LATERAL admmgt._script_parts(p.scriptid, p_asof) sp
 CROSS JOIN LATERAL unnest(sp.stmts) WITH ORDINALITY AS st(stmt, n)
 ORDER BY p.scriptid, sp.part, st.n;
$$;

CREATE OR REPLACE FUNCTION admmgt._destructive_relation(p_source text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the relation whose data a destructive step of a script row destroys, schema-qualified and quoted */
DECLARE
    v_m text[] := regexp_match(p_source, '^admmgt\.(script_column_changes|script_table_changes|script_views) id (\d+)');
    v_rel text;
BEGIN
    IF v_m IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT format(''%%I.%%I'', lower(schemaname), lower(%s)) FROM admmgt.%I WHERE id = $1',
                   CASE WHEN v_m[1] = 'script_views' THEN 'viewname' ELSE 'tablename' END, v_m[1])
       INTO v_rel USING v_m[2]::bigint;
    RETURN v_rel;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.plan_destructive(p_asof date DEFAULT current_date, p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL,
                                                   p_tag text DEFAULT NULL, t_separatedb int DEFAULT NULL, p_upto int DEFAULT NULL)
RETURNS TABLE (dbname text, server text, scriptid int, source text, stmt text, relation text, est_rows bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: for every step applyScripts() would run now with the same options that destroys data, each target that would run it, with the planner's estimate of the rows of the relation it drops from (a schema target's own; NULL: not analyzed yet, or not there); reads each such target once */
DECLARE
    v_t record;
    v_schema text := admmgt._schema_template_name();
BEGIN
    FOR v_t IN
        WITH d AS (SELECT s.scriptid, s.source, s.stmt, admmgt._destructive_relation(s.source) AS relation
                     FROM admmgt.plan_steps(p_asof, p_tenants, p_server, p_tag, t_separatedb, p_upto) s WHERE s.destructive)
        SELECT i.dbname AS db, i.conn_db, coalesce(i.server, 'local') AS srv,
               array_agg(d.scriptid ORDER BY d.scriptid, d.source) AS scriptids, array_agg(d.source ORDER BY d.scriptid, d.source) AS sources,
               array_agg(d.stmt ORDER BY d.scriptid, d.source) AS stmts,
               array_agg(CASE WHEN i.nsp IS NULL THEN d.relation
                              ELSE (admmgt._for_schema(ARRAY[admmgt._schema_template(d.relation, v_schema)], i.nsp))[1] END
                         ORDER BY d.scriptid, d.source) AS relations
          FROM (SELECT DISTINCT (x.item).dbname, (x.item).conn_db, (x.item).nsp, (x.item).server, (x.item).scriptid
                  FROM admmgt._plan_items(p_asof, p_tenants, p_server, p_tag, t_separatedb, p_upto) x) i
          JOIN d ON d.scriptid = i.scriptid
         GROUP BY 1, 2, 3 ORDER BY 3, 1
    LOOP
        RETURN QUERY
        SELECT v_t.db, v_t.srv, r.scriptid, r.source, r.stmt, r.relation, e.est
          FROM unnest(v_t.scriptids, v_t.sources, v_t.stmts, v_t.relations) AS r(scriptid, source, stmt, relation)
          LEFT JOIN dblink(admmgt._connstr(v_t.srv, v_t.conn_db),
                           format('SELECT r, CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END FROM unnest(%L::text[]) r
                                     LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(r)', v_t.relations))
                    AS e(relation text, est bigint) ON e.relation = r.relation;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._mark_applied(p_version int)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: give status 2 to every ready script up to p_version that the template and every tenant with updateflag have, as they recorded it: each ran it (an ok outcome), or was made from a copy that had it (baseversion); a scriptversion set by hand proves nothing; then to the rows of every applied script */
DECLARE
    v_table text;
BEGIN
    UPDATE admmgt.scripts s SET status = 2, applied_at = now(), last_error = NULL
     WHERE s.status = 1 AND s.id <= p_version
       AND NOT EXISTS (SELECT 1 FROM admmgt.targets t WHERE t.istemplate AND t.version < s.id)
       AND NOT EXISTS (SELECT 1 FROM admmgt.update_targets u JOIN admmgt.vendor_db_settings v ON v.id = u.id
                        WHERE u.version < s.id
                           OR (coalesce(v.baseversion, 0) < s.id
                               AND NOT EXISTS (SELECT 1 FROM admmgt.target_results r
                                                WHERE r.operation = 'apply' AND r.scriptid = s.id AND r.target_id = u.id AND r.ok)));
    FOREACH v_table IN ARRAY admmgt._script_row_tables() LOOP
        EXECUTE format('UPDATE admmgt.%I x SET status = 2 WHERE x.status IS DISTINCT FROM 2
                           AND x.scriptid IN (SELECT id FROM admmgt.scripts WHERE status = 2)', v_table);
    END LOOP;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.resolve_part(p_dbname text, p_scriptid int, p_part int, p_ran boolean)
LANGUAGE plpgsql
AS $$
/* purpose: say what happened to a part outside a transaction whose end admmgt did not see (the run was killed or the connection lost while it ran): true, it ran, and the next run marks it finished; false, it did not, and the next run runs it again */
DECLARE
    v_n int;
BEGIN
    IF p_ran IS NULL THEN
        RAISE EXCEPTION 'admmgt: resolve_part needs p_ran: true if the part ran, false if it did not'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM admmgt._script_parts(p_scriptid, current_date) p WHERE p.part = p_part AND p.txmode = 'none') THEN
        RAISE EXCEPTION 'admmgt: script % has no part % outside a transaction', p_scriptid, p_part
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT part, txmode, stmts FROM admmgt.script_parts WHERE scriptid = ... lists its parts.';
    END IF;
    -- No token: what is said here is of whatever attempt the target recorded last, which the
    -- admin side may never have seen (the run was killed before it booked the part's opening).
    INSERT INTO admmgt.part_attempts AS a (target_id, scriptid, part, token, state)
    SELECT t.id, p_scriptid, p_part, '', CASE WHEN p_ran THEN 'ran' ELSE 'failed' END
      FROM admmgt.targets t WHERE t.dbname = lower(btrim(p_dbname))
    ON CONFLICT (target_id, scriptid, part) DO UPDATE SET token = '', state = EXCLUDED.state, updated_at = now();
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n = 0 THEN
        RAISE EXCEPTION 'admmgt: % is not a target', p_dbname
            USING ERRCODE = 'no_data_found', HINT = 'SELECT dbname FROM admmgt.targets lists the targets.';
    END IF;
    RAISE NOTICE 'admmgt: part % of script % on % marked as %; the next applyScripts() goes on from there', p_part, p_scriptid, p_dbname,
                 CASE WHEN p_ran THEN 'ran' ELSE 'not run' END;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._failed_next(p_version int)
RETURNS admmgt.scripts
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the first script above the template's version, when it failed on the template: it holds every later script back */
SELECT s.* FROM admmgt.scripts s WHERE s.id > p_version ORDER BY s.id LIMIT 1;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_apply_options(p_upto int, p_max_failures int, p_canary int)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse apply options out of range, naming them */
BEGIN
    IF p_upto < 0 OR p_max_failures < 1 OR p_canary < 1 THEN
        RAISE EXCEPTION 'admmgt: applyScripts was given %', concat_ws(', ',
                CASE WHEN p_upto < 0 THEN format('p_upto => %s', p_upto) END,
                CASE WHEN p_max_failures < 1 THEN format('p_max_failures => %s', p_max_failures) END,
                CASE WHEN p_canary < 1 THEN format('p_canary => %s', p_canary) END)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'p_upto is a script id (0 or more); p_max_failures and p_canary count targets (1 or more).';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._items_of(p_items admmgt.work_item[], p_first int, p_canary boolean)
RETURNS admmgt.work_item[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the items of the first p_first targets of a list (p_canary), or of the others */
SELECT admmgt._without(p_items, ARRAY(SELECT u.id FROM unnest(admmgt._item_ids(p_items)) WITH ORDINALITY AS u(id, k)
                                        GROUP BY u.id ORDER BY min(u.k) LIMIT p_first), p_canary);
$$;

CREATE OR REPLACE PROCEDURE admmgt._run_tenants(p_items admmgt.work_item[], p_parallel int, p_run bigint,
                                                p_max_failures int, p_canary int, p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: apply the tenants' items: with p_canary, the first p_canary targets first, and the others only if none of them failed */
DECLARE
    v_failed int;
    v_rest admmgt.work_item[];
BEGIN
    IF p_canary IS NULL THEN
        CALL admmgt._run('apply', p_items, p_parallel, p_run, p_max_failures, p_workers);
        RETURN;
    END IF;
    SELECT coalesce(failed, 0) INTO v_failed FROM admmgt.runs WHERE run_id = p_run;
    CALL admmgt._run('apply', admmgt._items_of(p_items, p_canary, true), p_parallel, p_run, p_max_failures, p_workers);
    v_rest := admmgt._items_of(p_items, p_canary, false);
    IF (SELECT coalesce(failed, 0) FROM admmgt.runs WHERE run_id = p_run) > v_failed THEN
        RAISE WARNING 'admmgt apply: a canary target failed (p_canary => %): the other % target(s) are left untouched', p_canary,
                      (SELECT count(DISTINCT i.target_id) FROM unnest(v_rest) i)
            USING HINT = 'See SELECT * FROM admmgt.failures; fix the cause and run again.';
        RETURN;
    END IF;
    CALL admmgt._run('apply', v_rest, p_parallel, p_run, p_max_failures, p_workers);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._template_upto(p_template admmgt.vendor_db_settings, p_ready int[])
RETURNS int
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: how far a template goes in a run: the last ready script, or the scripts applied before it was made (a schema template registered after them) */
SELECT greatest(coalesce(p_ready[cardinality(p_ready)], 0), p_template.scriptversion,
                (SELECT coalesce(max(s.id), 0) FROM admmgt.scripts s WHERE s.status = 2
                    AND NOT EXISTS (SELECT 1 FROM admmgt.scripts g WHERE g.id < s.id AND g.status <> 2)));
$$;

CREATE OR REPLACE FUNCTION admmgt._ready_upto(p_template admmgt.vendor_db_settings, p_upto int, OUT ready int[], OUT upto int)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the ready scripts a template takes in a run (up to p_upto), and how far it goes */
SELECT r.ready, least(admmgt._template_upto(p_template, r.ready), coalesce(p_upto, admmgt._template_upto(p_template, r.ready)))
  FROM (SELECT ARRAY(SELECT x FROM unnest(admmgt._ready_scripts(p_template.scriptversion)) x WHERE x <= coalesce(p_upto, x)) AS ready) r;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_ready(p_kind text, p_upto int)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: before any target is touched, render every ready script of the template of a kind (up to p_upto): bad rows are refused here, and so are scripts a schema template cannot run; returns how far the template goes */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template(p_kind);
    v_goal record := admmgt._ready_upto(v_template, p_upto);
    v_upto int := v_goal.upto;
BEGIN
    PERFORM count(*) FROM unnest(v_goal.ready) AS s, LATERAL admmgt.render_script(s) AS r;
    IF p_kind = 'schema' THEN
        -- Every script the schema template is about to run, the ones applied before it existed too.
        PERFORM admmgt._check_schema_scripts(ARRAY(SELECT s.id FROM admmgt.scripts s
                                                    WHERE s.id > v_template.scriptversion AND s.id <= v_upto AND s.status IN (1, 2)), current_date);
    END IF;
    RETURN v_upto;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._template_apply_items(p_kind text, p_upto int)
RETURNS admmgt.work_item[]
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: under the lock, the items of the template of a kind: every ready script up to p_upto, frozen first, with the template's fingerprint at each version */
DECLARE
    -- Read again under the lock: another run may have moved the template meanwhile.
    v_upto int := (admmgt._ready_upto(admmgt._template(p_kind), p_upto)).upto;
    v_items admmgt.work_item[];
BEGIN
    -- What the template runs now is what every target gets later: freeze it first.
    PERFORM admmgt._freeze_scripts(v_upto, current_date);
    v_items := admmgt._apply_items(admmgt._template_targets(p_kind), v_upto, current_date);
    -- The template's fingerprint at each version it reaches, for detectDrift (170_drift.sql).
    v_items := admmgt._with_fingerprints(v_items);
    RETURN v_items;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._tenant_apply_items(p_kind text, p_tenants text[], p_server text, p_tag text, p_upto int)
RETURNS admmgt.work_item[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: once the template of a kind has run, the items of the chosen tenants (and copies) of that kind: each up to the template's version (or p_upto, or its pin); says which script holds lagging ones back */
DECLARE
    v_template admmgt.vendor_db_settings := admmgt._template(p_kind);
BEGIN
    PERFORM admmgt._notice_blocked(v_template.scriptversion);
    RETURN admmgt._apply_items(admmgt._select(admmgt._update_targets(p_kind), p_tenants, p_server, p_tag),
                               least(v_template.scriptversion, coalesce(p_upto, v_template.scriptversion)), current_date);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._apply_kind(p_kind text, p_parallel int, p_wait_seconds int, p_tenants text[], p_server text, p_tag text,
                                               p_upto int, p_max_failures int, p_canary int, INOUT p_failed int, p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: applyScripts() for the targets of one kind: the template of that kind first, alone, as the canary; then the chosen tenants of that kind; p_failed: the id of a script that had failed on a template before the run */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_items admmgt.work_item[];
    v_run bigint;
    v_error admmgt.error_state;
    v_chosen admmgt.targets[];
    v_upto int;
    v_next admmgt.scripts;
BEGIN
    v_upto := admmgt._check_ready(p_kind, p_upto);
    v_template := admmgt._template(p_kind);
    v_next := admmgt._failed_next(v_template.scriptversion);
    p_failed := coalesce(p_failed, CASE WHEN v_next.status = 3 THEN v_next.id END);
    v_chosen := admmgt._select(admmgt._update_targets(p_kind), p_tenants, p_server, p_tag);
    IF v_upto <= v_template.scriptversion
       AND cardinality(admmgt._apply_items(v_chosen, least(v_template.scriptversion, coalesce(p_upto, v_template.scriptversion)), current_date)) = 0 THEN
        IF p_failed IS NULL THEN
            RAISE NOTICE '%', format('admmgt apply: nothing to do; the %stemplate and every %stenant with updateflag are at version %s%s',
                                     CASE WHEN p_kind = 'schema' THEN 'schema ' ELSE '' END,
                                     CASE WHEN num_nonnulls(p_tenants, p_server, p_tag) > 0 THEN 'chosen ' ELSE '' END, v_template.scriptversion,
                                     CASE WHEN p_upto IS NOT NULL THEN format(' (or at %s, p_upto)', p_upto) ELSE '' END);
        END IF;
        RETURN;
    END IF;

    CALL admmgt._begin_call('apply', 'applyScripts', p_wait_seconds, v_run);
    BEGIN
        v_items := admmgt._template_apply_items(p_kind, p_upto);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('apply', v_run, v_error);
    CALL admmgt._run('apply', v_items, 1, v_run);

    BEGIN
        v_template := admmgt._template(p_kind);
        v_items := admmgt._tenant_apply_items(p_kind, p_tenants, p_server, p_tag, p_upto);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('apply', v_run, v_error);
    CALL admmgt._run_tenants(v_items, p_parallel, v_run, p_max_failures, p_canary, p_workers);

    PERFORM admmgt._mark_applied(v_template.scriptversion);
    CALL admmgt._end_call('apply', v_run);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.applyscripts(t_separatedb int DEFAULT NULL, p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                                p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL,
                                                p_upto int DEFAULT NULL, p_max_failures int DEFAULT NULL, p_canary int DEFAULT NULL,
                                                p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: apply ready scripts in id order (up to p_upto) to the targets of one kind (t_separatedb 1: databases, 0: schemas) or of every kind: per kind the template first, alone, as the canary; then the chosen tenants with updateflag (and the template's copies) below the template's version, each up to its pin; p_canary tenants before the rest, which wait for them; a run stops starting targets after p_max_failures failed; ends with an error while a script that failed on the template before the run holds the fleet back; p_workers: the tenants spread over that many sessions on the admin database, each with p_parallel targets at once (default 1), 072_workers.sql */
DECLARE
    v_kind text;
    v_failed int;
BEGIN
    PERFORM admmgt._check_call('applyScripts', p_parallel, p_tenants, p_server, p_tag);
    PERFORM admmgt._check_apply_options(p_upto, p_max_failures, p_canary);
    PERFORM admmgt._check_workers('applyScripts', p_workers);
    FOREACH v_kind IN ARRAY admmgt._kinds(t_separatedb, 'applyScripts') LOOP
        CALL admmgt._apply_kind(v_kind, p_parallel, p_wait_seconds, p_tenants, p_server, p_tag, p_upto, p_max_failures, p_canary, v_failed, p_workers);
    END LOOP;
    -- A script that had failed before this run still holds the fleet back: an error, not a success.
    -- (One that failed in this run is in the run's failures already.)
    PERFORM admmgt._raise_if_failed(s) FROM admmgt.scripts s WHERE s.id = v_failed;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._raise_if_failed(p_script admmgt.scripts)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a script that failed on the template holds the fleet back: say so as an error, not as nothing to do */
BEGIN
    IF p_script.status = 3 THEN
        RAISE EXCEPTION 'admmgt: script % failed on the template and holds back every script after it: %', p_script.id,
                        coalesce(p_script.last_error, 'no error was recorded')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Fix its cause (its rows, or the template), then CALL admmgt.retry_script(%s) (admmgt retry %s).', p_script.id, p_script.id);
    END IF;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.retry_script(p_scriptid int)
LANGUAGE plpgsql
AS $$
/* purpose: make a script that failed on the template ready again once its cause is fixed; the next applyScripts() runs it on the template first */
DECLARE
    v admmgt.scripts;
BEGIN
    SELECT * INTO v FROM admmgt.scripts WHERE id = p_scriptid FOR UPDATE;
    IF NOT FOUND OR v.status <> 3 THEN
        RAISE EXCEPTION 'admmgt: script % %', p_scriptid, CASE WHEN NOT FOUND THEN 'does not exist' ELSE format('has status %s, not 3 (failed)', v.status) END
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Only a script that failed on the template is retried.';
    END IF;
    UPDATE admmgt.scripts SET status = 1 WHERE id = p_scriptid;
    INSERT INTO admmgt.script_log (scriptid, dbname, commstat, operation, outcome, message)
    VALUES (p_scriptid, NULL, format('retry of script %s after: %s', p_scriptid, v.last_error), 'retry', 'ok', v.last_error);
    RAISE NOTICE 'admmgt: script % is ready again; CALL admmgt.applyScripts() runs it on the template first', p_scriptid;
END;
$$;
