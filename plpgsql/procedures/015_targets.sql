-- Which registered databases an operation works on, in one place.

CREATE OR REPLACE VIEW admmgt.targets AS
SELECT v.id, lower(btrim(v.dbname)) AS dbname, coalesce(v.scriptversion, 0) AS version, v.istemplate, v.updateflag,
       coalesce(v.server, 'local') AS server, v.servertemplate
  FROM admmgt.vendor_db_settings v
 WHERE v.status = 2 AND NOT coalesce(v.deleted, false);
COMMENT ON VIEW admmgt.targets IS
    'Created, not deleted databases: the template, its copies on other servers and the tenants. Scripts and procedures go to the template, its copies and the tenants with updateflag; maintenance to all.';

CREATE OR REPLACE VIEW admmgt.update_targets AS
SELECT t.id, t.dbname, t.version, t.server, t.servertemplate
  FROM admmgt.targets t WHERE NOT t.istemplate AND (t.updateflag OR t.servertemplate);
COMMENT ON VIEW admmgt.update_targets IS
    'Created databases that receive scripts and stored procedures after the template: its copies on other servers, and the tenants with updateflag.';

CREATE OR REPLACE FUNCTION admmgt._item(p_target_id bigint, p_dbname text, p_server text, p_conn_db text, p_scriptid int,
                                        p_stmts text[], p_atomic boolean, p_step text DEFAULT NULL)
RETURNS admmgt.work_item
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: build a work item by name, so that no caller depends on the order of its attributes */
SELECT ROW(p_target_id, p_dbname, p_conn_db, p_scriptid, p_stmts, p_atomic, p_server, p_step)::admmgt.work_item;
$$;
