-- Upkeep records: what maintenance (upkeep_partitions) and refresh (upkeep_refresh) last made sure
-- of in each target, so that applyMaintenance and the refreshes leave out, without connecting,
-- every target that already holds what they would send it. A record is written only for a target
-- whose batch succeeded in the run, and forgotten whenever the target may have changed since.

CREATE OR REPLACE FUNCTION admmgt._forget_upkeep()
RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: trigger of vendor_db_settings: a target whose version, status or place changed (a script applied or rolled back, mark-applied, created, adopted, baselined, dropped) may have other partitions and routines than its records say, so they no longer count */
BEGIN
    DELETE FROM admmgt.upkeep_partitions WHERE target_id = NEW.id;
    DELETE FROM admmgt.upkeep_refresh WHERE target_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER admmgt_forget_upkeep AFTER UPDATE ON admmgt.vendor_db_settings
    FOR EACH ROW
    WHEN (OLD.scriptversion IS DISTINCT FROM NEW.scriptversion OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.deleted IS DISTINCT FROM NEW.deleted OR OLD.dbname IS DISTINCT FROM NEW.dbname
          OR OLD.server IS DISTINCT FROM NEW.server OR OLD.kind IS DISTINCT FROM NEW.kind
          OR OLD.schema_db IS DISTINCT FROM NEW.schema_db)
    EXECUTE FUNCTION admmgt._forget_upkeep();

CREATE OR REPLACE FUNCTION admmgt._forget_upkeep_of(p_items admmgt.work_item[])
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: before a run, forget the upkeep records of every target that one of its items may change (a script or a part of one, which may commit statements and then stop before the version moves; a rollback; a lifecycle block, which drops partitions outside a transaction): the next maintenance and refresh connect to it; true when a record was forgotten */
DECLARE
    v_ids bigint[] := ARRAY(SELECT DISTINCT i.target_id FROM unnest(p_items) i WHERE i.kind IN ('script', 'rollback', 'retention'));
    v_n int;
    v_m int;
