-- Read-only views for DBAs and for `admmgt status`.

CREATE OR REPLACE VIEW admmgt.tenant_status AS
SELECT v.id, lower(v.dbname) AS dbname, v.istemplate, v.status,
       CASE v.status WHEN 0 THEN 'designing' WHEN 1 THEN 'pending' WHEN 2 THEN 'created' END AS status_text,
       coalesce(v.scriptversion, 0) AS scriptversion, v.updateflag,
       (SELECT count(*) FROM admmgt.target_results r WHERE r.target_id = v.id AND NOT r.ok) AS failures
  FROM admmgt.vendor_db_settings v
 WHERE NOT coalesce(v.deleted, false);

CREATE OR REPLACE VIEW admmgt.failures AS
SELECT r.operation, nullif(r.scriptid, 0) AS scriptid, r.dbname, r.sqlstate, r.message, r.detail, r.hint,
       r.statement, r.run_id, r.finished_at
  FROM admmgt.target_results r
 WHERE NOT r.ok;
