-- CALL admmgt.applyScripts();

CREATE OR REPLACE FUNCTION admmgt._ready_scripts(p_version int)
RETURNS int[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the ready scripts the template does not have yet, in id order, up to the first one that is not ready; refuses a ready script added below the template's version */
DECLARE
    v_ids int[] := '{}';
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
/* purpose: for each of the given targets, every script up to p_upto that it lacks, in order (copies of the template before tenants), as work items; each script's parts read (frozen) or rendered once */
WITH targets AS (
    SELECT u AS t, u.id, u.version, u.servertemplate FROM unnest(p_targets) AS u WHERE u.version < p_upto
), blocked AS (
    -- A script a lagging target still needs that is no longer ready (set back to 0 to be edited,
    -- or failed) stops that target there: no script is ever skipped.
    SELECT min(x.id) AS id FROM admmgt.scripts x
     WHERE x.id <= p_upto AND x.status NOT IN (1, 2) AND x.id > (SELECT min(t.version) FROM targets t)
), batches AS MATERIALIZED (
    SELECT s.id, ARRAY(SELECT p FROM admmgt._script_parts(s.id, p_asof) p) AS parts
      FROM admmgt.scripts s
     WHERE s.id <= p_upto AND s.status IN (1, 2) AND s.id > (SELECT min(t.version) FROM targets t)
       AND s.id < coalesce((SELECT b.id FROM blocked b), p_upto + 1)
)
SELECT coalesce(array_agg(i.items[g.n] ORDER BY t.servertemplate DESC, t.id, b.id, g.n), '{}')
  FROM targets t JOIN batches b ON b.id > t.version
 CROSS JOIN LATERAL (SELECT admmgt._script_items(t.t, b.parts, b.id) AS items) i
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

CREATE OR REPLACE FUNCTION admmgt._part_attempt_hook(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: what the admin side keeps of a part outside a transaction: its opening's token (or that it was done before: the rest of the part is skipped), whether its statement ran or failed (a lost connection leaves it unknown), and nothing once it is finished */
DECLARE
    b admmgt.booking := p_booking;
    -- The opening's last statement is the state query; its output comes before COMMIT's.
    v_out text := p_state.outputs[cardinality(admmgt._batch_prefix(p_item.atomic)) + cardinality(p_item.stmts)];
BEGIN
    IF p_item.step = 'begin' AND b.ok AND v_out = 'done' THEN
        DELETE FROM admmgt.part_attempts WHERE target_id = p_item.target_id AND scriptid = p_item.scriptid AND part = p_item.part;
        b.outcome := 'already applied';
        b.skip_part := true;
        b.lines := ARRAY[format('part %s of script %s: finished before', p_item.part, p_item.scriptid)];
    ELSIF p_item.step = 'begin' AND b.ok THEN
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
/* purpose: booking hook of a script item: a target that committed the whole script (or its last part) moves to the script's version; a ledger row already there (the admin side lost track) counts as already applied; a statement of the script that fails on the template, or a batch that does not parse there, marks the script failed and names its row (a lost connection is retried next run) */
DECLARE
    b admmgt.booking := p_booking;
    v_source text := admmgt._failed_source(p_item, p_state);
    v_own boolean;
BEGIN
    b.scriptid := p_item.scriptid;
    IF NOT b.ok AND b.sqlstate = '23505'
       AND b.statement IN (admmgt._ledger_insert(p_item.scriptid), admmgt._ledger_part_insert(p_item.scriptid, p_item.part)) THEN
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
    IF NOT b.ok AND NOT p_state.broken AND v_source IS NOT NULL THEN
        b.message := format('%s: %s', v_source, b.message);
    END IF;
    IF p_item.step IN ('begin', 'run', 'finish') THEN
        b := admmgt._part_attempt_hook(p_item, p_state, b);
    END IF;
    v_own := v_source IS NOT NULL OR b.statement LIKE 'script % as a whole, %';
    IF b.ok AND (p_item.step IS NULL OR p_item.step = 'end') THEN
        UPDATE admmgt.vendor_db_settings SET scriptversion = p_item.scriptid, modifiedon = current_timestamp
         WHERE id = p_item.target_id;
    ELSIF NOT b.ok AND NOT p_state.broken AND v_own
          AND EXISTS (SELECT 1 FROM admmgt.vendor_db_settings v WHERE v.id = p_item.target_id AND v.istemplate) THEN
        UPDATE admmgt.scripts SET status = 3, last_error = format('%s (SQLSTATE %s) at: %s', b.message, b.sqlstate, b.statement)
         WHERE id = p_item.scriptid;
        PERFORM admmgt._unfreeze(p_item.scriptid);
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

CREATE OR REPLACE FUNCTION admmgt.plan_scripts(p_asof date DEFAULT current_date)
RETURNS TABLE (dbname text, scriptid int, seq int, stmt text, server text)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what applyScripts() would run now, per target (database and server) and script, if the template takes every ready script */
WITH t AS (SELECT * FROM admmgt._template()),
     r AS (SELECT admmgt._ready_scripts(t.scriptversion) AS ready, t.scriptversion FROM t),
     items AS (
        SELECT i.*, 0 AS ord FROM r, unnest(admmgt._apply_items(admmgt._template_targets(), coalesce(r.ready[cardinality(r.ready)], r.scriptversion), p_asof)) i
        UNION ALL
        SELECT i.*, 1 FROM r, unnest(admmgt._apply_items(admmgt._update_targets(), coalesce(r.ready[cardinality(r.ready)], r.scriptversion), p_asof)) i)
SELECT i.dbname, i.scriptid, s.n::int, s.stmt, coalesce(i.server, 'local')
  FROM items i CROSS JOIN LATERAL unnest(i.stmts) WITH ORDINALITY AS s(stmt, n)
 ORDER BY i.ord, i.target_id, i.scriptid, s.n;
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

CREATE OR REPLACE PROCEDURE admmgt.applyscripts(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: apply ready scripts in id order: the template first, alone, as the canary; then every created tenant with updateflag that is below the template's version */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_ready int[];
    v_items admmgt.work_item[];
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    PERFORM admmgt._check_call('applyScripts', p_parallel);
    v_template := admmgt._template();
    v_ready := admmgt._ready_scripts(v_template.scriptversion);
    -- Render every ready script before any target is touched: bad rows are refused here.
    PERFORM count(*) FROM unnest(v_ready) AS s, LATERAL admmgt.render_script(s) AS r;
    IF cardinality(v_ready) = 0 AND NOT EXISTS (SELECT 1 FROM admmgt.update_targets u WHERE u.version < v_template.scriptversion) THEN
        RAISE NOTICE 'admmgt apply: nothing to do; the template and every tenant with updateflag are at version %', v_template.scriptversion;
        RETURN;
    END IF;

    CALL admmgt._begin_call('apply', 'applyScripts', p_wait_seconds, v_run);
    BEGIN
        -- Read again under the lock: another run may have moved the template meanwhile.
        v_template := admmgt._template();
        v_ready := admmgt._ready_scripts(v_template.scriptversion);
        -- What the template runs now is what every target gets later: freeze it first.
        PERFORM admmgt._freeze_scripts(coalesce(v_ready[cardinality(v_ready)], v_template.scriptversion), current_date);
        v_items := admmgt._apply_items(admmgt._template_targets(), coalesce(v_ready[cardinality(v_ready)], v_template.scriptversion), current_date);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('apply', v_run, v_error);
    CALL admmgt._run('apply', v_items, 1, v_run);

    BEGIN
        v_template := admmgt._template();
        PERFORM admmgt._notice_blocked(v_template.scriptversion);
        v_items := admmgt._apply_items(admmgt._update_targets(), v_template.scriptversion, current_date);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('apply', v_run, v_error);
    CALL admmgt._run('apply', v_items, p_parallel, v_run);

    PERFORM admmgt._mark_applied(v_template.scriptversion);
    CALL admmgt._end_call('apply', v_run);
END;
$$;
