-- Render layer, part 6: indexes (script_indexes).

CREATE OR REPLACE FUNCTION admmgt.render_indexes(p_scriptid int, p_concurrently boolean)
RETURNS TABLE (stmt text, source text, txmode text, index_schema text, index_name text)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE INDEX for each script_indexes row of a script whose concurrent flag is p_concurrently */
SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::text WHERE false;
$$;
