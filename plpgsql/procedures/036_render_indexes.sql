-- Render layer, part 6: indexes (script_indexes). An index with concurrent = 0 is built in the
-- script's transaction (it blocks writes to the table while it builds). One with concurrent = 1
-- is a part outside any transaction: each target builds it CONCURRENTLY, and on a partitioned
-- table the way that never locks the table against writes: the index on the parent only, each
-- partition's index CONCURRENTLY, then each attached (038_render_parts, _index_*_sql). Partitions
-- that maintenance makes later get it from PostgreSQL, since the parent has it.

CREATE OR REPLACE FUNCTION admmgt._index_columns(p_value text, p_row text, p_order boolean)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a comma-separated list of column names, each checked; with p_order each may add ASC or DESC and NULLS FIRST or LAST */
DECLARE
    v_item text;
    v_m text[];
    v_out text[] := '{}'::text[];
BEGIN
    IF nullif(btrim(p_value), '') IS NULL THEN
        RAISE EXCEPTION 'admmgt: % names no column', p_row
            USING ERRCODE = 'not_null_violation', HINT = 'Set columns to a comma-separated list of column names.';
    END IF;
    FOREACH v_item IN ARRAY string_to_array(p_value, ',') LOOP
        v_m := regexp_match(btrim(v_item), '^(\S+)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?$', 'i');
        IF v_m IS NULL OR (NOT p_order AND (v_m[2] IS NOT NULL OR v_m[3] IS NOT NULL)) THEN
            RAISE EXCEPTION 'admmgt: invalid index column % in %', quote_literal(btrim(v_item)), p_row
                USING ERRCODE = 'invalid_name',
                      HINT = CASE WHEN p_order THEN 'Write a column name, optionally followed by ASC or DESC and NULLS FIRST or NULLS LAST; an expression index is a SQL step.'
                                  ELSE 'Write column names only.' END;
        END IF;
        v_out := v_out || concat_ws(' ', format('%I', admmgt._ident(v_m[1], 'index column', p_row)),
                                    upper(v_m[2]), CASE WHEN v_m[3] IS NOT NULL THEN 'NULLS ' || upper(v_m[3]) END);
    END LOOP;
    RETURN array_to_string(v_out, ', ');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._index_def(p_index admmgt.script_indexes)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: an index row checked and quoted: schema, table, name, unique, and its definition after the table name */
DECLARE
    v_row text := admmgt._row('script_indexes', p_index.id);
BEGIN
    RETURN jsonb_build_object(
        'schema', admmgt._app_schema(p_index.schemaname, v_row),
        'table', admmgt._ident(p_index.tablename, 'table name', v_row),
        'name', admmgt._ident(p_index.indexname, 'index name', v_row),
        'unique', p_index.isunique = 1,
        'tail', format(' USING %s (%s)', p_index.method, admmgt._index_columns(p_index.columns, v_row, true))
                || CASE WHEN nullif(btrim(p_index.include), '') IS NOT NULL
                        THEN format(' INCLUDE (%s)', admmgt._index_columns(p_index.include, v_row, false)) ELSE '' END
                || CASE WHEN nullif(btrim(p_index.whereclause), '') IS NOT NULL
                        THEN format(' WHERE (%s)', admmgt._sql_fragment(p_index.whereclause, 'index predicate', v_row)) ELSE '' END);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._index_create(p_def jsonb, p_concurrently boolean, p_only boolean DEFAULT false)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE INDEX of an index definition on its own table */
SELECT format('CREATE %sINDEX %s%I ON %s%I.%I', CASE WHEN (p_def ->> 'unique')::boolean THEN 'UNIQUE ' ELSE '' END,
              CASE WHEN p_concurrently THEN 'CONCURRENTLY ' ELSE '' END, p_def ->> 'name',
              CASE WHEN p_only THEN 'ONLY ' ELSE '' END, p_def ->> 'schema', p_def ->> 'table') || (p_def ->> 'tail');
$$;

CREATE OR REPLACE FUNCTION admmgt.render_indexes(p_scriptid int, p_concurrently boolean)
RETURNS TABLE (stmt text, source text, txmode text, index_def jsonb)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE INDEX for each script_indexes row of a script whose concurrent flag is p_concurrently: in the script's transaction, or CONCURRENTLY as a part of its own */
SELECT admmgt._index_create(d.def, p_concurrently), admmgt._row('script_indexes', i.id),
       CASE WHEN p_concurrently THEN 'none' ELSE 'script' END, CASE WHEN p_concurrently THEN d.def END
  FROM admmgt.script_indexes i
 CROSS JOIN LATERAL (SELECT admmgt._index_def(i) AS def) d
 WHERE i.scriptid = p_scriptid AND (i.concurrent = 1) = p_concurrently
 ORDER BY i.id;
$$;
