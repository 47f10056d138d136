-- Render layer, part 4: retention from script_tables.lifecycle, e.g.
--   {"status": "X", "inactive_date": "current_date-100"}
-- Keys are column names. Exactly one value reads current_date-N: rows whose column is older than
-- N days before the reference day expire. Every other value must be equal. "_action": "detach"
-- detaches expired partitions instead of dropping them.

CREATE OR REPLACE FUNCTION admmgt._lifecycle_column(p_table admmgt.script_tables, p_column text, p_version int)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a column a retention policy names (as the table's scripts define it), under the name the scripts up to p_version give it; refused when it is no column of the table or those scripts drop it */
DECLARE
    v_where text := admmgt._row('script_tables', p_table.id);
    v_since int;
    v_name text;
BEGIN
    SELECT min(c.scriptid) INTO v_since FROM admmgt.script_table_columns c
     WHERE c.tableid = p_table.id AND lower(btrim(c.columnname)) = p_column;
    IF v_since IS NULL THEN
        RAISE EXCEPTION 'admmgt: lifecycle of % names %, which is not a column of the table', v_where, p_column
            USING ERRCODE = 'undefined_column', HINT = 'Use the table''s column names as keys.';
    END IF;
    SELECT n.columnname INTO v_name
      FROM admmgt._name_at(p_table.schemaname, p_table.tablename, p_table.scriptid, p_column, v_since, p_version) n;
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'admmgt: lifecycle of % names column %, which the scripts up to % drop', v_where, p_column, p_version
            USING ERRCODE = 'undefined_column',
                  HINT = 'Change the lifecycle of the table so that it names the columns it keeps (by the names it was created with), or clear it.';
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._lifecycle_policy(p_tableid bigint, p_version int DEFAULT NULL)
RETURNS TABLE (agecol text, days int, conds text[], eqs jsonb, action text)
LANGUAGE plpgsql STABLE
ROWS 1
SET search_path FROM CURRENT
AS $$
/* purpose: the checked retention policy of one table (no row when it has none, or when the scripts up to p_version drop the table); with p_version, its columns under the names those scripts give them */
DECLARE
    v_row admmgt.script_tables;
    v_where text := admmgt._row('script_tables', p_tableid);
    v_key text;
    v_val jsonb;
    v_col text;
    v_m text[];
BEGIN
    SELECT * INTO v_row FROM admmgt.script_tables t WHERE t.id = p_tableid;
    IF v_row.lifecycle IS NULL OR v_row.lifecycle = '{}'::jsonb
       OR (p_version IS NOT NULL AND admmgt._table_at(p_tableid, p_version) IS NULL) THEN
        RETURN;
    END IF;
    IF jsonb_typeof(v_row.lifecycle) <> 'object' THEN
        RAISE EXCEPTION 'admmgt: lifecycle of % is not a JSON object', v_where
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Write it as {"column": "current_date-100", "other_column": "value"}.';
    END IF;
    conds := '{}';
    eqs := '{}';
    action := 'drop';
    FOR v_key, v_val IN SELECT * FROM jsonb_each(v_row.lifecycle) LOOP
        IF v_key = '_action' THEN
            action := lower(v_val #>> '{}');
            IF action NOT IN ('drop', 'detach') THEN
                RAISE EXCEPTION 'admmgt: lifecycle of % has _action %, not drop or detach', v_where, v_val
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave _action out to drop expired partitions.';
            END IF;
            CONTINUE;
        END IF;
        v_col := admmgt._lifecycle_column(v_row, admmgt._ident(v_key, 'lifecycle column', v_where), p_version);
        v_m := regexp_match(v_val #>> '{}', '^\s*current_date\s*-\s*([0-9]+)\s*$', 'i');
        IF v_m IS NOT NULL THEN
            IF agecol IS NOT NULL THEN
                RAISE EXCEPTION 'admmgt: lifecycle of % has two current_date-N conditions', v_where
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'Keep one age condition; the others compare for equality.';
            END IF;
            agecol := v_col;
            days := v_m[1]::int;
        ELSE
            conds := conds || format('%I = %L', v_col, v_val #>> '{}');
            eqs := eqs || jsonb_build_object(v_col, v_val #>> '{}');
        END IF;
    END LOOP;
    IF agecol IS NULL THEN
        RAISE EXCEPTION 'admmgt: lifecycle of % has no current_date-N condition', v_where
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Say which column ages out, e.g. {"inactive_date": "current_date-100"}.';
    END IF;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._lifecycle_table_sql(p_tableid bigint, p_asof date, p_plan boolean, p_version int)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the PL/pgSQL that applies one table's policy in a target at p_version, under the names its scripts leave the table and its columns (nothing when they drop it): drop (or detach) the RANGE partitions entirely older than the cutoff where the age column is their key and the equality conditions pick them out; else delete the matching rows in batches of 10,000, committing after each */
WITH t AS (SELECT d.schemaname, admmgt._table_at(p_tableid, p_version) AS tablename FROM admmgt._table_def(p_tableid) d),
     p AS (SELECT * FROM admmgt._lifecycle_policy(p_tableid, p_version)),
     lists AS (SELECT n.columnname AS partcol
                 FROM admmgt._table_def(p_tableid) d
                CROSS JOIN admmgt._partition_spec(p_tableid) s
                CROSS JOIN LATERAL admmgt._name_at(d.schemaname, d.tablename, d.scriptid, s.partcol, d.scriptid, p_version) n
                WHERE s.parttype = 'list' LIMIT 1),
     parents AS (
        SELECT r.* FROM admmgt._range_parents(p_tableid, p_version) r, p
         WHERE r.keycol = p.agecol
           AND ((r.list_value IS NULL AND p.eqs = '{}'::jsonb)
             OR (r.list_value IS NOT NULL AND p.eqs = jsonb_build_object((SELECT partcol FROM lists), r.list_value))))
SELECT CASE WHEN EXISTS (SELECT 1 FROM parents) THEN
    (SELECT string_agg(format($b$
    IF pg_catalog.to_regclass(%1$L) IS NOT NULL THEN
        FOR v_part IN SELECT c.oid::regclass::text AS rel,
                             (regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1] AS upper
                        FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                       WHERE i.inhparent = %1$L::regclass ORDER BY 1 LOOP
            CONTINUE WHEN v_part.upper IS NULL OR v_part.upper::timestamptz > %2$L::timestamptz;
            EXECUTE 'SELECT count(*) FROM ' || v_part.rel INTO v_n;
            IF NOT %3$L THEN
                EXECUTE format('ALTER TABLE %%s DETACH PARTITION %%s', %1$L, v_part.rel);
                IF %4$L = 'drop' THEN
                    EXECUTE 'DROP TABLE ' || v_part.rel;
                END IF;
            END IF;
            INSERT INTO admmgt_lifecycle VALUES (v_part.rel, %5$L, v_n);
            IF NOT %3$L THEN
                COMMIT;
            END IF;
        END LOOP;
    END IF;$b$, format('%I.%I', r.schemaname, r.parent), p_asof - p.days, p_plan, p.action,
                CASE WHEN p_plan THEN 'would ' || p.action ELSE p.action END), '')
       FROM parents r, p)
ELSE
    (SELECT format($b$
    IF pg_catalog.to_regclass(%1$L) IS NOT NULL THEN
        IF %3$L THEN
            SELECT count(*) INTO v_n FROM %1$s WHERE %2$s;
        ELSE%5$s
            v_n := 0;
            LOOP
                DELETE FROM %1$s WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %1$s WHERE %2$s LIMIT 10000);
                GET DIAGNOSTICS v_batch = ROW_COUNT;
                v_n := v_n + v_batch;
                COMMIT;
                EXIT WHEN v_batch < 10000;
            END LOOP;
        END IF;
        INSERT INTO admmgt_lifecycle VALUES (%1$L, %4$L, v_n);
    END IF;$b$, format('%I.%I', t.schemaname, t.tablename),
       array_to_string(p.conds || format('%I < %L', p.agecol, p_asof - p.days), ' AND '), p_plan,
       CASE WHEN p_plan THEN 'would delete' ELSE 'delete' END, admmgt._foreign_triggers_guard_sql(format('%I.%I', t.schemaname, t.tablename)))
       FROM t, p)
END
 WHERE EXISTS (SELECT 1 FROM p);
$$;

CREATE OR REPLACE FUNCTION admmgt.render_lifecycle(p_version int, p_asof date, p_plan boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one DO statement that applies (or, with p_plan, only measures) every retention policy of the scripts up to p_version in a target; what it did lands in the temp table admmgt_lifecycle; NULL when no table has a policy */
SELECT 'DO ' || quote_literal(format($b$
DECLARE
    v_part record;
    v_n bigint;
    v_batch bigint;
BEGIN
    PERFORM pg_catalog.set_config('lock_timeout', %L, false);
    CREATE TEMP TABLE IF NOT EXISTS admmgt_lifecycle (obj text, action text, n bigint);
%s
END$b$, coalesce(nullif(current_setting('admmgt.lock_timeout', true), ''), '5s'), string_agg(x.body, E'\n' ORDER BY x.id)))
  FROM (SELECT t.id, admmgt._lifecycle_table_sql(t.id, admmgt._finite_date(p_asof, 'p_asof'), p_plan, p_version) AS body
          FROM admmgt.script_tables t WHERE t.scriptid <= p_version AND t.lifecycle IS NOT NULL) x
 WHERE x.body IS NOT NULL
HAVING count(*) > 0;
$$;

CREATE OR REPLACE FUNCTION admmgt._lifecycle_report_sql()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statement that reads back what a target's lifecycle block did: 'object|action|rows' lines */
SELECT 'SELECT coalesce(string_agg(obj || ''|'' || action || ''|'' || n, E''\n''), '''') FROM admmgt_lifecycle';
$$;
