-- Read-only views for DBAs and for `admmgt status`.

CREATE OR REPLACE VIEW admmgt.tenant_status AS
SELECT v.id, lower(v.dbname) AS dbname, v.istemplate, v.status,
       CASE v.status WHEN 0 THEN 'designing' WHEN 1 THEN 'pending' WHEN 2 THEN 'created' END AS status_text,
       coalesce(v.scriptversion, 0) AS scriptversion, v.updateflag,
       (SELECT count(*) FROM admmgt.target_results r WHERE r.target_id = v.id AND NOT r.ok) AS failures,
       v.on_server AS server, v.servertemplate, v.kind,
       -- The last thing an operation did to the target (a rollback too), from target_results.
       l.operation AS last_operation, l.scriptid AS last_scriptid, l.ok AS last_ok, l.finished_at AS last_finished_at
  FROM admmgt.registry v
  LEFT JOIN LATERAL (SELECT r.operation, nullif(r.scriptid, 0) AS scriptid, r.ok, r.finished_at FROM admmgt.target_results r
                      WHERE r.target_id = v.id ORDER BY r.finished_at DESC, r.operation LIMIT 1) l ON true
 -- The warm pool's spare databases are no tenants: admmgt.pool_status shows them.
 WHERE NOT v.deleted AND NOT v.pool;

CREATE OR REPLACE VIEW admmgt.failures AS
SELECT r.operation, nullif(r.scriptid, 0) AS scriptid, r.dbname, r.sqlstate, r.message, r.detail, r.hint,
       r.statement, r.run_id, r.finished_at, v.on_server AS server
  FROM admmgt.target_results r
  JOIN admmgt.registry v ON v.id = r.target_id
 -- A deleted tenant's old failures need no one any more.
 WHERE NOT r.ok AND NOT v.deleted;

CREATE OR REPLACE VIEW admmgt.server_status AS
SELECT s.name AS server,
       (SELECT o.option_value FROM pg_options_to_table(f.srvoptions) o WHERE o.option_name = 'host') AS host,
       (SELECT o.option_value FROM pg_options_to_table(f.srvoptions) o WHERE o.option_name = 'port') AS port,
       f.srvname AS fdwserver,
       s.accepts_tenants,
       count(*) FILTER (WHERE v.status = 2 AND NOT v.istemplate AND NOT v.servertemplate AND NOT v.pool) AS tenants,
       count(*) FILTER (WHERE v.status = 1 AND NOT v.servertemplate AND NOT v.pool) AS pending,
       max(coalesce(v.scriptversion, 0)) FILTER (WHERE v.status = 2 AND (v.istemplate OR v.servertemplate)) AS template_version,
       (SELECT count(*) FROM admmgt.target_results r JOIN admmgt.registry x ON x.id = r.target_id
         WHERE NOT r.ok AND NOT x.deleted AND x.on_server = s.name) AS failures
  FROM admmgt.servers s
  LEFT JOIN pg_foreign_server f ON f.srvname = coalesce(s.fdwserver, 'admmgt_local')
  LEFT JOIN admmgt.registry v ON v.on_server = s.name AND NOT v.deleted
 GROUP BY s.name, f.srvname, f.srvoptions, s.accepts_tenants;
COMMENT ON VIEW admmgt.server_status IS
    'Per registered server: how it is reached (no credentials), whether placement may choose it, its tenants (created, pending), the version of its template or copy of the template, and its targets'' failures.';
