-- Render layer, part 2: a whole script, in the order a target runs it (its parts and ledger: 038).

CREATE OR REPLACE FUNCTION admmgt.render_add_columns(p_scriptid int)
RETURNS SETOF text
LANGUAGE plpgsql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: ALTER TABLE ADD COLUMN for columns a script adds to a table created by an earlier script, under the name the earlier scripts' renames left it */
DECLARE
    v_col admmgt.script_table_columns;
    v_t record;
    v_where text;
    v_table text;
BEGIN
    FOR v_col IN
        SELECT c.* FROM admmgt.script_table_columns c
          LEFT JOIN admmgt.script_tables t ON t.id = c.tableid
         WHERE c.scriptid = p_scriptid AND t.scriptid IS DISTINCT FROM p_scriptid
         ORDER BY c.id
    LOOP
        v_where := admmgt._row('script_table_columns', v_col.id);
        SELECT * INTO v_t FROM admmgt._table_def(v_col.tableid);
        IF v_t.scriptid > p_scriptid THEN
            RAISE EXCEPTION 'admmgt: % adds a column to table id % of the later script %', v_where, v_col.tableid, v_t.scriptid
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'A script can only add columns to tables created by itself or an earlier script.';
        END IF;
        IF v_col.isprimarykey = 1 THEN
            RAISE EXCEPTION 'admmgt: % adds a primary key column to an existing table', v_where
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'The primary key is set when the table is created; add the column with isprimarykey = 0.';
        END IF;
        -- Added in phase 2, before this script's own renames (phase 4).
        v_table := admmgt._table_at(v_col.tableid, p_scriptid - 1);
        IF v_table IS NULL THEN
            RAISE EXCEPTION 'admmgt: % adds a column to %.%, which a script before % drops', v_where, v_t.schemaname, v_t.tablename, p_scriptid
                USING ERRCODE = 'undefined_table',
                      HINT = 'Add columns only to tables that the earlier scripts keep.';
        END IF;
        RETURN NEXT format('ALTER TABLE %I.%I ADD COLUMN %s', v_t.schemaname, v_table, admmgt._column_def(v_col));
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._column_known(p_schema text, p_table text, p_column text, p_scriptid int)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: whether scripts up to p_scriptid define this column of this table, under these names once their renames and drops (column and table changes, which come before foreign keys in a script) are counted */
SELECT EXISTS (
    SELECT 1 FROM admmgt.script_tables t
      JOIN admmgt.script_table_columns c ON c.tableid = t.id
     CROSS JOIN LATERAL admmgt._name_at(t.schemaname, t.tablename, t.scriptid, c.columnname, c.scriptid, p_scriptid) n
     WHERE lower(btrim(t.schemaname)) = p_schema
       AND t.scriptid <= p_scriptid AND c.scriptid <= p_scriptid
       -- Only a row whose names are these, or became these by a rename, can end up with them.
       AND (lower(btrim(t.tablename)) = p_table
            OR EXISTS (SELECT 1 FROM admmgt._name_changes() e WHERE e.columnname IS NULL AND e.newname = p_table))
       AND (lower(btrim(c.columnname)) = p_column
            OR EXISTS (SELECT 1 FROM admmgt._name_changes() e WHERE e.columnname IS NOT NULL AND e.newname = p_column))
       AND n.tablename = p_table AND n.columnname = p_column);
$$;

CREATE OR REPLACE FUNCTION admmgt.render_fkeys(p_scriptid int)
RETURNS SETOF text
LANGUAGE plpgsql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: ALTER TABLE ADD FOREIGN KEY, one per (schema, child, parent, constraint name); rows of one key are ordered by keyorder */
DECLARE
    v_fk record;
    v_name text;
