-- Applied scripts are frozen. When the template starts a script, its parts as rendered then are
-- stored (admmgt.script_parts) with a checksum of its rows; every target that applies it later,
-- today or in a year, runs exactly those parts. Once the template has the script, its rows cannot
-- be changed any more (a trigger refuses it; write a new script); before that, changing a row
-- lets go of the frozen parts, so the next run renders the rows as they are. admmgt.script_drift()
-- shows a frozen script whose rows were changed all the same (triggers disabled).

CREATE OR REPLACE FUNCTION admmgt._script_row_tables()
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the tables whose rows make up scripts, each with a scriptid column (partitions belong to a script through their table) */
SELECT ARRAY['script_tables', 'script_table_columns', 'script_table_fkeys', 'script_procs', 'script_sql', 'script_indexes',
             'script_column_changes', 'script_table_changes', 'script_constraints', 'script_views', 'script_triggers'];
$$;

CREATE OR REPLACE FUNCTION admmgt._rows_checksum(p_scriptid int)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: md5 of everything a script's rows say that renders into its statements (not their status, creation time or a table's lifecycle, nor its down steps) */
DECLARE
    v_table text;
    v_rows jsonb;
    v_all text := '';
BEGIN
    FOREACH v_table IN ARRAY admmgt._script_row_tables() LOOP
        -- Down steps are no part of what the template applied (the way back may be learned later),
        -- and direction is left out so that the checksum of a script frozen before it existed holds.
        EXECUTE format('SELECT jsonb_agg(to_jsonb(x) - ''status'' - ''created_date'' - ''lifecycle'' - ''direction'' ORDER BY x.id) FROM admmgt.%I x WHERE x.scriptid = $1%s',
                       v_table, CASE WHEN v_table = 'script_sql' THEN ' AND x.direction = ''up''' ELSE '' END)
           INTO v_rows USING p_scriptid;
        v_all := v_all || v_table || ':' || coalesce(v_rows::text, '[]') || E'\n';
    END LOOP;
    SELECT jsonb_agg(to_jsonb(p) - 'created_date' ORDER BY p.id) INTO v_rows
      FROM admmgt.script_table_partitions p JOIN admmgt.script_tables t ON t.id = p.tableid
     WHERE t.scriptid = p_scriptid;
    RETURN md5(v_all || 'script_table_partitions:' || coalesce(v_rows::text, '[]'));
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._freeze_scripts(p_upto int, p_asof date)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: store the parts of every ready or applied script up to p_upto that has none yet, as they render now */
DECLARE
    v_id int;
BEGIN
    FOR v_id IN SELECT s.id FROM admmgt.scripts s
                 WHERE s.id <= p_upto AND s.status IN (1, 2)
                   AND NOT EXISTS (SELECT 1 FROM admmgt.script_parts f WHERE f.scriptid = s.id)
                 ORDER BY s.id LOOP
        INSERT INTO admmgt.script_parts SELECT * FROM admmgt._render_parts(v_id, p_asof);
        UPDATE admmgt.scripts SET frozen_at = now(), rows_checksum = admmgt._rows_checksum(v_id) WHERE id = v_id;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._unfreeze(p_scriptid int)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: let go of a script's frozen parts (it failed on the template, or its rows change before the template has it) */
DELETE FROM admmgt.script_parts WHERE scriptid = p_scriptid;
UPDATE admmgt.scripts SET frozen_at = NULL, rows_checksum = NULL WHERE id = p_scriptid AND frozen_at IS NOT NULL;
$$;

CREATE OR REPLACE FUNCTION admmgt._template_started(p_scriptid int)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: whether the template has committed any of a script (the whole of it, or a first part of a script in parts): its parts may then not change, or a rerun would repeat or skip some */
SELECT EXISTS (
    SELECT 1 FROM admmgt.vendor_db_settings v
      JOIN admmgt.script_log l ON l.scriptid = p_scriptid AND l.operation = 'apply' AND l.outcome IN ('ok', 'already applied')
                              AND lower(l.dbname) = lower(btrim(v.dbname)) AND l.server = coalesce(v.server, 'local')
     WHERE v.istemplate AND NOT coalesce(v.deleted, false)
       -- A rollback of the script on the template since undid what it committed.
       AND NOT EXISTS (SELECT 1 FROM admmgt.script_log b
                        WHERE b.scriptid = p_scriptid AND b.operation = 'rollback' AND b.outcome = 'ok' AND b.id > l.id
                          AND lower(b.dbname) = lower(btrim(v.dbname)) AND b.server = l.server))
