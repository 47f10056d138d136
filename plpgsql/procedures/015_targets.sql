-- Which registered databases an operation works on, in one place.

CREATE OR REPLACE VIEW admmgt.registry AS
SELECT v.id, v.dbname, v.status, v.istemplate, v.servertemplate, coalesce(v.deleted, false) AS deleted,
       v.scriptversion, v.updateflag, v.loginrole,
       coalesce(v.server, CASE WHEN v.status = 2 OR v.istemplate THEN 'local' END)::text AS on_server,
       v.tags, v.pinned_version
  FROM admmgt.vendor_db_settings v;
COMMENT ON VIEW admmgt.registry IS
    'The registry with on_server: where a database is. A created row or the template that names no server is on local; a pending row that names none is not placed yet (NULL).';

CREATE OR REPLACE VIEW admmgt.targets AS
SELECT r.id, lower(btrim(r.dbname)) AS dbname, coalesce(r.scriptversion, 0) AS version, r.istemplate, r.updateflag,
       r.on_server AS server, r.servertemplate, r.tags, r.pinned_version
  FROM admmgt.registry r
 WHERE r.status = 2 AND NOT r.deleted;
COMMENT ON VIEW admmgt.targets IS
    'Created, not deleted databases: the template, its copies on other servers and the tenants. Scripts and procedures go to the template, its copies and the tenants with updateflag; maintenance to all.';

CREATE OR REPLACE VIEW admmgt.update_targets AS
SELECT t.id, t.dbname, t.version, t.server, t.servertemplate
  FROM admmgt.targets t WHERE NOT t.istemplate AND (t.updateflag OR t.servertemplate);
COMMENT ON VIEW admmgt.update_targets IS
    'Created databases that receive scripts and stored procedures after the template: its copies on other servers, and the tenants with updateflag.';

CREATE OR REPLACE FUNCTION admmgt._template_targets()
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the template as a target list (empty when it is not created) */
SELECT coalesce(array_agg(t), '{}') FROM admmgt.targets t WHERE t.istemplate;
$$;

CREATE OR REPLACE FUNCTION admmgt._update_targets()
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: update_targets as a target list: what scripts and stored procedures go to after the template */
SELECT coalesce(array_agg(t ORDER BY t.servertemplate DESC, t.id), '{}')
  FROM admmgt.targets t WHERE t.id IN (SELECT u.id FROM admmgt.update_targets u);
$$;

CREATE OR REPLACE FUNCTION admmgt._template()
RETURNS admmgt.vendor_db_settings
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the registered template (istemplate, created); its dbname folded to lower case */
DECLARE
    v admmgt.vendor_db_settings;
BEGIN
    SELECT * INTO v FROM admmgt.vendor_db_settings
     WHERE istemplate AND NOT coalesce(deleted, false);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'admmgt: no template database is registered'
            USING ERRCODE = 'no_data_found',
                  HINT = 'Register it: INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES (''unitemplate'', true, 2);';
    END IF;
    IF v.status <> 2 THEN
        RAISE EXCEPTION 'admmgt: template % has status %, not 2 (created)', v.dbname, v.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create the template database yourself, then set its status to 2.';
    END IF;
    v.dbname := admmgt._tenant_name(v.dbname, admmgt._row('vendor_db_settings', v.id));
    v.scriptversion := coalesce(v.scriptversion, 0);
    RETURN v;
END;
$$;