BEGIN
    FOR v_fk IN
        SELECT min(f.id) AS first_id,
               admmgt._app_schema(min(f.schemaname), admmgt._row('script_table_fkeys', min(f.id))) AS schemaname,
               admmgt._ident(min(f.childtablename), 'child table', admmgt._row('script_table_fkeys', min(f.id))) AS child,
               admmgt._ident(min(f.parenttablename), 'parent table', admmgt._row('script_table_fkeys', min(f.id))) AS parent,
               array_agg(admmgt._ident(f.childcolumnname, 'child column', admmgt._row('script_table_fkeys', f.id))
                         ORDER BY f.keyorder, f.id) AS child_cols,
               array_agg(admmgt._ident(f.parentcolumnname, 'parent column', admmgt._row('script_table_fkeys', f.id))
                         ORDER BY f.keyorder, f.id) AS parent_cols,
               array_agg(DISTINCT upper(btrim(coalesce(f.delrule, 'NO ACTION')))) AS rules,
               bool_or(f.novalidate = 1) AS novalidate,
               min(f.constraintname) AS constraintname
          FROM admmgt.script_table_fkeys f
         WHERE f.scriptid = p_scriptid
         GROUP BY lower(f.schemaname), lower(f.childtablename), lower(f.parenttablename), lower(f.constraintname)
         ORDER BY min(f.id)
    LOOP
        IF cardinality(v_fk.rules) <> 1 OR NOT v_fk.rules[1] IN ('CASCADE', 'RESTRICT', 'SET NULL', 'SET DEFAULT', 'NO ACTION') THEN
            RAISE EXCEPTION 'admmgt: invalid delete rule % in %', array_to_string(v_fk.rules, ', '),
                            admmgt._row('script_table_fkeys', v_fk.first_id)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Use one of CASCADE, RESTRICT, SET NULL, SET DEFAULT, NO ACTION for every row of the key.';
        END IF;
        FOR i IN 1 .. cardinality(v_fk.child_cols) LOOP
            IF NOT admmgt._column_known(v_fk.schemaname, v_fk.child, v_fk.child_cols[i], p_scriptid)
               OR NOT admmgt._column_known(v_fk.schemaname, v_fk.parent, v_fk.parent_cols[i], p_scriptid) THEN
                RAISE EXCEPTION 'admmgt: % references %.% (%) -> %.% (%), which scripts up to % do not define',
                                admmgt._row('script_table_fkeys', v_fk.first_id), v_fk.schemaname, v_fk.child,
                                v_fk.child_cols[i], v_fk.schemaname, v_fk.parent, v_fk.parent_cols[i], p_scriptid
                    USING ERRCODE = 'undefined_column',
                          HINT = 'Both tables and columns must be created by this script or an earlier one.';
            END IF;
        END LOOP;
        v_name := admmgt._ident(coalesce(v_fk.constraintname, left(v_fk.child || '_' || v_fk.parent, 58) || '_fkey'),
                                'constraint name', admmgt._row('script_table_fkeys', v_fk.first_id));
        RETURN NEXT format('ALTER TABLE %I.%I ADD CONSTRAINT %I FOREIGN KEY (%s) REFERENCES %I.%I (%s) ON DELETE %s%s',
                           v_fk.schemaname, v_fk.child, v_name,
                           (SELECT string_agg(format('%I', c), ', ') FROM unnest(v_fk.child_cols) c),
                           v_fk.schemaname, v_fk.parent,
                           (SELECT string_agg(format('%I', c), ', ') FROM unnest(v_fk.parent_cols) c),
                           v_fk.rules[1], CASE WHEN v_fk.novalidate THEN ' NOT VALID' ELSE '' END);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_steps(p_scriptid int, p_asof date DEFAULT current_date)
