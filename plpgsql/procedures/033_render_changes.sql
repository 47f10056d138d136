-- Render layer, part 3: changes to what earlier scripts made: columns (script_column_changes),
-- whole tables (script_table_changes) and constraints (script_constraints). Each returns the
-- statements of one script in row order, with the row each statement comes from.

CREATE OR REPLACE FUNCTION admmgt.render_column_changes(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: ALTER TABLE ... ALTER/RENAME/DROP COLUMN for each script_column_changes row of a script */
SELECT NULL::text, NULL::text, NULL::text, NULL::boolean WHERE false;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_table_changes(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: ALTER TABLE ... RENAME TO / DROP TABLE for each script_table_changes row of a script */
SELECT NULL::text, NULL::text, NULL::text, NULL::boolean WHERE false;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_constraints(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: ADD CONSTRAINT UNIQUE / CHECK [NOT VALID] and VALIDATE CONSTRAINT for each script_constraints row of a script */
SELECT NULL::text, NULL::text, NULL::text, NULL::boolean WHERE false;
$$;
