-- CALL admmgt.create_database();

CREATE OR REPLACE FUNCTION admmgt._adopt_check_sql()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the query run in a pending tenant's database that already exists: 'ledger:<version>' for a copy of a template (a create whose bookkeeping was lost), else 'objects:<count of app objects>' */
SELECT $q$SELECT CASE
    WHEN pg_catalog.to_regclass('admmgt.applied_scripts') IS NOT NULL THEN 'ledger:' ||
        (pg_catalog.xpath('/row/v/text()', pg_catalog.query_to_xml(
            'SELECT coalesce(max(scriptid), 0) AS v FROM admmgt.applied_scripts', false, true, '')))[1]::text
    ELSE 'objects:' || (
        (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
            AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e'))
      + (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')))::text
    END$q$;
$$;

CREATE OR REPLACE FUNCTION admmgt._pending_items(p_template admmgt.vendor_db_settings,
                                                 OUT p_create admmgt.work_item[], OUT p_adopt admmgt.work_item[])
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: for every pending tenant, a CREATE DATABASE, or a look into its database when that already exists; refuses the whole call, naming the row, if any name is bad */
DECLARE
    v_row admmgt.vendor_db_settings;
    v_name text;
BEGIN
    p_create := '{}';
    p_adopt := '{}';
    FOR v_row IN SELECT * FROM admmgt.vendor_db_settings
                  WHERE status = 1 AND NOT coalesce(deleted, false) ORDER BY id LOOP
        v_name := admmgt._tenant_name(v_row.dbname, admmgt._row('vendor_db_settings', v_row.id));
        IF v_row.loginrole IS NOT NULL THEN
            PERFORM admmgt._login_role(v_row.loginrole, admmgt._row('vendor_db_settings', v_row.id));
        END IF;
        IF v_row.istemplate OR v_name IN ('postgres', 'template0', 'template1', p_template.dbname, current_database()) THEN
            RAISE EXCEPTION 'admmgt: % names the reserved database %', admmgt._row('vendor_db_settings', v_row.id), v_name
                USING ERRCODE = 'reserved_name',
                      HINT = 'A tenant cannot be postgres, template0, template1, the admin database or the template.';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = v_name)
           AND EXISTS (SELECT 1 FROM admmgt.vendor_db_settings o
                        WHERE o.deleted AND lower(btrim(o.dbname)) = v_name AND o.id <> v_row.id) THEN
            RAISE EXCEPTION 'admmgt: database % of % still holds a deleted tenant''s data', v_name, admmgt._row('vendor_db_settings', v_row.id)
                USING ERRCODE = 'duplicate_database',
                      HINT = 'admmgt never adopts the database of a deleted tenant: drop or rename it, or give the new tenant another name.';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = v_name) THEN
            p_adopt := p_adopt || ROW(v_row.id, v_name, v_name, NULL, ARRAY[admmgt._adopt_check_sql()], false)::admmgt.work_item;
        ELSE
            p_create := p_create || ROW(v_row.id, v_name, current_database(), p_template.scriptversion,
                                        ARRAY[format('CREATE DATABASE %I TEMPLATE %I', v_name, p_template.dbname)], false)::admmgt.work_item;
        END IF;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._template_sessions(p_template text)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE DATABASE ... TEMPLATE needs the template to itself: give closing sessions two seconds, then name those still in it (NULL when none) */
DECLARE
    v_who text;
    v_deadline timestamptz := clock_timestamp() + interval '2 seconds';
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT string_agg(format('pid %s (user %s, application %L)', a.pid, a.usename, a.application_name), ', ' ORDER BY a.pid)
          INTO v_who
          FROM pg_stat_activity a
         WHERE a.datname = p_template AND a.pid <> pg_backend_pid();
        EXIT WHEN v_who IS NULL OR clock_timestamp() >= v_deadline;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN v_who;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.create_database(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: create every pending tenant (status 1) as a copy of the template; each gets status 2 and the template's version. A pending tenant whose database exists is adopted when it is a template copy or empty, and fails alone otherwise */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_items record;
    v_run bigint;
    v_busy text;
BEGIN
    PERFORM admmgt._check_call('create_database', p_parallel);
    v_template := admmgt._template();
    v_items := admmgt._pending_items(v_template);
    IF cardinality(v_items.p_create) + cardinality(v_items.p_adopt) = 0 THEN
        RAISE NOTICE 'admmgt create: no tenant is pending (status 1)';
        RETURN;
    END IF;
    CALL admmgt._begin_call('create', 'create_database', p_wait_seconds, v_run);
    v_template := admmgt._template();
    v_items := admmgt._pending_items(v_template);
    -- Checked under the lock, so that a running applyScripts() (which uses the template) is
    -- waited for with p_wait_seconds instead of being taken for a stranger in the template.
    v_busy := CASE WHEN cardinality(v_items.p_create) > 0 THEN admmgt._template_sessions(v_template.dbname) END;
    IF v_busy IS NOT NULL THEN
        CALL admmgt._end_call('create', v_run);
        RAISE EXCEPTION 'admmgt: template database % has open connections: %', v_template.dbname, v_busy
            USING ERRCODE = 'object_in_use',
                  HINT = format('Close them (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %L) and call again.', v_template.dbname);
    END IF;
    CALL admmgt._run('adopt', v_items.p_adopt, p_parallel, v_run);
    CALL admmgt._run('create', v_items.p_create, p_parallel, v_run);
    CALL admmgt._end_call('create', v_run);
END;
$$;
