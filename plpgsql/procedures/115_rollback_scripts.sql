-- CALL admmgt.rollbackScripts(p_to => N): take targets back to script N by running the down
-- steps (script_sql rows with direction down, render_down in 037_render_sql.sql) of every script
-- above N they have, newest first, one transaction per (script, target), as apply runs its
-- scripts. The same transaction deletes the script's row from the target's ledger, so a target
-- has a script exactly when its catalog has it. The whole fleet goes back with its template first
-- and alone (new tenants are then made at N), and its scripts above N become designing (status 0)
-- and unfrozen so their rows can be fixed; chosen tenants go back alone and are pinned at N.

CREATE OR REPLACE FUNCTION admmgt._rollback_ledger_sql(p_scriptid int, p_nsp text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statement of a rollback that takes a script out of a target's ledger (of a schema target: of its schema), its parts too; it fails when the ledger does not have the script, so down steps never run on a target that lacks it, and when the target has begun a later script in parts without finishing it, whose finished parts its down steps would not undo */
SELECT 'DO ' || admmgt._dollar_quote(format($f$
DECLARE
    v_partial int;
BEGIN
    DELETE FROM %1$s WHERE %2$sscriptid = %3$s;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'admmgt: the ledger of %5$s has no script %3$s, so it is not rolled back there'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The registry and the target disagree: see SELECT * FROM admmgt.applied_scripts on the target.';
    END IF;
    IF pg_catalog.to_regclass(%4$L) IS NOT NULL THEN
        -- Later scripts were rolled back first and left this ledger: a finished part above is one of a script begun, not finished.
        SELECT min(scriptid) INTO v_partial FROM %4$s WHERE %2$sscriptid > %3$s AND finished_at IS NOT NULL;
        IF v_partial IS NOT NULL THEN
            RAISE EXCEPTION 'admmgt: %5$s stopped partway through script %%, after some of its parts (%4$s), so it is not rolled back past it', v_partial
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Finish that script first (applyScripts runs what is left of it; unpin the tenant if the rollback pinned it), then roll back, its down steps included.';
        END IF;
        DELETE FROM %4$s WHERE %2$sscriptid = %3$s;
    END IF;
END
$f$, CASE WHEN p_nsp IS NULL THEN 'admmgt.applied_scripts' ELSE 'admmgt.applied_schema_scripts' END,
     CASE WHEN p_nsp IS NOT NULL THEN format('schemaname = %L AND ', p_nsp) ELSE '' END, p_scriptid,
     admmgt._parts_table(p_nsp), CASE WHEN p_nsp IS NULL THEN 'this database' ELSE format('schema %s', p_nsp) END), 'admmgt');
$$;

CREATE OR REPLACE FUNCTION admmgt._rollback_scripts(p_targets admmgt.targets[], p_to int)
RETURNS int[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the scripts above p_to that at least one of the given targets has (its version at or above them), in id order */
SELECT coalesce(array_agg(s.id ORDER BY s.id), '{}')
  FROM admmgt.scripts s
 WHERE s.id > p_to AND EXISTS (SELECT 1 FROM unnest(p_targets) t WHERE t.version >= s.id);
$$;

CREATE OR REPLACE FUNCTION admmgt._check_no_partial(p_targets admmgt.targets[], p_to int)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a rollback of targets that stopped partway through a script in parts after some of it ran (as part_attempts says: a part after its first is unfinished, so the ones before it finished; or a part ran or may have run and was not seen to finish), naming each: the down steps of the scripts they have would leave those parts in place (the target's own ledger refuses the cases the admin side did not see); a first part that failed left nothing and does not stop a rollback */
DECLARE
    v_list text;
    v_first text;
BEGIN
    SELECT string_agg(format('%s (script %s)', x.dbname, x.scriptid), ', ' ORDER BY x.dbname, x.scriptid), min(x.dbname)
      INTO v_list, v_first
      FROM (SELECT DISTINCT t.dbname, a.scriptid FROM unnest(p_targets) t
              JOIN admmgt.part_attempts a ON a.target_id = t.id AND a.scriptid > t.version
             WHERE t.version > p_to
               AND (a.state <> 'failed' OR a.part > (SELECT min(p.part) FROM admmgt.script_parts p WHERE p.scriptid = a.scriptid))) x;
    IF v_list IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: % stopped partway through a script in parts, so it cannot be rolled back to %: nothing was touched', v_list, p_to
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Finish that script first: CALL admmgt.applyScripts(p_tenants => ARRAY[%L]) runs what is left of it (parts that ran are not run again); then roll back, its down steps included. Or leave that target out: name the others in p_tenants, or, to take the whole fleet back, set its updateflag to false first.', v_first);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_rollback(p_targets admmgt.targets[], p_to int, p_kind text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: before any target is touched, refuse a rollback of a script without down steps, naming every such script; render every down step once, so a bad one is refused here, naming its row; for schema targets, refuse a down step that would leave the tenant's own schema */
DECLARE
    v_ids int[] := admmgt._rollback_scripts(p_targets, p_to);
    v_none int[];
BEGIN
    SELECT array_agg(i ORDER BY i) INTO v_none FROM unnest(v_ids) i
     WHERE NOT EXISTS (SELECT 1 FROM admmgt.script_sql q WHERE q.scriptid = i AND q.direction = 'down');
    IF v_none IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: script% % %, so % cannot be rolled back to %: nothing was touched',
                        CASE WHEN cardinality(v_none) > 1 THEN 's' ELSE '' END, array_to_string(v_none, ', '),
                        CASE WHEN cardinality(v_none) > 1 THEN 'have no down steps' ELSE 'has no down steps' END,
                        CASE WHEN cardinality(v_none) > 1 THEN 'they' ELSE 'it' END, p_to
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Give each its down steps, SQL that undoes it: INSERT INTO admmgt.script_sql (scriptid, seq, body, direction) VALUES (%s, 1, ''...'', ''down''), or admmgt script add FILE --down DOWNFILE. Down steps may be added to an applied script.',
                                v_none[1]);
    END IF;
    PERFORM admmgt._check_no_partial(p_targets, p_to);
    PERFORM count(*) FROM unnest(v_ids) AS i, LATERAL admmgt.render_down(i) AS d;
    IF p_kind = 'schema' THEN
        PERFORM admmgt._check_schema_scripts(v_ids, current_date, true);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._rollback_items(p_targets admmgt.targets[], p_to int)
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: for each of the given targets, one work item per script above p_to that it has, newest first: in one transaction, the script out of its ledger, then its down steps (a schema target's in its own schema); each script's down steps rendered once */
WITH targets AS (
    SELECT u AS t, u.id, u.version, u.servertemplate FROM unnest(p_targets) AS u WHERE u.version > p_to
), down AS MATERIALIZED (
    SELECT s.id,
           ARRAY(SELECT d.stmt FROM admmgt.render_down(s.id) d ORDER BY d.seq) AS stmts,
           ARRAY(SELECT d.source FROM admmgt.render_down(s.id) d ORDER BY d.seq) AS sources
      FROM admmgt.scripts s
     WHERE s.id > p_to AND s.id <= (SELECT max(t.version) FROM targets t)
), forms AS MATERIALIZED (
    -- Schema targets share one form of the down steps, the template schema's references marked (029).
    SELECT d.*, CASE WHEN EXISTS (SELECT 1 FROM targets t WHERE (t.t).nsp IS NOT NULL)
                     THEN ARRAY(SELECT admmgt._schema_template(x.s, admmgt._schema_template_name())
                                  FROM unnest(d.stmts) WITH ORDINALITY AS x(s, n) ORDER BY x.n) END AS marked
      FROM down d
)
SELECT coalesce(array_agg(admmgt._target_item('rollback', t.t, f.id,
                              admmgt._rollback_ledger_sql(f.id, (t.t).nsp)
                              || CASE WHEN (t.t).nsp IS NULL THEN f.stmts ELSE admmgt._for_schema(f.marked, (t.t).nsp) END,
                              true, 1, NULL, ARRAY[NULL::text] || f.sources)
                          ORDER BY t.servertemplate DESC, t.id, f.id DESC), '{}')
  FROM targets t JOIN forms f ON f.id <= t.version;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_rollback(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a rollback item: a target that committed it moves to the script before it (the highest script id below it, or 0) and loses what the admin side kept of the script's parts; a down step that failed is named by its row (the target's transaction was rolled back, so it stays where it was) */
DECLARE
    b admmgt.booking := admmgt._named_failure(p_booking, p_item, p_state);
BEGIN
    b.scriptid := p_item.scriptid;
    IF b.ok THEN
        UPDATE admmgt.vendor_db_settings
           SET scriptversion = (SELECT coalesce(max(s.id), 0) FROM admmgt.scripts s WHERE s.id < p_item.scriptid),
               modifiedon = current_timestamp
         WHERE id = p_item.target_id;
        DELETE FROM admmgt.part_attempts WHERE target_id = p_item.target_id AND scriptid = p_item.scriptid;
    END IF;
    RETURN b;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._rollback_tenants(p_kind text, p_tenants text[], p_server text, p_tag text)
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the targets after the template that a rollback of one kind works on: as apply, the template's copies and the chosen tenants with updateflag */
SELECT admmgt._select(admmgt._update_targets(p_kind), p_tenants, p_server, p_tag);
$$;

CREATE OR REPLACE FUNCTION admmgt._after_rollback(p_to int, p_back int[])
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: after a rollback of the whole fleet, the scripts the templates had before it (p_back) that no template has any more become designing (status 0) and unfrozen, so the next applyScripts() does not bring them back until they are ready again; warns of tenants outside the run (no updateflag) that still have scripts above p_to */
DECLARE
    v_ids int[];
    v_id int;
    v_left text;
BEGIN
    SELECT array_agg(s.id ORDER BY s.id) INTO v_ids FROM admmgt.scripts s
     WHERE s.id = ANY (p_back) AND NOT EXISTS (SELECT 1 FROM admmgt.targets t WHERE t.istemplate AND t.version >= s.id);
    FOREACH v_id IN ARRAY coalesce(v_ids, '{}') LOOP
        UPDATE admmgt.scripts SET status = 0, applied_at = NULL, last_error = NULL WHERE id = v_id;
        PERFORM admmgt._unfreeze(v_id);
    END LOOP;
    IF v_ids IS NOT NULL THEN
        RAISE NOTICE 'admmgt rollback: script(s) % set to status 0 (designing) and unfrozen: fix their rows, then set them ready (status 1) for applyScripts() to run them again',
                     array_to_string(v_ids, ', ');
    END IF;
    SELECT string_agg(t.dbname, ', ' ORDER BY t.dbname) INTO v_left FROM admmgt.targets t
     WHERE NOT t.istemplate AND t.version > p_to AND NOT coalesce(t.updateflag, false) AND NOT t.servertemplate;
    IF v_left IS NOT NULL THEN
        RAISE WARNING 'admmgt rollback: % ha% updateflag off and kept its scripts above %', v_left,
                      CASE WHEN strpos(v_left, ',') > 0 THEN 've' ELSE 's' END, p_to
            USING HINT = format('Set updateflag and CALL admmgt.rollbackScripts(p_to => %s, p_tenants => ...) to take them back too.', p_to);
    END IF;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.rollbackscripts(p_to int, t_separatedb int DEFAULT NULL, p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                                   p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: take targets back to script p_to by running the down steps of every script above it that they have, newest first, one transaction per (script, target); refused before any target is touched when one of those scripts has no down steps; without a selection the templates go back first, each alone (a failure there leaves its tenants untouched), then their copies and tenants with updateflag, and the scripts above p_to become designing (status 0) and unfrozen; with a selection only the chosen tenants go back, and they are pinned at p_to; a target whose down step fails stays at its version (that transaction is rolled back) and the others go on */
DECLARE
    v_whole boolean := num_nonnulls(p_tenants, p_server, p_tag) = 0;
    v_kinds text[];
    v_kind text;
    v_total int := 0;
    v_run bigint;
    v_error admmgt.error_state;
    v_items admmgt.work_item[];
    v_failed int;
    v_pinned text;
    v_back int[] := '{}'::int[];
BEGIN
    PERFORM admmgt._check_call('rollbackScripts', p_parallel);
    IF p_to IS NULL OR p_to < 0 THEN
        RAISE EXCEPTION 'admmgt: rollbackScripts was given p_to => %', coalesce(p_to::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'p_to is the script id to go back to (0 or more): every script above it is rolled back.';
    END IF;
    PERFORM admmgt._check_selection('rollbackScripts', p_tenants, p_server, p_tag);
    v_kinds := admmgt._kinds(t_separatedb, 'rollbackScripts');
    -- Every script that will be rolled back has down steps, and they render: checked before any lock.
    FOREACH v_kind IN ARRAY v_kinds LOOP
        IF v_whole THEN
            PERFORM admmgt._template(v_kind);
            PERFORM admmgt._check_rollback(admmgt._template_targets(v_kind), p_to, v_kind);
            v_total := v_total + cardinality(admmgt._rollback_scripts(admmgt._template_targets(v_kind), p_to));
        END IF;
        PERFORM admmgt._check_rollback(admmgt._rollback_tenants(v_kind, p_tenants, p_server, p_tag), p_to, v_kind);
        v_total := v_total + cardinality(admmgt._rollback_scripts(admmgt._rollback_tenants(v_kind, p_tenants, p_server, p_tag), p_to));
    END LOOP;
    IF v_total = 0 THEN
        RAISE NOTICE '%', format('admmgt rollback: nothing to do; %s at version %s or below',
                                 CASE WHEN v_whole THEN 'the templates and every tenant with updateflag are' ELSE 'every chosen tenant is' END, p_to);
        RETURN;
    END IF;

    -- One lock with apply and create: a rollback and an apply never run at once.
    CALL admmgt._begin_call('rollback', 'rollbackScripts', p_wait_seconds, v_run);
    FOREACH v_kind IN ARRAY v_kinds LOOP
        IF v_whole THEN
            BEGIN
                -- Read again under the lock: another run may have moved the template meanwhile.
                PERFORM admmgt._check_rollback(admmgt._template_targets(v_kind), p_to, v_kind);
                v_back := v_back || admmgt._rollback_scripts(admmgt._template_targets(v_kind), p_to);
                v_items := admmgt._rollback_items(admmgt._template_targets(v_kind), p_to);
                SELECT coalesce(failed, 0) INTO v_failed FROM admmgt.runs WHERE run_id = v_run;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
            END;
            CALL admmgt._end_call_if_failed('rollback', v_run, v_error);
            CALL admmgt._run('rollback', v_items, 1, v_run);
            IF (SELECT coalesce(failed, 0) FROM admmgt.runs WHERE run_id = v_run) > v_failed THEN
                -- The template is the canary: its tenants would fail the same way.
                RAISE WARNING 'admmgt rollback: the % template failed: its tenants are left untouched', v_kind
                    USING HINT = 'See SELECT * FROM admmgt.failures; fix the down step, then run the rollback again: it goes on from where the template is.';
                CONTINUE;
            END IF;
        END IF;
        BEGIN
            PERFORM admmgt._check_rollback(admmgt._rollback_tenants(v_kind, p_tenants, p_server, p_tag), p_to, v_kind);
            v_items := admmgt._rollback_items(admmgt._rollback_tenants(v_kind, p_tenants, p_server, p_tag), p_to);
            IF NOT v_whole THEN
                -- Pinned before they go back, so that a kill midway leaves none for the next apply.
                SELECT string_agg(DISTINCT i.dbname, ', ') INTO v_pinned FROM unnest(v_items) i;
                UPDATE admmgt.vendor_db_settings v SET pinned_version = p_to, modifiedon = current_timestamp
                 WHERE v.id IN (SELECT i.target_id FROM unnest(v_items) i);
                IF v_pinned IS NOT NULL THEN
                    RAISE NOTICE 'admmgt rollback: % pinned at version %: applyScripts() leaves them there until admmgt.unpin_tenant()', v_pinned, p_to;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
        END;
        CALL admmgt._end_call_if_failed('rollback', v_run, v_error);
        COMMIT;
        CALL admmgt._run('rollback', v_items, p_parallel, v_run);
    END LOOP;
    BEGIN
        IF v_whole THEN
            PERFORM admmgt._after_rollback(p_to, v_back);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call('rollback', v_run, v_error);
END;
$$;
