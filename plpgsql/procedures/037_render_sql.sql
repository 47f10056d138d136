-- Render layer, part 7: plain SQL steps (script_sql).

CREATE OR REPLACE FUNCTION admmgt.render_sql_steps(p_scriptid int)
RETURNS TABLE (stmt text, txmode text, source text)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statements of a script's SQL steps, in seq order */
SELECT NULL::text, NULL::text, NULL::text WHERE false;
$$;
