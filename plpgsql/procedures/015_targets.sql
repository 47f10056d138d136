-- Which registered databases an operation works on, in one place.

CREATE OR REPLACE VIEW admmgt.targets AS
SELECT v.id, lower(btrim(v.dbname)) AS dbname, coalesce(v.scriptversion, 0) AS version, v.istemplate, v.updateflag
  FROM admmgt.vendor_db_settings v
 WHERE v.status = 2 AND NOT coalesce(v.deleted, false);
COMMENT ON VIEW admmgt.targets IS
    'Created, not deleted databases: the template and the tenants. Scripts and procedures go to the template and the tenants with updateflag; maintenance to all.';

CREATE OR REPLACE VIEW admmgt.update_targets AS
SELECT t.id, t.dbname, t.version FROM admmgt.targets t WHERE NOT t.istemplate AND t.updateflag;
COMMENT ON VIEW admmgt.update_targets IS 'Created tenants that receive scripts and stored procedures (updateflag).';
