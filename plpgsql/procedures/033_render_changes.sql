-- Render layer, part 3: changes to what earlier scripts made: columns (script_column_changes),
-- whole tables (script_table_changes) and constraints (script_constraints). Each returns the
-- statements of one script in row order, with the row each statement comes from.
-- txmode 'alone' starts a transaction of its own (what came before it commits first); the
-- 'script' statements after it join that transaction.

CREATE OR REPLACE FUNCTION admmgt._change_needs(p_value text, p_what text, p_row text, p_hint text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a value the row's action needs, refused naming the row when it is missing or blank */
BEGIN
    IF p_value IS NULL OR btrim(p_value) = '' THEN
        RAISE EXCEPTION 'admmgt: % is missing in %', p_what, p_row
            USING ERRCODE = 'not_null_violation', HINT = p_hint;
    END IF;
    RETURN p_value;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._change_unused(p_value text, p_what text, p_row text, p_action text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a value the row's action would silently ignore: whoever wrote it meant another action */
BEGIN
    IF p_value IS NOT NULL AND btrim(p_value) <> '' THEN
        RAISE EXCEPTION 'admmgt: % sets %, which action % does not use', p_row, p_what, p_action
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Clear %s, or choose the action that takes it.', p_what);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._change_confirmed(p_confirm boolean, p_row text, p_what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a drop runs only when its row says confirm = true: it destroys data in every target, and no rerun brings it back */
BEGIN
    IF p_confirm IS NOT TRUE THEN
        RAISE EXCEPTION 'admmgt: % drops %, but its confirm is not true', p_row, p_what
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A drop destroys the data in the template and in every tenant. Set confirm = true on the row once you mean it.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._not_null_check_name(p_table text, p_column text, p_row text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the name of the CHECK (c IS NOT NULL) that set_not_null adds and drops again: <table>_<column> cut to fit 63 bytes, then _nn_check (not _not_null, which PostgreSQL 18 gives its own NOT NULL constraints) */
SELECT admmgt._ident(left(p_table || '_' || p_column, 54) || '_nn_check', 'constraint name', p_row);
$$;

CREATE OR REPLACE FUNCTION admmgt._set_not_null_stmts(p_schema text, p_table text, p_column text, p_row text)
RETURNS TABLE (stmt text, txmode text, destructive boolean)
LANGUAGE sql IMMUTABLE
ROWS 4
SET search_path FROM CURRENT
AS $$
/* purpose: SET NOT NULL without holding an exclusive lock through a scan of the table: a CHECK added NOT VALID, validated in a transaction of its own (SHARE UPDATE EXCLUSIVE: writes go on), then SET NOT NULL in another, which trusts the valid CHECK instead of scanning (PostgreSQL 12+), and the CHECK dropped in that same transaction */
SELECT x.stmt, x.txmode, false
  FROM (SELECT admmgt._not_null_check_name(p_table, p_column, p_row) AS name) n,
       LATERAL (VALUES
           (1, format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (%I IS NOT NULL) NOT VALID', p_schema, p_table, n.name, p_column), 'script'),
           (2, format('ALTER TABLE %I.%I VALIDATE CONSTRAINT %I', p_schema, p_table, n.name), 'alone'),
           (3, format('ALTER TABLE %I.%I ALTER COLUMN %I SET NOT NULL', p_schema, p_table, p_column), 'alone'),
           (4, format('ALTER TABLE %I.%I DROP CONSTRAINT %I', p_schema, p_table, n.name), 'script')) AS x(n, stmt, txmode)
 ORDER BY x.n;
$$;

CREATE OR REPLACE FUNCTION admmgt._column_change_stmts(p_c admmgt.script_column_changes)
RETURNS TABLE (stmt text, txmode text, destructive boolean)
LANGUAGE plpgsql STABLE
ROWS 4
SET search_path FROM CURRENT
AS $$
/* purpose: the statements of one script_column_changes row, its names, type and fragments checked */
DECLARE
    v_where text := admmgt._row('script_column_changes', p_c.id);
    v_schema text := admmgt._app_schema(p_c.schemaname, v_where);
    v_table text := admmgt._ident(p_c.tablename, 'table name', v_where);
    v_column text := admmgt._ident(p_c.columnname, 'column name', v_where);
BEGIN
    IF p_c.action <> 'type' THEN
        PERFORM admmgt._change_unused(p_c.usingexpr, 'usingexpr', v_where, p_c.action);
    END IF;
    IF p_c.action NOT IN ('type', 'set_default', 'rename') THEN
        PERFORM admmgt._change_unused(p_c.newvalue, 'newvalue', v_where, p_c.action);
    END IF;
    txmode := 'script';
    destructive := false;
    CASE p_c.action
    WHEN 'type' THEN
        stmt := format('ALTER TABLE %I.%I ALTER COLUMN %I TYPE %s%s', v_schema, v_table, v_column,
                       admmgt._datatype(admmgt._change_needs(p_c.newvalue, 'newvalue (the new data type)', v_where,
                                                             'Set newvalue to the type, as in CREATE TABLE: varchar(20), bigint, numeric(12,2).'), v_where),
                       CASE WHEN nullif(btrim(p_c.usingexpr), '') IS NOT NULL
                            THEN format(' USING (%s)', admmgt._sql_fragment(p_c.usingexpr, 'USING expression', v_where)) ELSE '' END);
    WHEN 'set_not_null' THEN
        RETURN QUERY SELECT * FROM admmgt._set_not_null_stmts(v_schema, v_table, v_column, v_where);
        RETURN;
    WHEN 'drop_not_null' THEN
        stmt := format('ALTER TABLE %I.%I ALTER COLUMN %I DROP NOT NULL', v_schema, v_table, v_column);
    WHEN 'set_default' THEN
        -- In parentheses, so that the fragment stays one expression whatever the checks miss.
        stmt := format('ALTER TABLE %I.%I ALTER COLUMN %I SET DEFAULT (%s)', v_schema, v_table, v_column,
                       admmgt._sql_fragment(admmgt._change_needs(p_c.newvalue, 'newvalue (the default expression)', v_where,
                                                                 'Set newvalue to one expression, for example 0 or pg_catalog.now().'),
                                            'default', v_where));
    WHEN 'drop_default' THEN
        stmt := format('ALTER TABLE %I.%I ALTER COLUMN %I DROP DEFAULT', v_schema, v_table, v_column);
    WHEN 'rename' THEN
        stmt := format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', v_schema, v_table, v_column,
                       admmgt._ident(admmgt._change_needs(p_c.newvalue, 'newvalue (the new column name)', v_where,
                                                          'Set newvalue to the new name of the column.'),
                                     'new column name', v_where));
    WHEN 'drop' THEN
        PERFORM admmgt._change_confirmed(p_c.confirm, v_where, format('column %s.%s.%s', v_schema, v_table, v_column));
        stmt := format('ALTER TABLE %I.%I DROP COLUMN %I', v_schema, v_table, v_column);
        destructive := true;
    END CASE;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_column_changes(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: ALTER TABLE ... ALTER/RENAME/DROP COLUMN for each script_column_changes row of a script */
SELECT s.stmt, admmgt._row('script_column_changes', c.id), s.txmode, s.destructive
  FROM admmgt.script_column_changes c
 CROSS JOIN LATERAL admmgt._column_change_stmts(c) WITH ORDINALITY AS s(stmt, txmode, destructive, n)
 WHERE c.scriptid = p_scriptid
 ORDER BY c.id, s.n;
$$;

CREATE OR REPLACE FUNCTION admmgt._table_change_stmt(p_c admmgt.script_table_changes)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statement of one script_table_changes row, its names checked */
DECLARE
    v_where text := admmgt._row('script_table_changes', p_c.id);
    v_schema text := admmgt._app_schema(p_c.schemaname, v_where);
    v_table text := admmgt._ident(p_c.tablename, 'table name', v_where);
BEGIN
    IF p_c.action = 'rename' THEN
        RETURN format('ALTER TABLE %I.%I RENAME TO %I', v_schema, v_table,
                      admmgt._ident(admmgt._change_needs(p_c.newname, 'newname', v_where, 'Set newname to the new name of the table.'),
                                    'new table name', v_where));
    END IF;
    PERFORM admmgt._change_unused(p_c.newname, 'newname', v_where, p_c.action);
    PERFORM admmgt._change_confirmed(p_c.confirm, v_where, format('table %s.%s', v_schema, v_table));
    RETURN format('DROP TABLE %I.%I', v_schema, v_table);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_table_changes(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: ALTER TABLE ... RENAME TO / DROP TABLE for each script_table_changes row of a script */
SELECT admmgt._table_change_stmt(c), admmgt._row('script_table_changes', c.id), 'script', c.action = 'drop'
  FROM admmgt.script_table_changes c
 WHERE c.scriptid = p_scriptid
 ORDER BY c.id;
$$;

CREATE OR REPLACE FUNCTION admmgt._column_list(p_value text, p_row text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: comma-separated column names from a row, each checked, as a quoted list */
SELECT string_agg(format('%I', admmgt._ident(btrim(x.name), 'column name', p_row)), ', ' ORDER BY x.n)
  FROM unnest(string_to_array(admmgt._change_needs(p_value, 'columns', p_row, 'Set columns to the column names, comma separated.'), ','))
       WITH ORDINALITY AS x(name, n);
$$;

CREATE OR REPLACE FUNCTION admmgt._constraint_stmt(p_c admmgt.script_constraints)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statement of one script_constraints row, its names and CHECK expression checked */
DECLARE
    v_where text := admmgt._row('script_constraints', p_c.id);
    v_schema text := admmgt._app_schema(p_c.schemaname, v_where);
    v_table text := admmgt._ident(p_c.tablename, 'table name', v_where);
    v_name text := admmgt._ident(p_c.constraintname, 'constraint name', v_where);
BEGIN
    IF p_c.kind <> 'unique' THEN
        PERFORM admmgt._change_unused(p_c.columns, 'columns', v_where, p_c.kind);
    END IF;
    IF p_c.kind <> 'check' THEN
        PERFORM admmgt._change_unused(p_c.checkexpr, 'checkexpr', v_where, p_c.kind);
    END IF;
    IF p_c.novalidate = 1 AND p_c.kind <> 'check' THEN
        RAISE EXCEPTION 'admmgt: % asks for % NOT VALID, which PostgreSQL does not have', v_where, upper(p_c.kind)
            USING ERRCODE = 'feature_not_supported',
                  HINT = CASE WHEN p_c.kind = 'unique'
                              THEN 'Set novalidate = 0. A UNIQUE constraint checks every row when it is added; to build its index without blocking writes, use script_indexes with isunique = 1 and concurrent = 1.'
                              ELSE 'Set novalidate = 0: validate checks the rows of a constraint added NOT VALID earlier.' END;
    END IF;
    RETURN CASE p_c.kind
        WHEN 'unique' THEN format('ALTER TABLE %I.%I ADD CONSTRAINT %I UNIQUE (%s)', v_schema, v_table, v_name,
                                  admmgt._column_list(p_c.columns, v_where))
        WHEN 'check' THEN format('ALTER TABLE %I.%I ADD CONSTRAINT %I CHECK (%s)%s', v_schema, v_table, v_name,
                                 admmgt._sql_fragment(admmgt._change_needs(p_c.checkexpr, 'checkexpr', v_where,
                                                                           'Set checkexpr to one boolean expression, for example amount >= 0.'),
                                                      'CHECK expression', v_where),
                                 CASE WHEN p_c.novalidate = 1 THEN ' NOT VALID' ELSE '' END)
        ELSE format('ALTER TABLE %I.%I VALIDATE CONSTRAINT %I', v_schema, v_table, v_name) END;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_constraints(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: ADD CONSTRAINT UNIQUE / CHECK [NOT VALID] and VALIDATE CONSTRAINT for each script_constraints row of a script; a VALIDATE runs in a transaction of its own, so that its scan holds only SHARE UPDATE EXCLUSIVE and writes go on */
SELECT admmgt._constraint_stmt(c), admmgt._row('script_constraints', c.id),
       CASE WHEN c.kind = 'validate' THEN 'alone' ELSE 'script' END, false
  FROM admmgt.script_constraints c
 WHERE c.scriptid = p_scriptid
 ORDER BY c.id;
$$;
