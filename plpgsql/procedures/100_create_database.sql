-- CALL admmgt.create_database();

CREATE OR REPLACE FUNCTION admmgt._create_items(p_template admmgt.vendor_db_settings)
RETURNS admmgt.work_item[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one CREATE DATABASE per pending tenant; refuses the whole call, naming the row, if any name is bad */
DECLARE
    v_row admmgt.vendor_db_settings;
    v_name text;
    v_items admmgt.work_item[] := '{}';
BEGIN
    FOR v_row IN SELECT * FROM admmgt.vendor_db_settings
                  WHERE status = 1 AND NOT coalesce(deleted, false) ORDER BY id LOOP
        v_name := admmgt._tenant_name(v_row.dbname, admmgt._row('vendor_db_settings', v_row.id));
        IF v_row.istemplate OR v_name IN ('postgres', 'template0', 'template1', p_template.dbname, current_database()) THEN
            RAISE EXCEPTION 'admmgt: % names the reserved database %', admmgt._row('vendor_db_settings', v_row.id), v_name
                USING ERRCODE = 'reserved_name',
                      HINT = 'A tenant cannot be postgres, template0, template1, the admin database or the template.';
        END IF;
        v_items := v_items || ROW(v_row.id, v_name, current_database(), p_template.scriptversion,
                                  ARRAY[format('CREATE DATABASE %I TEMPLATE %I', v_name, p_template.dbname)], false)::admmgt.work_item;
    END LOOP;
    RETURN v_items;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._assert_template_idle(p_template text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE DATABASE ... TEMPLATE needs the template to itself; name the sessions that hold it */
DECLARE
    v_who text;
BEGIN
    SELECT string_agg(format('pid %s (user %s, application %L)', a.pid, a.usename, a.application_name), ', ' ORDER BY a.pid)
      INTO v_who
      FROM pg_stat_activity a
     WHERE a.datname = p_template AND a.pid <> pg_backend_pid();
    IF v_who IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: template database % has open connections: %', p_template, v_who
            USING ERRCODE = 'object_in_use',
                  HINT = format('Close them (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %L) and call again.', p_template);
    END IF;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.create_database(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: create every pending tenant (status 1) as a copy of the template; each gets status 2 and the template's version */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_items admmgt.work_item[];
    v_run bigint;
BEGIN
    PERFORM admmgt._assert_autocommit('create_database');
    v_template := admmgt._template();
    v_items := admmgt._create_items(v_template);
    IF cardinality(v_items) = 0 THEN
        RAISE NOTICE 'admmgt create: no tenant is pending (status 1)';
        RETURN;
    END IF;
    CALL admmgt._begin_call('create', 'create_database', p_wait_seconds, v_run);
    v_template := admmgt._template();
    v_items := admmgt._create_items(v_template);
    BEGIN
        PERFORM admmgt._assert_template_idle(v_template.dbname);
    EXCEPTION WHEN object_in_use THEN
        -- An advisory lock outlives the error: release it, or other sessions stay locked out.
        PERFORM pg_advisory_unlock(426601, admmgt._lock_key('create'));
        RAISE;
    END;
    CALL admmgt._run('create', v_items, p_parallel, v_run);
    CALL admmgt._end_call('create', v_run);
END;
$$;
