-- CALL admmgt.create_database();
-- Pending tenants are checked, placed on a server, then made there in two steps each: CREATE
-- DATABASE (or the adoption of a database that exists already) and the grant step, after which a
-- tenant counts as created. The copies of the template that other servers need are built first
-- (140_template_copies.sql).

CREATE OR REPLACE FUNCTION admmgt._pending_tenants(p_pool boolean DEFAULT false)
RETURNS SETOF admmgt.vendor_db_settings
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the tenants create_database() works on: pending (status 1), not deleted, neither the template nor a copy of it, not a schema (create_schema's); with p_pool, the pending pool databases (refill_pool's) instead */
SELECT v.* FROM admmgt.vendor_db_settings v
 WHERE v.status = 1 AND NOT coalesce(v.deleted, false) AND NOT v.servertemplate AND NOT coalesce(v.istemplate, false)
   AND v.kind IS DISTINCT FROM 'schema' AND v.pool = p_pool
 ORDER BY v.id;
$$;

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
/* purpose: refuse, naming the row, a pending tenant whose name or login role is bad, that names a reserved database (postgres, template0, template1, the template, the admin database, its server's maintenance database, a pool database's name), or whose name is a deleted tenant's database that is still there; returns the folded name */
DECLARE
    v_where text := admmgt._row('vendor_db_settings', p_row.id);
    v_name text := admmgt._tenant_name(p_row.dbname, v_where);
    v_gone text;
BEGIN
    IF p_row.loginrole IS NOT NULL THEN
        PERFORM admmgt._login_role(p_row.loginrole, v_where);
    END IF;
    IF coalesce(p_row.istemplate, false)
       OR v_name IN ('postgres', 'template0', 'template1', p_template.dbname, current_database(), admmgt._maint_db(p_row.server))
       OR (NOT p_row.pool AND starts_with(v_name, admmgt._pool_prefix())) THEN
        RAISE EXCEPTION 'admmgt: % names the reserved database %', v_where, v_name
            USING ERRCODE = 'reserved_name',
                  HINT = format('A tenant cannot be postgres, template0, template1, the admin database, the template, the maintenance database of its server, or begin with %s (the warm pool''s names).', admmgt._pool_prefix());
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
    FOR v_row IN SELECT * FROM admmgt._pending_tenants() LOOP
        v_n := v_n + 1;
        PERFORM admmgt._check_pending_row(v_row, p_template);
    END LOOP;
    IF EXISTS (SELECT 1 FROM admmgt._pending_tenants() p WHERE p.server IS NULL)
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
    SELECT array_agg(s.name::text ORDER BY s.name),
           array_agg((SELECT count(*)::int FROM admmgt.registry r
                       WHERE r.on_server = s.name AND r.status IN (1, 2) AND NOT r.deleted
                         AND NOT coalesce(r.istemplate, false) AND NOT r.servertemplate AND NOT r.pool) ORDER BY s.name)
      INTO v_names, v_counts
      FROM admmgt.servers s
     WHERE s.accepts_tenants;
    IF v_names IS NULL THEN
        -- No server accepts new tenants any more: the rows wait, and the next call says so.
        RETURN;
    END IF;
    FOR v_id IN SELECT p.id FROM admmgt._pending_tenants() p WHERE p.server IS NULL LOOP
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

CREATE OR REPLACE FUNCTION admmgt._login_role_sql(p_role text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a block run on a tenant's server that makes its login role there when missing, and refuses a role of that name that is privileged on that server */
SELECT format('DO %L', format($b$BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = %1$L
                  AND (r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls)) THEN
        RAISE EXCEPTION 'admmgt: login role %% is privileged on this server', %1$L
            USING ERRCODE = 'reserved_name',
                  HINT = 'A tenant login role must be an ordinary role of its own: no superuser, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = %1$L) THEN
        CREATE ROLE %2$I LOGIN;
    END IF;
END$b$, p_role, p_role));
$$;