RETURNS TABLE (seq int, stmt text, txmode text, source text, destructive boolean, index_def jsonb)
LANGUAGE plpgsql STABLE
ROWS 50
SET search_path FROM CURRENT
AS $$
/* purpose: every statement of one script, in the order a target runs them, with its transaction mode and the row it comes from; the order is documented in docs/writing-scripts.md */
BEGIN
    PERFORM admmgt._finite_date(p_asof, 'p_asof');
    IF NOT EXISTS (SELECT 1 FROM admmgt.scripts s WHERE s.id = p_scriptid) THEN
        RAISE EXCEPTION 'admmgt: script % does not exist', p_scriptid
            USING ERRCODE = 'no_data_found', HINT = 'See SELECT id, status FROM admmgt.scripts.';
    END IF;
    RETURN QUERY
    SELECT (row_number() OVER (ORDER BY x.phase, x.id, x.n))::int, x.stmt, x.txmode, x.source, x.destructive, x.index_def
      FROM (
        -- A target made or adopted before the schema existed in the template still gets it.
        SELECT 0 AS phase, 0::bigint AS id, 0::bigint AS n, format('CREATE SCHEMA IF NOT EXISTS %I', d.schemaname) AS stmt,
               'script'::text AS txmode, format('schema %s', d.schemaname) AS source, false AS destructive, NULL::jsonb AS index_def
          FROM (SELECT DISTINCT (admmgt._table_def(t.id)).schemaname FROM admmgt.script_tables t
                 WHERE t.scriptid = p_scriptid) d
        UNION ALL
        SELECT 1, t.id, r.n, r.stmt, 'script', admmgt._row('script_tables', t.id), false, NULL
          FROM admmgt.script_tables t
         CROSS JOIN LATERAL admmgt.render_create_table(t.id, p_asof) WITH ORDINALITY AS r(stmt, n)
         WHERE t.scriptid = p_scriptid
        UNION ALL
        SELECT 2, 0, r.n, r.stmt, 'script', 'script_table_columns', false, NULL
          FROM admmgt.render_add_columns(p_scriptid) WITH ORDINALITY AS r(stmt, n)
        UNION ALL
        SELECT 3, 0, r.n, r.stmt, r.txmode, r.source, r.destructive, NULL
          FROM admmgt.render_column_changes(p_scriptid) WITH ORDINALITY AS r(stmt, source, txmode, destructive, n)
        UNION ALL
        SELECT 4, 0, r.n, r.stmt, r.txmode, r.source, r.destructive, NULL
          FROM admmgt.render_table_changes(p_scriptid) WITH ORDINALITY AS r(stmt, source, txmode, destructive, n)
        UNION ALL
        SELECT 5, 0, r.n, r.stmt, r.txmode, r.source, r.destructive, NULL
          FROM admmgt.render_constraints(p_scriptid) WITH ORDINALITY AS r(stmt, source, txmode, destructive, n)
        UNION ALL
        SELECT 6, 0, r.n, r.stmt, 'script', 'script_table_fkeys', false, NULL
          FROM admmgt.render_fkeys(p_scriptid) WITH ORDINALITY AS r(stmt, n)
        UNION ALL
        SELECT 7, 0, r.n, r.stmt, r.txmode, r.source, false, r.index_def
          FROM admmgt.render_indexes(p_scriptid, false) WITH ORDINALITY AS r(stmt, source, txmode, index_def, n)
        UNION ALL
        SELECT 8, 0, r.n, r.stmt, r.txmode, r.source, r.destructive, NULL
          FROM admmgt.render_views(p_scriptid) WITH ORDINALITY AS r(stmt, source, txmode, destructive, n)
        UNION ALL
        SELECT 9, 0, r.n, r.stmt, r.txmode, r.source, r.destructive, NULL
          FROM admmgt.render_triggers(p_scriptid) WITH ORDINALITY AS r(stmt, source, txmode, destructive, n)
        UNION ALL
        SELECT 10, p.id, 1, admmgt._call_stmt(p.proccallstmt, admmgt._row('script_procs', p.id)), 'script',
               admmgt._row('script_procs', p.id), false, NULL
          FROM admmgt.script_procs p WHERE p.scriptid = p_scriptid
        UNION ALL
        SELECT 11, 0, r.n, r.stmt, r.txmode, r.source, false, NULL
          FROM admmgt.render_sql_steps(p_scriptid) WITH ORDINALITY AS r(stmt, txmode, source, n)
        UNION ALL
        SELECT 12, 0, r.n, r.stmt, r.txmode, r.source, false, r.index_def
          FROM admmgt.render_indexes(p_scriptid, true) WITH ORDINALITY AS r(stmt, source, txmode, index_def, n)
      ) x;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_script(p_scriptid int, p_asof date DEFAULT current_date)
RETURNS TABLE (seq int, stmt text)
LANGUAGE sql STABLE
ROWS 50
SET search_path FROM CURRENT
AS $$
/* purpose: every statement of one script, in the order a target runs them (render_steps without the modes) */
SELECT s.seq, s.stmt FROM admmgt.render_steps(p_scriptid, p_asof) s ORDER BY s.seq;
$$;
