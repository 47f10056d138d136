-- Which registered databases an operation works on, in one place.

CREATE OR REPLACE VIEW admmgt.registry AS
SELECT v.id, v.dbname, v.status, v.istemplate, v.servertemplate, coalesce(v.deleted, false) AS deleted,
       v.scriptversion, v.updateflag, v.loginrole,
       coalesce(v.server, CASE WHEN v.status = 2 OR v.istemplate THEN 'local' END)::text AS on_server
  FROM admmgt.vendor_db_settings v;
COMMENT ON VIEW admmgt.registry IS
    'The registry with on_server: where a database is. A created row or the template that names no server is on local; a pending row that names none is not placed yet (NULL).';

CREATE OR REPLACE VIEW admmgt.targets AS
SELECT r.id, lower(btrim(r.dbname)) AS dbname, coalesce(r.scriptversion, 0) AS version, r.istemplate, r.updateflag,
       r.on_server AS server, r.servertemplate
  FROM admmgt.registry r
 WHERE r.status = 2 AND NOT r.deleted;
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

CREATE OR REPLACE FUNCTION admmgt._pending(p_copies boolean)
RETURNS SETOF admmgt.vendor_db_settings
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the rows create_database() works on: pending (status 1), not deleted; the template's copies (p_copies) or the tenants */
SELECT v.* FROM admmgt.vendor_db_settings v
 WHERE v.status = 1 AND NOT coalesce(v.deleted, false) AND v.servertemplate = p_copies AND NOT coalesce(v.istemplate, false)
 ORDER BY v.id;
$$;
