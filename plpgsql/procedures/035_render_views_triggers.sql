-- Render layer, part 5: views (script_views) and triggers with their functions (script_triggers).

CREATE OR REPLACE FUNCTION admmgt.render_views(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE [OR REPLACE] [MATERIALIZED] VIEW / DROP VIEW for each script_views row of a script */
SELECT NULL::text, NULL::text, NULL::text, NULL::boolean WHERE false;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_triggers(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the trigger function (when a body is given) and CREATE TRIGGER / DROP TRIGGER for each script_triggers row of a script */
SELECT NULL::text, NULL::text, NULL::text, NULL::boolean WHERE false;
$$;