CREATE OR REPLACE FUNCTION admmgt._public_connect_check_sql(p_dbname text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a block run on a database's server after the REVOKE: a REVOKE by a role that neither owns the database nor holds the grant option only warns, so make sure it took */
SELECT format('DO %L', format($b$BEGIN
    IF pg_catalog.has_database_privilege('public', %1$L, 'CONNECT') THEN
        RAISE EXCEPTION 'admmgt: PUBLIC may still connect to database %%', %1$L
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The REVOKE had no effect: the role admmgt connects as on this server does not own the database. Connect as its owner (the user mapping), or revoke it yourself and call create_database() again.';
    END IF;
END$b$, p_dbname));
$$;

CREATE OR REPLACE FUNCTION admmgt._access_stmts(p_target_id bigint, p_dbname text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: who may connect to a new database, run on its own server before it counts as created: not PUBLIC (tenants must not reach each other's databases); its login role, if it has one */
SELECT ARRAY[format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', p_dbname), admmgt._public_connect_check_sql(p_dbname)]
    || CASE WHEN r.role IS NULL THEN '{}'::text[]
            ELSE ARRAY[admmgt._login_role_sql(r.role), format('GRANT CONNECT ON DATABASE %I TO %I', p_dbname, r.role)] END
  FROM (SELECT lower(btrim(v.loginrole)) AS role FROM admmgt.vendor_db_settings v WHERE v.id = p_target_id) r;
$$;

CREATE OR REPLACE FUNCTION admmgt._databases_by_server(p_servers text[])
RETURNS jsonb
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: what exists on each of the given servers, asked once per server: {server: [database, ...]}; an unreachable one maps to null, and its work items then fail on their own connection, naming it (CREATE DATABASE never adopts) */
SELECT coalesce(jsonb_object_agg(x.server, to_jsonb(admmgt._server_databases(x.server))), '{}')
  FROM (SELECT DISTINCT s AS server FROM unnest(p_servers) AS s) x;
$$;

CREATE OR REPLACE FUNCTION admmgt._add_new_database(INOUT p_create admmgt.work_item[], INOUT p_adopt admmgt.work_item[],
                                                    p_target_id bigint, p_name text, p_server text, p_databases jsonb,
                                                    p_create_stmt text, p_version int)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: add the two steps that make one database on its server: p_create_stmt (CREATE DATABASE ...) to p_create, or, when the database is already there (p_databases: what each server has), a look into it to p_adopt; each followed by the grant step, after which it counts as created */
WITH grant_step AS (
    SELECT admmgt._item('grant', p_target_id, p_name, p_server, admmgt._maint_db(p_server), NULL,
                        admmgt._access_stmts(p_target_id, p_name), true) AS item
), found AS (
    SELECT coalesce(p_databases -> p_server ? p_name, false) AS yes
)
SELECT CASE WHEN f.yes THEN p_create
            ELSE p_create || admmgt._item('create', p_target_id, p_name, p_server, admmgt._maint_db(p_server), p_version,
                                          ARRAY[p_create_stmt], false) || g.item END,
       CASE WHEN f.yes THEN p_adopt || admmgt._item('adopt', p_target_id, p_name, p_server, p_name, NULL,
                                                    ARRAY[admmgt._adopt_check_sql()], false) || g.item
            ELSE p_adopt END
  FROM grant_step g, found f;
$$;

CREATE OR REPLACE FUNCTION admmgt._pending_tenant_items(p_template admmgt.vendor_db_settings, p_pool boolean,
                                                        OUT p_create admmgt.work_item[], OUT p_adopt admmgt.work_item[])
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: for every placed pending tenant, on its server: CREATE DATABASE ... TEMPLATE of its server's copy of the template (the template itself on local), or the adoption of its database when that exists already; then the grant step. While the copy on its server is not created, the tenant waits. Rows that arrived during this call, or fail their checks now, wait with a WARNING. p_pool: the pending pool databases instead */
DECLARE
    v_row admmgt.vendor_db_settings;
    v_name text;
    v_dbs jsonb;
    v_templates jsonb;
    v_from jsonb;
BEGIN
    p_create := '{}';
    p_adopt := '{}';
    v_dbs := admmgt._databases_by_server(ARRAY(SELECT p.server FROM admmgt._pending_tenants(p_pool) p WHERE p.server IS NOT NULL));
    -- Where each server's tenants are copied from, asked once: the template on local, its created copy elsewhere.
    SELECT jsonb_object_agg(t.server, jsonb_build_object('dbname', t.dbname, 'version', t.version)) INTO v_templates
      FROM admmgt.targets t WHERE (t.istemplate OR t.servertemplate) AND t.kind = 'database';
    FOR v_row IN SELECT * FROM admmgt._pending_tenants(p_pool) LOOP
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
        v_from := v_templates -> v_row.server;
        IF v_from IS NULL THEN
            RAISE WARNING 'admmgt create: tenant % waits: the copy of the template on server % is not created yet', v_name, v_row.server
                USING HINT = 'See SELECT * FROM admmgt.failures WHERE server = ' || quote_literal(v_row.server) || '; call create_database() again once the server is back.';
            CONTINUE;
        END IF;
        SELECT * INTO p_create, p_adopt
          FROM admmgt._add_new_database(p_create, p_adopt, v_row.id, v_name, v_row.server, v_dbs,
                                        format('CREATE DATABASE %I TEMPLATE %I', v_name, v_from ->> 'dbname'), (v_from ->> 'version')::int);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._in_the_way_sql(p_activity text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the condition on a row of pg_stat_activity (p_activity: its alias) that its session keeps CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME or DROP DATABASE of its database from running: any session but an autovacuum worker, which those statements end themselves (waiting up to five seconds); as text, for the queries run on other servers too */
SELECT format('%1$I.backend_type IS DISTINCT FROM %2$L', p_activity, 'autovacuum worker');
$$;

CREATE OR REPLACE FUNCTION admmgt._template_sessions(p_template text)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE DATABASE ... TEMPLATE needs the template to itself: give closing sessions two seconds, then name those still in it (NULL when none); an autovacuum worker there is not in the way, as CREATE DATABASE ends it itself */
DECLARE
    v_who text;
    v_deadline timestamptz := clock_timestamp() + interval '2 seconds';
BEGIN
    LOOP
        PERFORM pg_stat_clear_snapshot();
        EXECUTE format($q$SELECT string_agg(format('pid %%s (user %%s, application %%L)', a.pid, a.usename, a.application_name), ', ' ORDER BY a.pid)
                            FROM pg_catalog.pg_stat_activity a
                           WHERE a.datname = %L AND a.pid <> pg_catalog.pg_backend_pid() AND %s$q$,
                       p_template, admmgt._in_the_way_sql('a'))
          INTO v_who;
        EXIT WHEN v_who IS NULL OR clock_timestamp() >= v_deadline;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN v_who;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_template_free(p_create admmgt.work_item[], p_template text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: before CREATE DATABASE ... TEMPLATE on local (any item of p_create there), refuse, naming them, the sessions still in the template. Called under the lock, so that a running applyScripts() (which uses the template) is waited for with p_wait_seconds instead of being taken for a stranger in the template */
DECLARE
    v_busy text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM unnest(p_create) i WHERE i.server = 'local') THEN
        RETURN;
    END IF;
    v_busy := admmgt._template_sessions(p_template);
    IF v_busy IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: template database % has open connections: %', p_template, v_busy
            USING ERRCODE = 'object_in_use',
                  HINT = format('Close them (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %L) and call again.', p_template);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_create(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a CREATE DATABASE: the new database has the version of the copy it came from; it stays pending until its grant step */
BEGIN
    IF p_booking.ok THEN
        UPDATE admmgt.vendor_db_settings SET scriptversion = p_item.scriptid, baseversion = p_item.scriptid, modifiedon = current_timestamp
         WHERE id = p_item.target_id;
    END IF;
    RETURN p_booking;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_adopt(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of a look into a pending tenant's existing database: a template copy (it has the ledger) is taken over at the ledger's version, an empty database at 0 when its row allows it (adopt_empty, or a copy of the template admmgt registered); one holding objects of its own is refused and left alone */
DECLARE
    b admmgt.booking := p_booking;
    v_found text := p_state.outputs[1];
    v_version int;
BEGIN
    IF NOT b.ok THEN
        RETURN b;
    END IF;
    -- What the database answered is not admmgt's to trust: cast only what is a plain version.
    v_version := CASE WHEN v_found ~ '^ledger:[0-9]{1,9}$' THEN split_part(v_found, ':', 2)::int
                      WHEN v_found = 'objects:0' THEN 0 END;
    IF v_version = 0 AND v_found = 'objects:0'
       AND NOT EXISTS (SELECT 1 FROM admmgt.vendor_db_settings v WHERE v.id = p_item.target_id AND (v.adopt_empty OR v.servertemplate)) THEN
        -- An empty database of that name may be somebody else's: adopt it only when the row says so.
        RETURN admmgt._refused(b, '42P04', format('database %s already exists; it is empty, but not a copy of the template', p_item.dbname),
            format('To take it over: UPDATE admmgt.vendor_db_settings SET adopt_empty = true WHERE id = %s; then call create_database() again. Or drop it, or give the tenant another name.', p_item.target_id),
            'look into the existing database');
    END IF;
    IF v_version IS NULL THEN
        RETURN admmgt._refused(b, '42P04', CASE WHEN v_found LIKE 'objects:%'
                                                THEN format('database %s already exists and holds %s objects that did not come from the template', p_item.dbname, split_part(v_found, ':', 2))
                                                ELSE format('database %s already exists and its ledger admmgt.applied_scripts does not hold plain script ids', p_item.dbname) END,
            'Drop or rename that database, or give the tenant another name, then call create_database() again.',
            'look into the existing database');
    END IF;
    b.lines := ARRAY[format('adopted the existing database at version %s', v_version)];
    UPDATE admmgt.vendor_db_settings SET scriptversion = v_version, baseversion = v_version, modifiedon = current_timestamp WHERE id = p_item.target_id;
    RETURN b;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._book_grant(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: booking hook of the grant step: only now, with PUBLIC's CONNECT revoked on its server, does the database count as created; its blocks only make sure the grants took (and the login role exists), so log the grants */
BEGIN
    IF p_booking.ok THEN
        UPDATE admmgt.vendor_db_settings SET status = 2, kind = 'database', modifiedon = current_timestamp WHERE id = p_item.target_id;
    END IF;
    RETURN admmgt._success_lines(p_booking, ARRAY(SELECT x FROM unnest(p_item.stmts) AS x WHERE x NOT LIKE 'DO %'));
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt.create_database(p_parallel int DEFAULT NULL, p_wait_seconds int DEFAULT 0)
LANGUAGE plpgsql
AS $$
/* purpose: create every pending tenant (status 1) on its server (placing those that name none) as a copy of that server's copy of the template, or, on local, by renaming a ready database of the warm pool (refill_pool); each gets status 2 and the version of the copy it came from. A pending tenant whose database exists is adopted when it is a template copy or empty, and fails alone otherwise */
DECLARE
    v_template admmgt.vendor_db_settings;
    v_items record;
    v_run bigint;
    v_error admmgt.error_state;
BEGIN
    PERFORM admmgt._check_call('create_database', p_parallel);
    v_template := admmgt._template();
    IF admmgt._check_pending(v_template) = 0 THEN
        RAISE NOTICE 'admmgt create: no tenant is pending (status 1)';
        RETURN;
    END IF;
    CALL admmgt._begin_call('create', 'create_database', p_wait_seconds, v_run);
    BEGIN
        v_template := admmgt._template();
        PERFORM admmgt._place_tenants();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    -- A take commits the placement with it: one WAL flush less on the pooled tenant's path.
    CALL admmgt._take_from_pool(v_template, v_run);
    COMMIT;
    CALL admmgt._create_copies(v_template, p_parallel, p_wait_seconds, v_run, v_error);
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    BEGIN
        v_items := admmgt._pending_tenant_items(v_template, false);
        PERFORM admmgt._check_template_free(v_items.p_create, v_template.dbname);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, v_error.detail = PG_EXCEPTION_DETAIL, v_error.hint = PG_EXCEPTION_HINT;
    END;
    CALL admmgt._end_call_if_failed('create', v_run, v_error);
    CALL admmgt._run('adopt', v_items.p_adopt, p_parallel, v_run);
    CALL admmgt._run('create', v_items.p_create, p_parallel, v_run);
    CALL admmgt._end_call('create', v_run);
END;
$$;
