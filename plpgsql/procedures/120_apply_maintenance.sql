-- CALL admmgt.applyMaintenance(t_numdays => 30);

CREATE OR REPLACE FUNCTION admmgt._maintenance_items(p_from date, p_to date, p_tenants text[] DEFAULT NULL,
                                                     p_server text DEFAULT NULL, p_tag text DEFAULT NULL, p_kinds text[] DEFAULT NULL,
                                                     p_goals admmgt.targets[] DEFAULT NULL)
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one maintenance batch per chosen created target of the given kinds (the templates and the copies first) that has RANGE-partitioned tables, its scriptid the version it is rendered for (its version in p_goals when listed there: where a deploy takes it); targets at one version share one rendering, schema targets one form of it with their own schema filled in */
WITH targets AS (
    SELECT t.id, coalesce(g.version, t.version) AS version, t.istemplate, t.servertemplate, t AS t FROM admmgt.targets t
      LEFT JOIN unnest(p_goals) g ON g.id = t.id
     WHERE admmgt._selected(t, p_tenants, p_server, p_tag) AND (p_kinds IS NULL OR t.kind = ANY (p_kinds))
), batches AS MATERIALIZED (
    SELECT x.version, x.schema_mode,
           admmgt.maintenance_batch(x.version, p_from, p_to, CASE WHEN x.schema_mode THEN admmgt._schema_template_name() END) AS stmts
      FROM (SELECT DISTINCT version, (t).nsp IS NOT NULL AS schema_mode FROM targets) x
)
SELECT coalesce(array_agg(admmgt._target_item('partitions', t.t, t.version, admmgt._for_schema(b.stmts, (t.t).nsp), true)
                          ORDER BY t.istemplate DESC, t.servertemplate DESC, t.id), '{}')
  FROM targets t JOIN batches b ON b.version = t.version AND b.schema_mode = ((t.t).nsp IS NOT NULL)
 WHERE b.stmts IS NOT NULL;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_partitions(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a maintenance batch: log the partitions it created (its first query, after the executor's prefix, named those missing) and the rows it moved out of DEFAULT partitions (its last query, when the batch has one), not its statements */
SELECT admmgt._success_lines(p_booking,
    (SELECT array_agg('created partition ' || n) FROM regexp_split_to_table(nullif(p_state.outputs[x.sent + 1], ''), ' ') n)
    || CASE WHEN p_item.stmts[cardinality(p_item.stmts)] = admmgt._moves_report_sql() THEN
            (SELECT array_agg(format('moved %s rows from the default partition into %s', m[2], m[1]))
               FROM regexp_matches(p_state.outputs[x.sent + cardinality(p_item.stmts)], '(\S+) (\d+)', 'g') AS m) END)
  FROM (SELECT cardinality(admmgt._batch_prefix(p_item.atomic)) AS sent) x;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_window_days(p_numdays int, p_asof date)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a look-ahead (t_numdays) out of range, or a window from p_asof that leaves the calendar */
BEGIN
    IF p_numdays IS NULL OR p_numdays < 0 OR p_numdays > admmgt._window_days() THEN
        RAISE EXCEPTION 'admmgt: t_numdays must be between 0 and %, not %', admmgt._window_days(), coalesce(p_numdays::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass the look-ahead in days, for example t_numdays => 30.';
    END IF;
    PERFORM admmgt._finite_date(coalesce(p_asof, current_date), 'p_asof');
    PERFORM admmgt._finite_date(coalesce(p_asof, current_date) + p_numdays, 'p_asof + t_numdays');
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.applymaintenance(t_separatedb int DEFAULT NULL, t_numdays int DEFAULT 30, p_parallel int DEFAULT NULL,
                                                    p_asof date DEFAULT current_date, p_wait_seconds int DEFAULT 0,
                                                    p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL,
                                                    p_verify boolean DEFAULT false, p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: in the templates and every created tenant (or the chosen ones; t_separatedb 1: database targets only, 0: schema targets only), create every RANGE partition needed for each day from p_asof through p_asof + t_numdays; a target whose upkeep record holds that window at its version is not connected, unless p_verify; p_workers: the targets spread over that many sessions on the admin database, each with p_parallel targets at once (default 1), as in applyScripts */
DECLARE
    v_kinds text[] := admmgt._kinds(t_separatedb, 'applyMaintenance');
    v_from date := coalesce(p_asof, current_date);
    v_items admmgt.work_item[];
    v_held bigint[] := '{}'::bigint[];
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    PERFORM admmgt._check_call('applyMaintenance', p_parallel, p_tenants, p_server, p_tag);
    PERFORM admmgt._check_window_days(t_numdays, p_asof), admmgt._check_workers('applyMaintenance', p_workers);
    PERFORM admmgt._template(k) FROM unnest(v_kinds) AS k;
    CALL admmgt._begin_call('maintain', 'applyMaintenance', p_wait_seconds, v_run);
    BEGIN
        v_items := admmgt._maintenance_items(v_from, v_from + t_numdays, p_tenants, p_server, p_tag, v_kinds);
        IF NOT coalesce(p_verify, false) THEN
            v_held := admmgt._partitions_held(v_items, v_from, v_from + t_numdays);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('maintain', v_run, v_error);
    IF cardinality(v_items) = 0 THEN
        RAISE NOTICE 'admmgt maintain: no applied script has a RANGE-partitioned table';
    END IF;
    PERFORM admmgt._note_skipped('maintain', v_run, cardinality(v_held), format('every partition through %s', v_from + t_numdays));
    v_items := admmgt._without(v_items, v_held);
    CALL admmgt._run('maintain', v_items, p_parallel, v_run, NULL, p_workers);
    PERFORM admmgt._keep_partitions(v_run, v_items, v_from, v_from + t_numdays);
    CALL admmgt._end_call('maintain', v_run);
END;
$$;
