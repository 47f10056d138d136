-- Which registered databases an operation works on, in one place.

CREATE OR REPLACE VIEW admmgt.registry AS
SELECT v.id, v.dbname, v.status, v.istemplate, v.servertemplate, coalesce(v.deleted, false) AS deleted,
       v.scriptversion, v.updateflag, v.loginrole,
       coalesce(v.server, CASE WHEN v.status = 2 OR v.istemplate THEN 'local' END)::text AS on_server,
       v.tags, v.pinned_version,
       coalesce(v.kind, CASE WHEN v.status = 2 OR v.servertemplate THEN 'database' END) AS kind, v.schema_db, v.pool
  FROM admmgt.vendor_db_settings v;
COMMENT ON VIEW admmgt.registry IS
    'The registry with on_server: where a database is. A created row or the template that names no server is on local; a pending row that names none is not placed yet (NULL). kind: database or schema (NULL: pending, not decided yet). pool: a spare database of the warm pool, never a tenant.';

CREATE OR REPLACE VIEW admmgt.targets AS
SELECT r.id, lower(btrim(r.dbname)) AS dbname, coalesce(r.scriptversion, 0) AS version, r.istemplate, r.updateflag,
       r.on_server AS server, r.servertemplate, r.tags, r.pinned_version, r.kind,
       CASE WHEN r.kind = 'schema' THEN coalesce(lower(btrim(r.schema_db)), current_database()) ELSE lower(btrim(r.dbname)) END AS conn_db,
       CASE WHEN r.kind = 'schema' THEN lower(btrim(r.dbname)) END AS nsp, r.pool
  FROM admmgt.registry r
 WHERE r.status = 2 AND NOT r.deleted;
COMMENT ON VIEW admmgt.targets IS
    'Created, not deleted targets: the templates (one per kind), the database template''s copies on other servers and the tenants. Scripts and procedures go to the templates, the copies and the tenants with updateflag; maintenance to all. conn_db: the database admmgt connects to (a schema target''s is the one that holds it); nsp: a schema target''s schema. pool: a spare database of the warm pool, kept up like a tenant but never listed or chosen as one.';

CREATE OR REPLACE VIEW admmgt.update_targets AS
SELECT t.id, t.dbname, t.version, t.server, t.servertemplate, t.kind
  FROM admmgt.targets t WHERE NOT t.istemplate AND (t.updateflag OR t.servertemplate);
COMMENT ON VIEW admmgt.update_targets IS
    'Created targets that receive scripts and stored procedures after their template: its copies on other servers, and the tenants with updateflag.';

CREATE OR REPLACE FUNCTION admmgt._kinds(p_separatedb int, p_op text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the kinds of target an operation works on: t_separatedb 1 database targets, 0 schema targets, NULL every kind that has a template (database first) */
BEGIN
    IF p_separatedb IS NULL THEN
        RETURN coalesce((SELECT array_agg(k ORDER BY k) FROM (SELECT DISTINCT r.kind AS k FROM admmgt.registry r
                                                               WHERE r.istemplate AND NOT r.deleted AND r.kind IS NOT NULL) x),
                        ARRAY['database']);
    ELSIF p_separatedb NOT IN (0, 1) THEN
        RAISE EXCEPTION 'admmgt: % was given t_separatedb => %', p_op, p_separatedb
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '1 works on database targets (a database per tenant), 0 on schema targets (a schema per tenant); leave it out for every target.';
    END IF;
    RETURN ARRAY[CASE p_separatedb WHEN 1 THEN 'database' ELSE 'schema' END];
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._target_item(p_kind text, p_target admmgt.targets, p_scriptid int, p_stmts text[], p_atomic boolean,
                                               p_part int DEFAULT NULL, p_step text DEFAULT NULL, p_sources text[] DEFAULT NULL)
RETURNS admmgt.work_item
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a work item that runs in a target itself: its database, or the database that holds its schema */
SELECT admmgt._item(p_kind, p_target.id, p_target.dbname, p_target.server, p_target.conn_db, p_scriptid, p_stmts, p_atomic,
                    p_part, p_step, p_sources, p_target.nsp);
$$;

CREATE OR REPLACE FUNCTION admmgt._template_targets(p_kind text DEFAULT 'database')
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the template of a kind as a target list (empty when it is not created) */
SELECT coalesce(array_agg(t), '{}') FROM admmgt.targets t WHERE t.istemplate AND t.kind = p_kind;
$$;

CREATE OR REPLACE FUNCTION admmgt._update_targets(p_kind text DEFAULT NULL)
RETURNS admmgt.targets[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: update_targets (of one kind, or every kind) as a target list: what scripts and stored procedures go to after the template */
SELECT coalesce(array_agg(t ORDER BY t.servertemplate DESC, t.id), '{}')
  FROM admmgt.targets t WHERE t.id IN (SELECT u.id FROM admmgt.update_targets u) AND (p_kind IS NULL OR t.kind = p_kind);
$$;

CREATE OR REPLACE FUNCTION admmgt._template(p_kind text DEFAULT 'database')
RETURNS admmgt.vendor_db_settings
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the registered template of a kind (istemplate, created); its dbname folded to lower case */
DECLARE
    v admmgt.vendor_db_settings;
BEGIN
    SELECT v0.* INTO v FROM admmgt.vendor_db_settings v0 JOIN admmgt.registry r ON r.id = v0.id
     WHERE r.istemplate AND NOT r.deleted AND coalesce(r.kind, 'database') = p_kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'admmgt: no template % is registered', p_kind
            USING ERRCODE = 'no_data_found',
                  HINT = CASE WHEN p_kind = 'schema'
                              THEN 'Register it: INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES (''unitemplate'', true, 1); then CALL admmgt.create_schema();'
                              ELSE 'Register it: INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES (''unitemplate'', true, 2);' END;
    END IF;
    IF v.status <> 2 THEN
        RAISE EXCEPTION 'admmgt: template % has status %, not 2 (created)', v.dbname, v.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = CASE WHEN p_kind = 'schema' OR v.kind IS NULL THEN 'A template schema: CALL admmgt.create_schema() creates it. A template database: create it yourself, then set its status to 2.'
                              ELSE 'Create the template database yourself, then set its status to 2.' END;
    END IF;
    v.dbname := admmgt._tenant_name(v.dbname, admmgt._row('vendor_db_settings', v.id));
    v.scriptversion := coalesce(v.scriptversion, 0);
    RETURN v;
END;
$$;