BEGIN
    IF cardinality(v_ids) = 0 THEN
        RETURN false;
    END IF;
    DELETE FROM admmgt.upkeep_partitions WHERE target_id = ANY (v_ids);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    DELETE FROM admmgt.upkeep_refresh WHERE target_id = ANY (v_ids);
    GET DIAGNOSTICS v_m = ROW_COUNT;
    RETURN v_n + v_m > 0;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._same_target(p_target admmgt.targets, p_item admmgt.work_item)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: whether a created target is still where, and at the version (the item's scriptid), an upkeep item of it was made for: a rename, a move to another server or database, or an apply or rollback during the run means what the item did is not what the target is now */
SELECT p_target.id = p_item.target_id AND p_target.version = p_item.scriptid AND p_target.dbname = p_item.dbname
       AND p_target.server IS NOT DISTINCT FROM p_item.server AND p_target.conn_db = p_item.conn_db;
$$;

CREATE OR REPLACE FUNCTION admmgt._partitions_held(p_items admmgt.work_item[], p_from date, p_to date)
RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the targets of the maintenance items p_items (scriptid: the version rendered for) whose record holds every day from p_from through p_to at that version */
SELECT coalesce(array_agg(u.target_id), '{}')
  FROM unnest(p_items) i
  JOIN admmgt.upkeep_partitions u ON u.target_id = i.target_id
 WHERE u.scriptversion = i.scriptid AND u.from_day <= p_from AND u.to_day >= p_to;
$$;

CREATE OR REPLACE FUNCTION admmgt._keep_partitions(p_run_id bigint, p_items admmgt.work_item[], p_from date, p_to date)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: for each target whose maintenance item succeeded in the run and which is still where and at the version it was rendered for, record the window [p_from, p_to]: merged with its record at that version when they overlap or touch, in its place otherwise */
INSERT INTO admmgt.upkeep_partitions AS u (target_id, scriptversion, from_day, to_day, run_id)
SELECT i.target_id, i.scriptid,
       CASE WHEN m.merge THEN least(o.from_day, p_from) ELSE p_from END,
       CASE WHEN m.merge THEN greatest(o.to_day, p_to) ELSE p_to END, p_run_id
  FROM unnest(p_items) i
  JOIN admmgt.target_results r ON r.operation = 'maintain' AND r.scriptid = 0 AND r.target_id = i.target_id
                               AND r.run_id = p_run_id AND r.ok
  -- The id equality lets the planner join by key: _same_target alone is opaque (never inlined) and
  -- would be called for every pair of item and target.
  JOIN admmgt.targets t ON t.id = i.target_id AND admmgt._same_target(t, i)
  LEFT JOIN admmgt.upkeep_partitions o ON o.target_id = i.target_id
 CROSS JOIN LATERAL (SELECT coalesce(o.scriptversion = i.scriptid AND o.from_day <= p_to + 1 AND o.to_day >= p_from - 1, false) AS merge) m
ON CONFLICT (target_id) DO UPDATE
   SET scriptversion = EXCLUDED.scriptversion, from_day = EXCLUDED.from_day, to_day = EXCLUDED.to_day,
       run_id = EXCLUDED.run_id, recorded_at = clock_timestamp();
$$;

CREATE OR REPLACE FUNCTION admmgt._digest(p_stmts text[])
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the digest of a rendered batch, statement boundaries included (the array's text form quotes each element) */
SELECT md5(p_stmts::text);
$$;

CREATE OR REPLACE FUNCTION admmgt._refresh_held(p_items admmgt.work_item[], p_refresh text)
RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the targets of the refresh items p_items (scriptid: the target's version) that were last pushed (p_refresh: routines or views) exactly the batch their item holds now, at that version */
SELECT coalesce(array_agg(u.target_id), '{}')
  FROM unnest(p_items) i
  JOIN admmgt.upkeep_refresh u ON u.target_id = i.target_id AND u.refresh = p_refresh
 WHERE u.scriptversion = i.scriptid AND u.digest = admmgt._digest(i.stmts);
$$;

CREATE OR REPLACE FUNCTION admmgt._keep_refresh(p_run_id bigint, p_items admmgt.work_item[], p_refresh text)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: for each target whose refresh item succeeded in the run and which is still where and at the version it had then (an apply beside the refresh may have replaced routines since), record the digest of the batch it committed */
INSERT INTO admmgt.upkeep_refresh AS u (target_id, refresh, scriptversion, digest, run_id)
SELECT i.target_id, p_refresh, i.scriptid, admmgt._digest(i.stmts), p_run_id
  FROM unnest(p_items) i
  JOIN admmgt.target_results r ON r.operation = 'refresh' AND r.scriptid = 0 AND r.target_id = i.target_id
                               AND r.run_id = p_run_id AND r.ok
  -- The id equality lets the planner join by key: _same_target alone is opaque (never inlined) and
  -- would be called for every pair of item and target.
  JOIN admmgt.targets t ON t.id = i.target_id AND admmgt._same_target(t, i)
ON CONFLICT (target_id, refresh) DO UPDATE
   SET scriptversion = EXCLUDED.scriptversion, digest = EXCLUDED.digest, run_id = EXCLUDED.run_id, recorded_at = clock_timestamp();
$$;

CREATE OR REPLACE FUNCTION admmgt._note_skipped(p_op text, p_run_id bigint, p_skipped int, p_what text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: count in the run the targets its upkeep records left out, and say so: p_what is what they already hold */
BEGIN
    IF p_skipped > 0 THEN
        UPDATE admmgt.runs SET skipped = coalesce(skipped, 0) + p_skipped WHERE run_id = p_run_id;
        RAISE NOTICE 'admmgt %: % target(s) already hold % (not connected; p_verify => true checks them)', p_op, p_skipped, p_what;
    END IF;
END;
$$;
