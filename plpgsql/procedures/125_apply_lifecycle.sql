-- CALL admmgt.applyLifecycle();   (retention from script_tables.lifecycle)

CREATE OR REPLACE FUNCTION admmgt._lifecycle_items(p_asof date, p_plan boolean, p_tenants text[] DEFAULT NULL,
                                                   p_server text DEFAULT NULL, p_tag text DEFAULT NULL)
RETURNS admmgt.work_item[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: per chosen created target with retention policies: the lifecycle block (it commits as it goes, so it runs outside a transaction block), then the read-back of what it did, on the same connection */
WITH batches AS MATERIALIZED (
    -- Schema targets share one form of each version's block: it names its tables in strings too,
    -- which admmgt wrote from checked names, so the template schema is marked everywhere in it.
    SELECT x.version, x.schema_mode,
           CASE WHEN x.schema_mode THEN admmgt._schema_marked(admmgt.render_lifecycle(x.version, p_asof, p_plan), admmgt._schema_template_name())
                ELSE admmgt.render_lifecycle(x.version, p_asof, p_plan) END AS stmt
      FROM (SELECT DISTINCT t.version, t.nsp IS NOT NULL AS schema_mode FROM admmgt.targets t) x
)
SELECT coalesce(array_agg(i.item ORDER BY t.istemplate DESC, t.servertemplate DESC, t.id, i.n), '{}')
  FROM admmgt.targets t
  JOIN batches b ON b.version = t.version AND b.schema_mode = (t.nsp IS NOT NULL) AND b.stmt IS NOT NULL
                AND admmgt._selected(t, p_tenants, p_server, p_tag)
 CROSS JOIN LATERAL (VALUES (1, admmgt._target_item('retention', t, NULL, admmgt._for_schema(ARRAY[b.stmt], t.nsp), false)),
                            (2, admmgt._target_item('retention_report', t, NULL, ARRAY[admmgt._lifecycle_report_sql()], false))) AS i(n, item);
$$;

CREATE OR REPLACE FUNCTION admmgt._book_retention(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a lifecycle block: it logs nothing itself when it succeeds; its read-back, the next item, says what it dropped, detached or deleted (the run forgot the target's upkeep records before it started: _forget_upkeep_of) */
SELECT admmgt._success_lines(p_booking, '{}');
$$;

CREATE OR REPLACE FUNCTION admmgt._book_retention_report(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a lifecycle read-back: one line per object dropped, detached or deleted from, with its rows */
SELECT admmgt._success_lines(p_booking,
    (SELECT array_agg(format('%s %s: %s rows', split_part(l, '|', 2), split_part(l, '|', 1), split_part(l, '|', 3)))
       FROM regexp_split_to_table(nullif(p_state.outputs[1], ''), E'\n') AS l));
$$;

CREATE OR REPLACE PROCEDURE admmgt.applylifecycle(p_asof date DEFAULT current_date, p_plan boolean DEFAULT false,
                                                  p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0,
                                                  p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL, p_tag text DEFAULT NULL,
                                                  p_workers int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: apply every table's retention policy in the template and every created tenant (or the chosen ones): drop or detach expired RANGE partitions, or delete expired rows in batches; with p_plan, only log what it would do; p_workers: the targets spread over that many sessions on the admin database, each with p_parallel targets at once (default 1), as in applyScripts */
DECLARE
    v_items admmgt.work_item[];
    v_run bigint;
BEGIN
    PERFORM admmgt._check_call('applyLifecycle', p_parallel), admmgt._check_workers('applyLifecycle', p_workers);
    PERFORM admmgt._check_selection('applyLifecycle', p_tenants, p_server, p_tag);
    -- An as-of day that never comes would make every partition expired.
    PERFORM admmgt._finite_date(coalesce(p_asof, current_date), 'p_asof');
    PERFORM admmgt._template(k) FROM unnest(admmgt._kinds(NULL, 'applyLifecycle')) AS k;
    v_items := admmgt._lifecycle_items(coalesce(p_asof, current_date), coalesce(p_plan, false), p_tenants, p_server, p_tag);
    IF cardinality(v_items) = 0 THEN
        RAISE NOTICE 'admmgt lifecycle: no applied script has a table with a lifecycle';
        RETURN;
    END IF;
    CALL admmgt._begin_call('lifecycle', 'applyLifecycle', p_wait_seconds, v_run);
    CALL admmgt._run('lifecycle', v_items, p_parallel, v_run, NULL, p_workers);
    CALL admmgt._end_call('lifecycle', v_run);
END;
$$;
