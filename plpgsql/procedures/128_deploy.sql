-- CALL admmgt.deploy(t_numdays => 30);   one pass per target: its scripts, then its routines,
-- then its partitions, over one connection, each booked as applyScripts, refesh_stored_procedures
-- and applyMaintenance book it (060_record.sql, _booked_op).

CREATE OR REPLACE FUNCTION admmgt._at_goals(p_targets admmgt.targets[], p_items admmgt.work_item[])
RETURNS admmgt.targets[]
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the targets as they will be once their script items (p_items) have committed: each at the last script it gets, the others as they are */
DECLARE
    v_out admmgt.targets[] := '{}'::admmgt.targets[];
    v_t admmgt.targets;
    v_ids bigint[] := '{}'::bigint[];
    v_scripts int[] := '{}'::int[];
    v_goals int[];
BEGIN
    FOR k IN 1 .. coalesce(cardinality(p_items), 0) LOOP
        IF (p_items[k]).kind = 'script' THEN
            v_ids := v_ids || (p_items[k]).target_id;
            v_scripts := v_scripts || (p_items[k]).scriptid;
        END IF;
    END LOOP;
    -- Each target's last script, in the order of p_targets: one pass over the items, not one per target.
    v_goals := ARRAY(SELECT g.last FROM unnest(ARRAY(SELECT t.id FROM unnest(p_targets) WITH ORDINALITY AS t ORDER BY t.ordinality))
                                        WITH ORDINALITY AS t(id, k)
                       LEFT JOIN (SELECT u.id, max(u.scriptid) AS last FROM unnest(v_ids, v_scripts) AS u(id, scriptid) GROUP BY u.id) g
                              ON g.id = t.id
                      ORDER BY t.k);
    FOR k IN 1 .. coalesce(cardinality(p_targets), 0) LOOP
        v_t := p_targets[k];
        v_t.version := greatest(v_t.version, v_goals[k]);
        v_out := v_out || v_t;
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._deploy_items(p_order admmgt.targets[], p_apply admmgt.work_item[], p_refresh admmgt.work_item[],
                                                p_maint admmgt.work_item[])
RETURNS admmgt.work_item[]
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one list of work items in which each target's items follow each other: its scripts, its refresh, its maintenance; targets in the order of p_order (copies before tenants), those not in it after */
DECLARE
    v_na int := coalesce(cardinality(p_apply), 0);
    v_nr int := coalesce(cardinality(p_refresh), 0);
    v_out admmgt.work_item[] := '{}'::admmgt.work_item[];
    k int;
