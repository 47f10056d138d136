-- Render layer, part 3: the RANGE periods a target at a given script version must have.

CREATE OR REPLACE FUNCTION admmgt.render_maintenance(p_version int, p_from date, p_to date)
RETURNS TABLE (seq int, stmt text, partition_name text)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE TABLE IF NOT EXISTS for every period holding a day from p_from through p_to, for every RANGE-partitioned table of the scripts up to p_version */
SELECT (row_number() OVER (ORDER BY t.id, r.parent, p.period_start))::int,
       admmgt._period_partition(r.schemaname, r.tablename, r.parent, r.list_value, r.unit, p.period_start, r.tbs, true),
       format('%I.%I', r.schemaname, admmgt._partition_name(r.tablename, r.list_value, p.period_start, ''))
  FROM admmgt.script_tables t
  JOIN admmgt.scripts s ON s.id = t.scriptid
 CROSS JOIN LATERAL admmgt._range_parents(t.id) AS r
 CROSS JOIN LATERAL admmgt._periods(r.unit, p_from, p_to) AS p
 WHERE s.id <= p_version
 ORDER BY 1;
$$;

CREATE OR REPLACE FUNCTION admmgt.maintenance_batch(p_version int, p_from date, p_to date)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one target's maintenance transaction: first a query naming the partitions still missing (the log records them), then the creates */
SELECT CASE WHEN count(*) = 0 THEN NULL ELSE
       ARRAY[format('SELECT coalesce(string_agg(n, %L), %L) FROM unnest(%L::text[]) AS n WHERE to_regclass(n) IS NULL',
                    ' ', '', array_agg(m.partition_name ORDER BY m.seq))]
       || array_agg(m.stmt ORDER BY m.seq) END
  FROM admmgt.render_maintenance(p_version, p_from, p_to) m;
$$;
