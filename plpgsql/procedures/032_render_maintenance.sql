-- Render layer, part 3: the RANGE periods a target at a given script version must have.

CREATE OR REPLACE FUNCTION admmgt._foreign_triggers_guard_sql(p_table text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: PL/pgSQL for a block that is about to move or delete rows of p_table (a qualified name): refuse when a trigger of that table or of a partition of it (pg_partition_tree lists none for a plain table) would run code that neither a superuser nor the role admmgt connects as owns, or has a WHEN condition (which may call anything), since it would run with admmgt's rights */
SELECT format($g$
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                 JOIN pg_catalog.pg_proc f ON f.oid = g.tgfoid
                 JOIN pg_catalog.pg_roles o ON o.oid = f.proowner
                WHERE g.tgrelid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree(%1$L::pg_catalog.regclass) t
                                    UNION ALL SELECT %1$L::pg_catalog.regclass)
                  AND NOT g.tgisinternal AND g.tgenabled <> 'D'
                  AND (g.tgqual IS NOT NULL OR (NOT o.rolsuper AND o.rolname <> current_user))) THEN
        RAISE EXCEPTION 'admmgt: %% has a trigger that runs a function of another role or a WHEN condition; admmgt moves and deletes no rows there', %1$L
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A trigger would run that function with admmgt''s rights. Disable the trigger for the run (ALTER TABLE ... DISABLE TRIGGER ...), or move or delete those rows yourself.';
    END IF;$g$, p_table);
$$;

CREATE OR REPLACE FUNCTION admmgt._period_partition_from_default(p_schema text, p_table text, p_parent text, p_list_value text,
                                                                 p_keycol text, p_start date, p_end date, p_tbs text)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a DO block that creates one missing period partition of a parent with a DEFAULT partition: the default's rows of that period move into it in the same transaction, none lost or doubled, and the count goes to admmgt_moved */
SELECT format('DO %L', format($b$
DECLARE
    v_n bigint;
BEGIN
    IF pg_catalog.to_regclass(%1$L) IS NULL THEN
        IF EXISTS (SELECT 1 FROM %2$I.%3$I WHERE %4$I >= %5$L AND %4$I < %6$L) THEN%10$s
        END IF;
        CREATE TEMP TABLE admmgt_move ON COMMIT DROP AS SELECT * FROM %2$I.%3$I LIMIT 0;
        WITH m AS (DELETE FROM %2$I.%3$I WHERE %4$I >= %5$L AND %4$I < %6$L RETURNING *)
        INSERT INTO admmgt_move SELECT * FROM m;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        CREATE TABLE %2$I.%7$I PARTITION OF %2$I.%8$I FOR VALUES FROM (%5$L) TO (%6$L)%9$s;
        INSERT INTO %2$I.%7$I SELECT * FROM admmgt_move;
        DROP TABLE admmgt_move;
        IF v_n > 0 THEN
            INSERT INTO admmgt_moved VALUES (%1$L, v_n);
        END IF;
    END IF;
END
$b$, format('%I.%I', p_schema, n.part), p_schema, n.default_part, p_keycol, p_start, p_end,
     n.part, p_parent, CASE WHEN p_tbs IS NOT NULL THEN format(' TABLESPACE %I', p_tbs) ELSE '' END,
     admmgt._foreign_triggers_guard_sql(format('%I.%I', p_schema, p_parent))))
  FROM (SELECT admmgt._partition_name(p_table, p_list_value, p_start, format('%I.%I', p_schema, p_table)) AS part,
               -- Named, like the period partitions, after the table's first name: a rename leaves it as it was.
               admmgt._default_partition(CASE WHEN p_list_value IS NULL THEN p_table
                                              ELSE admmgt._partition_name(p_table, p_list_value, NULL, format('%I.%I', p_schema, p_table)) END) AS default_part) n;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_maintenance(p_version int, p_from date, p_to date)
RETURNS TABLE (seq int, stmt text, partition_name text, from_default boolean)
LANGUAGE sql STABLE
ROWS 50
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE TABLE IF NOT EXISTS for every period holding a day from p_from through p_to, for every RANGE-partitioned table of the scripts up to p_version under the name those scripts leave it (none for a table they drop), moving rows out of a DEFAULT partition where the table has one */
SELECT (row_number() OVER (ORDER BY t.id, r.parent, p.period_start))::int,
       CASE WHEN r.hasdefault
            THEN admmgt._period_partition_from_default(r.schemaname, r.tablename, r.parent, r.list_value, r.keycol,
                                                       p.period_start, p.period_end, r.tbs)
            ELSE admmgt._period_partition(r.schemaname, r.tablename, r.parent, r.list_value, r.unit, p.period_start, r.tbs, true) END,
       format('%I.%I', r.schemaname, admmgt._partition_name(r.tablename, r.list_value, p.period_start, '')),
       r.hasdefault
  FROM admmgt.script_tables t
  JOIN admmgt.scripts s ON s.id = t.scriptid
 CROSS JOIN LATERAL admmgt._range_parents(t.id, p_version) AS r
 CROSS JOIN LATERAL admmgt._periods(r.unit, p_from, p_to) AS p
 WHERE s.id <= p_version AND admmgt._check_window(p_from, p_to)
 ORDER BY 1;
$$;

CREATE OR REPLACE FUNCTION admmgt._moves_report_sql()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the last statement of a maintenance batch that moved rows out of DEFAULT partitions: '<partition> <rows>' pairs */
SELECT 'SELECT coalesce(string_agg(part || '' '' || n, '' ''), '''') FROM admmgt_moved';
$$;

CREATE OR REPLACE FUNCTION admmgt.maintenance_batch(p_version int, p_from date, p_to date, p_template text DEFAULT NULL)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one target's maintenance transaction: first a query naming the partitions still missing (the log records them), then the creates, then what moved out of DEFAULT partitions; with p_template (the schema template), in the form schema targets share, every reference to that schema a marker (029_render_schemas.sql) */
WITH m AS (
    SELECT r.seq, r.from_default,
           CASE WHEN p_template IS NULL THEN r.partition_name ELSE admmgt._schema_marked(r.partition_name, p_template) END AS partition_name,
           CASE WHEN p_template IS NULL THEN r.stmt ELSE admmgt._schema_marked(r.stmt, p_template) END AS stmt
      FROM admmgt.render_maintenance(p_version, p_from, p_to) r
)
SELECT CASE WHEN count(*) = 0 THEN NULL ELSE
       ARRAY[format('SELECT coalesce(string_agg(n, %L), %L) FROM unnest(%L::text[]) AS n WHERE to_regclass(n) IS NULL',
                    ' ', '', array_agg(m.partition_name ORDER BY m.seq))]
       || CASE WHEN bool_or(m.from_default)
               THEN ARRAY['CREATE TEMP TABLE IF NOT EXISTS admmgt_moved (part text, n bigint) ON COMMIT DROP'] ELSE '{}'::text[] END
       || array_agg(m.stmt ORDER BY m.seq)
       || CASE WHEN bool_or(m.from_default) THEN ARRAY[admmgt._moves_report_sql()] ELSE '{}'::text[] END END
  FROM m;
$$;