BEGIN
    -- Positions k in the three lists one after the other, which say the step as well; the lists
    -- themselves are not joined (|| copies every item).
    FOREACH k IN ARRAY ARRAY(
        SELECT x.k::int FROM unnest(admmgt._item_ids(p_apply) || admmgt._item_ids(p_refresh) || admmgt._item_ids(p_maint)) WITH ORDINALITY AS x(id, k)
          LEFT JOIN unnest(ARRAY(SELECT t.id FROM unnest(p_order) WITH ORDINALITY AS t ORDER BY t.ordinality)) WITH ORDINALITY AS o(id, n)
                 ON o.id = x.id
         ORDER BY coalesce(o.n, 2147483647), x.id, x.k) LOOP
        v_out := v_out || CASE WHEN k <= v_na THEN p_apply[k] WHEN k <= v_na + v_nr THEN p_refresh[k - v_na] ELSE p_maint[k - v_na - v_nr] END;
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._untouched(p_all bigint[], p_sent bigint[])
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: how many of the targets p_all (of a list's items, _item_ids) have no item left among p_sent: their upkeep records held all they would get */
SELECT count(DISTINCT a)::int FROM unnest(p_all) AS a
 WHERE a NOT IN (SELECT s FROM unnest(p_sent) AS s);
$$;

CREATE OR REPLACE FUNCTION admmgt._template_ids(p_kind text)
RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the target id of the template of a kind, as a list (empty when it is not created) */
SELECT ARRAY(SELECT t.id FROM unnest(admmgt._template_targets(p_kind)) t);
$$;

CREATE OR REPLACE FUNCTION admmgt._unless_verify(p_verify boolean, p_held bigint[])
RETURNS bigint[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the targets an upkeep record lets a deploy leave out: none with p_verify, which checks them for real */
SELECT CASE WHEN coalesce(p_verify, false) THEN '{}'::bigint[] ELSE coalesce(p_held, '{}'::bigint[]) END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._end_deploy_if_failed(p_run_id bigint, p_error admmgt.error_state)
LANGUAGE plpgsql
AS $$
/* purpose: after a block under the locks of a deploy: when it caught an error, let maintenance and refresh go and close the frame with it (which raises it again) */
BEGIN
    IF p_error.sqlstate IS NOT NULL THEN
        PERFORM admmgt._release_upkeep();
        CALL admmgt._end_call('deploy', p_run_id, p_error);
    END IF;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._deploy_template(p_kind text, p_from date, p_to date, p_run bigint, p_verify boolean)
LANGUAGE plpgsql
AS $$
/* purpose: the first step of a deploy of one kind: the template's ready scripts, then its maintenance at its new version, on one connection, alone */
DECLARE
    v_items admmgt.work_item[];
    v_maint admmgt.work_item[];
    v_held bigint[];
    v_error admmgt.error_state;
BEGIN
    BEGIN
        v_items := admmgt._template_apply_items(p_kind, NULL);
        -- Its tenants' batches are rendered once the template has run.
        v_maint := admmgt._without(admmgt._maintenance_items(p_from, p_to, NULL, NULL, NULL, ARRAY[p_kind],
                                                             admmgt._at_goals(admmgt._template_targets(p_kind), v_items)),
                                   admmgt._template_ids(p_kind), true);
        v_held := admmgt._unless_verify(p_verify, admmgt._partitions_held(v_maint, p_from, p_to));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_deploy_if_failed(p_run, v_error);
    PERFORM admmgt._note_skipped('deploy', p_run, admmgt._untouched(admmgt._item_ids(v_maint),
                                                                    admmgt._item_ids(v_items || admmgt._without(v_maint, v_held))),
                                 format('every script and every partition through %s', p_to));
    v_maint := admmgt._without(v_maint, v_held);
    CALL admmgt._run('deploy', v_items || v_maint, 1, p_run);
    PERFORM admmgt._keep_partitions(p_run, v_maint, p_from, p_to);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._deploy_tenants(p_kind text, p_from date, p_to date, p_run bigint, p_parallel int,
                                                   p_tenants text[], p_server text, p_tag text, p_verify boolean, p_workers int)
LANGUAGE plpgsql
AS $$
/* purpose: the second step of a deploy of one kind, once its template has run: one run over the chosen tenants and copies, each getting its scripts, then the template's routines (read once), then its maintenance at its new version; what an upkeep record holds at that version is left out, unless p_verify */
DECLARE
    v_chosen admmgt.targets[];
    v_goals admmgt.targets[];
    v_items admmgt.work_item[];
    v_refresh admmgt.work_item[];
    v_maint admmgt.work_item[];
    v_all bigint[];
    v_rheld bigint[];
    v_pheld bigint[];
    v_error admmgt.error_state;
BEGIN
    BEGIN
        v_chosen := admmgt._select(admmgt._update_targets(p_kind), p_tenants, p_server, p_tag);
        v_items := admmgt._tenant_apply_items(p_kind, p_tenants, p_server, p_tag, NULL);
        v_goals := admmgt._at_goals(v_chosen, v_items);
        v_refresh := admmgt._refresh_items(admmgt._refresh_stmts(p_kind, false), v_goals);
        v_maint := admmgt._maintenance_items(p_from, p_to, p_tenants, p_server, p_tag, ARRAY[p_kind], v_goals);
        v_maint := admmgt._without(v_maint, admmgt._template_ids(p_kind));
        v_rheld := admmgt._unless_verify(p_verify, admmgt._refresh_held(v_refresh, 'routines'));
        v_pheld := admmgt._unless_verify(p_verify, admmgt._partitions_held(v_maint, p_from, p_to));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_deploy_if_failed(p_run, v_error);
    v_all := admmgt._item_ids(v_refresh) || admmgt._item_ids(v_maint);
    v_refresh := admmgt._without(v_refresh, v_rheld);
    v_maint := admmgt._without(v_maint, v_pheld);
    PERFORM admmgt._note_skipped('deploy', p_run, admmgt._untouched(v_all, admmgt._item_ids(v_items) || admmgt._item_ids(v_refresh) || admmgt._item_ids(v_maint)),
                                 format('every script, the template''s routines as they are now and every partition through %s', p_to));
    CALL admmgt._run('deploy', admmgt._deploy_items(v_chosen, v_items, v_refresh, v_maint), p_parallel, p_run, NULL, p_workers);
    PERFORM admmgt._keep_refresh(p_run, v_refresh, 'routines');
    PERFORM admmgt._keep_partitions(p_run, v_maint, p_from, p_to);
    PERFORM admmgt._mark_applied((admmgt._template(p_kind)).scriptversion);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._deploy_kind(p_kind text, p_numdays int, p_parallel int, p_wait_seconds int, p_tenants text[],
                                                p_server text, p_tag text, p_verify boolean, INOUT p_failed int, p_workers int)
LANGUAGE plpgsql
AS $$
/* purpose: deploy() for the targets of one kind, under the locks of apply, refresh and maintenance: the template first, alone, as the canary; if it failed, its tenants are left untouched; p_failed: the id of a script that had failed on a template before the run */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_next admmgt.scripts;
    v_run bigint;
    v_holder text;
BEGIN
    -- Everything that can be refused is refused before any target is touched, as the three procedures do.
    PERFORM admmgt._check_ready(p_kind, NULL);
    PERFORM admmgt._refresh_stmts(p_kind, false, true);
    v_template := admmgt._template(p_kind);
    v_next := admmgt._failed_next(v_template.scriptversion);
    p_failed := coalesce(p_failed, CASE WHEN v_next.status = 3 THEN v_next.id END);

    CALL admmgt._begin_call('deploy', 'deploy', p_wait_seconds, v_run);
    v_holder := admmgt._hold_upkeep(p_wait_seconds);
    IF v_holder IS NOT NULL THEN
        CALL admmgt._end_call('deploy', v_run, ROW('55P03', format('admmgt.deploy cannot start while maintenance or refresh is running: %s', v_holder),
                                                   NULL, 'Wait for that run to end, or pass p_wait_seconds => N to wait up to N seconds.')::admmgt.error_state);
    END IF;
    CALL admmgt._deploy_template(p_kind, current_date, current_date + p_numdays, v_run, p_verify);
    IF (SELECT coalesce(r.failed, 0) FROM admmgt.runs r WHERE r.run_id = v_run) > 0 THEN
        RAISE WARNING 'admmgt deploy: the % template % failed: its tenants are left untouched', p_kind, v_template.dbname
            USING HINT = 'See SELECT * FROM admmgt.failures; fix the cause, then run deploy again.';
    ELSE
        CALL admmgt._deploy_tenants(p_kind, current_date, current_date + p_numdays, v_run, p_parallel, p_tenants, p_server, p_tag, p_verify, p_workers);
    END IF;
    PERFORM admmgt._release_upkeep();
    CALL admmgt._end_call('deploy', v_run);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.deploy(t_separatedb int DEFAULT NULL, t_numdays int DEFAULT 30, p_parallel int DEFAULT NULL,
                                          p_wait_seconds int DEFAULT 0, p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL,
                                          p_tag text DEFAULT NULL, p_verify boolean DEFAULT false, p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: applyScripts(), refesh_stored_procedures() and applyMaintenance(t_numdays) in one pass per target over one connection, each step its own transaction booked as its own procedure books it: per kind the template's scripts and maintenance first, alone; then each chosen tenant (and copy) gets its scripts, the template's routines and its partitions at its new version, a target whose scripts fail getting neither; upkeep records leave out what a target holds, unless p_verify; p_workers: that many more admin sessions share the tenants (the template runs alone) */
DECLARE
    v_kinds text[];
    v_failed int;
BEGIN
    PERFORM admmgt._check_call('deploy', p_parallel, p_tenants, p_server, p_tag), admmgt._check_window_days(t_numdays, current_date),
            admmgt._check_workers('deploy', p_workers);
    v_kinds := admmgt._kinds(t_separatedb, 'deploy');
    -- Kind by kind, as applyScripts: a script that failed on a template before the call is an error once every kind has run.
    FOR k IN 1 .. cardinality(v_kinds) LOOP
        CALL admmgt._deploy_kind(v_kinds[k], t_numdays, p_parallel, p_wait_seconds, p_tenants, p_server, p_tag, p_verify, v_failed, p_workers);
    END LOOP;
    PERFORM admmgt._raise_if_failed(s) FROM admmgt.scripts s WHERE s.id = v_failed;
END;
$$;