OR EXISTS (SELECT 1 FROM admmgt.vendor_db_settings v
            WHERE v.istemplate AND NOT coalesce(v.deleted, false) AND coalesce(v.scriptversion, 0) >= p_scriptid);
$$;

CREATE OR REPLACE FUNCTION admmgt._guard_frozen_rows()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a change to a row of a script the template has applied or begun (its status and a table's lifecycle may change, and its down steps); before that, a change lets go of the script's frozen parts */
DECLARE
    v_rows jsonb[] := '{}'::jsonb[];
    v_row jsonb;
    v_scriptid int;
BEGIN
    -- status moves with the runs; lifecycle is the retention policy applyLifecycle() follows, not a statement.
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'status' - 'lifecycle') = (to_jsonb(OLD) - 'status' - 'lifecycle') THEN
        RETURN NEW;
    END IF;
    -- An UPDATE changes the script the row leaves as well as the one it joins.
    IF TG_OP <> 'INSERT' THEN v_rows := v_rows || to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN v_rows := v_rows || to_jsonb(NEW); END IF;
    FOREACH v_row IN ARRAY v_rows LOOP
        -- A down step is not what the template ran: it may be added or changed at any time.
        CONTINUE WHEN TG_TABLE_NAME = 'script_sql' AND v_row ->> 'direction' = 'down';
        v_scriptid := CASE WHEN TG_TABLE_NAME = 'script_table_partitions'
                           THEN (SELECT t.scriptid FROM admmgt.script_tables t WHERE t.id = (v_row ->> 'tableid')::bigint)
                           ELSE (v_row ->> 'scriptid')::int END;
        IF EXISTS (SELECT 1 FROM admmgt.scripts s WHERE s.id = v_scriptid AND s.frozen_at IS NOT NULL) THEN
            IF admmgt._template_started(v_scriptid) THEN
                RAISE EXCEPTION 'admmgt: script % is %: admmgt.% id % cannot be changed', v_scriptid,
                                CASE WHEN EXISTS (SELECT 1 FROM admmgt.scripts s WHERE s.id = v_scriptid AND s.status = 3)
                                     THEN 'frozen: the template committed a part of it before it failed' ELSE 'applied and frozen' END,
                                TG_TABLE_NAME, v_row ->> 'id'
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = CASE WHEN EXISTS (SELECT 1 FROM admmgt.scripts s WHERE s.id = v_scriptid AND s.status = 3)
                                      THEN 'Changed parts would make a rerun on the template repeat or skip some. Fix the cause on the template, then retry_script(); or resolve_part() the failed part and put what is left in a new script.'
                                      ELSE 'Every target runs the script as the template ran it. Write a new script for the change.' END;
            END IF;
            PERFORM admmgt._unfreeze(v_scriptid);
        END IF;
    END LOOP;
    RETURN coalesce(NEW, OLD);
END;
$$;

DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY admmgt._script_row_tables() || 'script_table_partitions'::text LOOP
        EXECUTE format('CREATE TRIGGER admmgt_frozen_rows BEFORE INSERT OR UPDATE OR DELETE ON admmgt.%I
                        FOR EACH ROW EXECUTE FUNCTION admmgt._guard_frozen_rows()', v_table);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.script_drift()
RETURNS TABLE (scriptid int, frozen_at timestamptz, frozen_checksum text, rows_checksum text)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: frozen scripts whose rows no longer say what the template applied (every target still runs the frozen parts) */
SELECT s.id, s.frozen_at, s.rows_checksum, admmgt._rows_checksum(s.id)
  FROM admmgt.scripts s
 WHERE s.frozen_at IS NOT NULL AND s.rows_checksum IS DISTINCT FROM admmgt._rows_checksum(s.id)
 ORDER BY s.id;
$$;
