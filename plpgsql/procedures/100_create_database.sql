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

CREATE OR REPLACE FUNCTION admmgt._check_pending_row(p_row admmgt.vendor_db_settings, p_template admmgt.vendor_db_settings)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, naming the row, a pending tenant whose name or login role is bad, that names a reserved database (postgres, template0, template1, the template, the admin database, its server's maintenance database), or whose name is a deleted tenant's database that is still there; returns the folded name */
DECLARE
    v_where text := admmgt._row('vendor_db_settings', p_row.id);
    v_name text := admmgt._tenant_name(p_row.dbname, v_where);
    v_gone text;
BEGIN
    IF p_row.loginrole IS NOT NULL THEN
        PERFORM admmgt._login_role(p_row.loginrole, v_where);
    END IF;
    IF coalesce(p_row.istemplate, false)
       OR v_name IN ('postgres', 'template0', 'template1', p_template.dbname, current_database(), admmgt._maint_db(p_row.server)) THEN
        RAISE EXCEPTION 'admmgt: % names the reserved database %', v_where, v_name
            USING ERRCODE = 'reserved_name',
                  HINT = 'A tenant cannot be postgres, template0, template1, the admin database, the template or the maintenance database of its server.';
    END IF;
    -- A server that cannot be asked does not count: a database found there later is never adopted
    -- either, since this check runs again, under the lock, before each pending row is built.
    SELECT o.on_server INTO v_gone FROM admmgt.registry o
     WHERE o.deleted AND NOT o.servertemplate AND lower(btrim(o.dbname)) = v_name AND o.id <> p_row.id
       AND v_name = ANY (admmgt._server_databases(coalesce(o.on_server, 'local')))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'admmgt: database % of % still holds a deleted tenant''s data', v_name, v_where
            USING ERRCODE = 'duplicate_database',
                  HINT = format('admmgt never adopts the database of a deleted tenant: drop or rename it on server %s, or give the new tenant another name.',
                                coalesce(v_gone, 'local'));
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_pending(p_template admmgt.vendor_db_settings)
RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: check every pending tenant before anything is touched, refusing the whole call with the row named; returns how many are pending */
DECLARE
    v_row admmgt.vendor_db_settings;
    v_n int := 0;
BEGIN
    FOR v_row IN SELECT * FROM admmgt._pending(false) LOOP
        v_n := v_n + 1;
        PERFORM admmgt._check_pending_row(v_row, p_template);
    END LOOP;
    IF EXISTS (SELECT 1 FROM admmgt._pending(false) p WHERE p.server IS NULL)
       AND NOT EXISTS (SELECT 1 FROM admmgt.servers s WHERE s.accepts_tenants) THEN
        RAISE EXCEPTION 'admmgt: pending tenants name no server, and no server accepts new tenants'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Set vendor_db_settings.server on those rows, or UPDATE admmgt.servers SET accepts_tenants = true WHERE name = ...';
    END IF;
    RETURN v_n;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._place_tenants()
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: give every pending tenant that names no server the accepting server with the fewest tenants (created or pending; ties to the name that sorts first), one at a time in id order, and write it into the row */
DECLARE
    v_names text[];
    v_counts int[];
    v_id bigint;
    v_best int;
BEGIN
    SELECT array_agg(s.name ORDER BY s.name),
           array_agg((SELECT count(*)::int FROM admmgt.registry r
                       WHERE r.on_server = s.name AND r.status IN (1, 2) AND NOT r.deleted
                         AND NOT coalesce(r.istemplate, false) AND NOT r.servertemplate) ORDER BY s.name)
      INTO v_names, v_counts
      FROM admmgt.servers s
     WHERE s.accepts_tenants;
    IF v_names IS NULL THEN
        -- No server accepts new tenants any more: the rows wait, and the next call says so.
        RETURN;
    END IF;
    FOR v_id IN SELECT p.id FROM admmgt._pending(false) p WHERE p.server IS NULL LOOP
        v_best := 1;
        FOR i IN 2 .. cardinality(v_names) LOOP
            IF v_counts[i] < v_counts[v_best] THEN
                v_best := i;
            END IF;
        END LOOP;
        UPDATE admmgt.vendor_db_settings SET server = v_names[v_best], modifiedon = current_timestamp WHERE id = v_id;
        v_counts[v_best] := v_counts[v_best] + 1;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._ensure_copies(p_template admmgt.vendor_db_settings)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: register a copy of the template (pending) on every server other than local that has placed pending tenants and no copy yet */
INSERT INTO admmgt.vendor_db_settings (dbname, server, servertemplate, status, scriptversion, updateflag)
SELECT p_template.dbname, x.server, true, 1, 0, true
  FROM (SELECT DISTINCT p.server FROM admmgt._pending(false) p WHERE p.server <> 'local') x
 WHERE NOT EXISTS (SELECT 1 FROM admmgt.vendor_db_settings c
                    WHERE c.servertemplate AND c.server = x.server AND NOT coalesce(c.deleted, false));
$$;

CREATE OR REPLACE FUNCTION admmgt._pending_items(p_template admmgt.vendor_db_settings, p_copies boolean,
                                                 OUT p_create admmgt.work_item[], OUT p_adopt admmgt.work_item[])
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: for every pending copy of the template (p_copies) or placed pending tenant, on its server: CREATE DATABASE and the grant step, or, when its database already exists there, a look into it and the grant step. A tenant is made from its server's copy of the template; while that copy is not created, the tenant waits. Rows that arrived during this call, or fail their checks now, wait with a WARNING */
DECLARE
    v_row admmgt.vendor_db_settings;
    v_name text;
    v_server text;
    v_dbs jsonb;
    v_templates jsonb;
    v_from jsonb;
    v_maint text;
    v_grant admmgt.work_item;
BEGIN
    p_create := '{}';
    p_adopt := '{}';
    -- What exists on each server, asked once per server; an unreachable one counts as empty and
    -- its items then fail on their own connection, naming it (CREATE DATABASE never adopts).
    SELECT jsonb_object_agg(x.server, to_jsonb(admmgt._server_databases(x.server)))
      INTO v_dbs
      FROM (SELECT DISTINCT coalesce(p.server, 'local') AS server FROM admmgt._pending(p_copies) p WHERE p_copies OR p.server IS NOT NULL) x;
    -- Where each server's tenants are copied from: the template on local, its created copy elsewhere.
    SELECT jsonb_object_agg(t.server, jsonb_build_object('dbname', t.dbname, 'version', t.version))
      INTO v_templates
      FROM admmgt.targets t WHERE t.istemplate OR t.servertemplate;
    FOR v_row IN SELECT * FROM admmgt._pending(p_copies) LOOP
        IF NOT p_copies THEN
            IF v_row.server IS NULL THEN
                RAISE NOTICE 'admmgt create: tenant % was registered during this call; the next call places and creates it', v_row.dbname;
                CONTINUE;
            END IF;
            BEGIN
                v_name := admmgt._check_pending_row(v_row, p_template);
            EXCEPTION WHEN OTHERS THEN
                RAISE WARNING '%', SQLERRM USING HINT = 'The row is left pending; fix it and call create_database() again.';
                CONTINUE;
            END;
        ELSE
            v_name := lower(btrim(v_row.dbname));
        END IF;
        v_server := coalesce(v_row.server, 'local');
        v_from := CASE WHEN NOT p_copies THEN v_templates -> v_server END;
        IF NOT p_copies AND v_from IS NULL THEN
            RAISE WARNING 'admmgt create: tenant % waits: the copy of the template on server % is not created yet', v_name, v_server
                USING HINT = 'See SELECT * FROM admmgt.failures WHERE server = ' || quote_literal(v_server) || '; call create_database() again once the server is back.';
            CONTINUE;
        END IF;
        v_maint := admmgt._maint_db(v_server);
        v_grant := admmgt._item(v_row.id, v_name, v_server, v_maint, NULL,
                                admmgt._access_stmts(v_row.id, v_name), true, 'grant');
        IF coalesce(v_dbs -> v_server ? v_name, false) THEN
            p_adopt := p_adopt || admmgt._item(v_row.id, v_name, v_server, v_name, NULL, ARRAY[admmgt._adopt_check_sql()], false, 'adopt')
                               || v_grant;
        ELSE
            p_create := p_create
                || admmgt._item(v_row.id, v_name, v_server, v_maint, coalesce((v_from ->> 'version')::int, 0),
                                ARRAY[CASE WHEN p_copies THEN format('CREATE DATABASE %I', v_name)
                                           ELSE format('CREATE DATABASE %I TEMPLATE %I', v_name, v_from ->> 'dbname') END],
                                false, 'create')
                || v_grant;
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

CREATE OR REPLACE PROCEDURE admmgt._create_copies(p_template admmgt.vendor_db_settings, p_parallel int, p_wait_seconds int, p_run bigint)
LANGUAGE plpgsql
AS $$
/* purpose: create the copies of the template that servers with pending tenants need, as empty databases, and bring every copy below the template's version up to it: the template's routines (scripts may call them), the scripts, then the routines again (a script may have replaced one). Maintenance and refresh are held off meanwhile: they would meet a copy half built */
DECLARE
    v_items record;
    v_routines text[];
    v_holder text;
BEGIN
    PERFORM admmgt._ensure_copies(p_template);
    COMMIT;
    IF NOT EXISTS (SELECT 1 FROM admmgt._pending(true))
       AND NOT EXISTS (SELECT 1 FROM admmgt.targets t WHERE t.servertemplate AND t.version < p_template.scriptversion) THEN
        RETURN;
    END IF;
    v_holder := admmgt._hold_upkeep(p_wait_seconds);
    IF v_holder IS NOT NULL THEN
        RAISE WARNING 'admmgt create: the copies of the template are not built now: maintenance or refresh is running: %', v_holder
            USING HINT = 'Tenants on servers without a created copy wait; call create_database() again later, or with p_wait_seconds.';
        RETURN;
    END IF;
    v_items := admmgt._pending_items(p_template, true);
    CALL admmgt._run('adopt', v_items.p_adopt, p_parallel, p_run);
    CALL admmgt._run('create', v_items.p_create, p_parallel, p_run);
    IF EXISTS (SELECT 1 FROM admmgt.targets t WHERE t.servertemplate AND t.version < p_template.scriptversion) THEN
        BEGIN
            v_routines := admmgt._template_routines(p_template.dbname);
        EXCEPTION WHEN OTHERS THEN
            -- Raised here it would leave this session holding the locks: the copies wait for the next call.
            RAISE WARNING 'admmgt create: could not read the routines of template %: % (SQLSTATE %)', p_template.dbname, SQLERRM, SQLSTATE
                USING HINT = 'The copies of the template stay below its version; tenants made from them start there and applyScripts() brings them up.';
        END;
        IF v_routines IS NOT NULL THEN
            CALL admmgt._run('refresh', admmgt._refresh_items(v_routines, p_template.scriptversion), p_parallel, p_run);
            CALL admmgt._run('apply', admmgt._apply_items('copies', p_template.scriptversion, current_date), p_parallel, p_run);
            CALL admmgt._run('refresh', admmgt._refresh_items(v_routines, p_template.scriptversion + 1), p_parallel, p_run);
        END IF;
    END IF;
    PERFORM admmgt._release_upkeep();
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.create_database(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: create every pending tenant (status 1) on its server (placing those that name none) as a copy of that server's copy of the template; each gets status 2 and the version of the copy it came from. A pending tenant whose database exists is adopted when it is a template copy or empty, and fails alone otherwise */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_items record;
    v_run bigint;
    v_busy text;
BEGIN
    PERFORM admmgt._check_call('create_database', p_parallel);
    v_template := admmgt._template();
    IF admmgt._check_pending(v_template) = 0 THEN
        RAISE NOTICE 'admmgt create: no tenant is pending (status 1)';
        RETURN;
    END IF;
    CALL admmgt._begin_call('create', 'create_database', p_wait_seconds, v_run);
    v_template := admmgt._template();
    PERFORM admmgt._place_tenants();
    COMMIT;
    CALL admmgt._create_copies(v_template, p_parallel, p_wait_seconds, v_run);
    v_items := admmgt._pending_items(v_template, false);
    -- Checked under the lock, so that a running applyScripts() (which uses the template) is
    -- waited for with p_wait_seconds instead of being taken for a stranger in the template.
    v_busy := CASE WHEN EXISTS (SELECT 1 FROM unnest(v_items.p_create) i WHERE i.server = 'local')
                   THEN admmgt._template_sessions(v_template.dbname) END;
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
