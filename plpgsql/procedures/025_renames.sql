-- Render layer: what the renames and drops of script_table_changes and script_column_changes make
-- of the tables and columns that script_tables and script_table_columns define. Everything that
-- reaches a table of an earlier script by its script_tables row (maintenance, retention, ADD
-- COLUMN, the foreign key check) asks here for its name in a target at a given version.
-- Before the renderers of 030 and later, whose SQL functions call these when they are created.

CREATE OR REPLACE FUNCTION admmgt._name_changes()
RETURNS TABLE (scriptid int, phase int, id bigint, schemaname text, tablename text, columnname text,
               action text, newname text)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: every rename and drop of a table or a column that script rows make, in the order a target runs them (render_steps: a script's column changes, phase 3, before its table changes, phase 4), names folded as the renderers fold them; columnname is NULL for a table's own change */
SELECT c.scriptid, 3, c.id, lower(btrim(c.schemaname)), lower(btrim(c.tablename)), lower(btrim(c.columnname)),
       c.action, lower(btrim(c.newvalue))
  FROM admmgt.script_column_changes c
 WHERE c.action IN ('rename', 'drop')
UNION ALL
SELECT t.scriptid, 4, t.id, lower(btrim(t.schemaname)), lower(btrim(t.tablename)), NULL,
       t.action, lower(btrim(t.newname))
  FROM admmgt.script_table_changes t;
$$;

CREATE OR REPLACE FUNCTION admmgt._name_at(p_schema text, p_table text, p_since int, p_column text,
                                           p_column_since int, p_version int)
RETURNS TABLE (tablename text, columnname text)
LANGUAGE plpgsql STABLE
ROWS 1
SET search_path FROM CURRENT
AS $$
/* purpose: the names that a table created by script p_since (and its column p_column, defined by script p_column_since) has in a target that has every script up to p_version; no row when one of those scripts drops the table or the column. A NULL p_version counts no change (the names as created) */
DECLARE
    v_schema text := lower(btrim(p_schema));
    v_table text := lower(btrim(p_table));
    v_column text := lower(btrim(p_column));
    v_pos record;
    v_change record;
BEGIN
    -- The table is created in phase 1 of its script, so every change of that script comes after it.
    SELECT p_since AS scriptid, 0 AS phase, 0::bigint AS id INTO v_pos;
    LOOP
        SELECT e.* INTO v_change
          FROM admmgt._name_changes() e
         WHERE e.scriptid <= p_version
           AND (e.scriptid, e.phase, e.id) > (v_pos.scriptid, v_pos.phase, v_pos.id)
           AND e.schemaname = v_schema AND e.tablename = v_table
           -- A column change before the column was defined was about another column of that name.
           AND (e.columnname IS NULL OR (e.columnname = v_column AND e.scriptid >= p_column_since))
         ORDER BY e.scriptid, e.phase, e.id
         LIMIT 1;
        EXIT WHEN NOT FOUND;
        IF v_change.action = 'drop' THEN
            RETURN;
        ELSIF v_change.columnname IS NULL THEN
            v_table := v_change.newname;
        ELSE
            v_column := v_change.newname;
        END IF;
        SELECT v_change.scriptid, v_change.phase, v_change.id INTO v_pos;
    END LOOP;
    tablename := v_table;
    columnname := v_column;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._table_at(p_tableid bigint, p_version int)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the name of the table of one script_tables row in a target at p_version (its own name when p_version is NULL); NULL when a script up to p_version drops it */
SELECT n.tablename
  FROM admmgt.script_tables t
 CROSS JOIN LATERAL admmgt._name_at(t.schemaname, t.tablename, t.scriptid, NULL, NULL, p_version) n
 WHERE t.id = p_tableid;
$$;
