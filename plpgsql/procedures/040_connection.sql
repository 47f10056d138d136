-- How the control plane reaches a database. Connection details live in the catalog: every
-- registered server (admmgt.servers) names a dblink_fdw foreign server (host, port, ...) and the
-- caller's user mapping on it holds user and password. Server local, the admin database's own
-- cluster, uses the foreign server admmgt_local when it exists with a mapping for the caller, and
-- its own Unix socket (trust or peer authentication) otherwise.
-- The assembled string exists only in a local variable: it is never logged, raised or stored.
-- Every routine that takes a credential as a parameter is PL/pgSQL, never SQL: auto_explain with
-- log_nested_statements logs the body of an SQL function with its parameters' values
-- (test/security.test.ts), and PL/pgSQL's own expressions with none.

CREATE OR REPLACE FUNCTION admmgt._conninfo_quote(p_value text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: quote one libpq conninfo value */
BEGIN
    RETURN '''' || replace(replace(p_value, '\', '\\'), '''', '\''') || '''';
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._server_name(p_value text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a server name: a plain identifier short enough for its foreign server's name, admmgt_srv_<name> */
DECLARE
    v_name text := admmgt._ident(p_value, 'server name', p_row);
BEGIN
    IF octet_length(v_name) > 48 THEN
        RAISE EXCEPTION 'admmgt: invalid server name % in %', quote_literal(p_value), p_row
            USING ERRCODE = 'invalid_name', HINT = 'A server name has at most 48 bytes.';
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._server(p_server text)
RETURNS admmgt.servers
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the registry row of a server; NULL means local */
DECLARE
    v admmgt.servers;
BEGIN
    SELECT * INTO v FROM admmgt.servers s WHERE s.name = coalesce(p_server, 'local');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'admmgt: server % is not registered', p_server
            USING ERRCODE = 'undefined_object', HINT = 'admmgt cluster list shows the registered servers; admmgt cluster add registers one.';
    END IF;
    RETURN v;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._maint_db(p_server text)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the database admmgt connects to on a server to create databases and grant access to them */
SELECT coalesce(s.maintdb, CASE WHEN s.name = 'local' THEN current_database() ELSE 'postgres' END)
  FROM admmgt._server(p_server) s;
$$;

CREATE OR REPLACE FUNCTION admmgt._connprefix(p_server text, p_role name DEFAULT current_user)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the libpq connection string of a registered server with the user mapping of p_role (the caller), every keyword but the database's; _connstr_for adds that */
DECLARE
    v_srv admmgt.servers := admmgt._server(p_server);
    v_fdw name := coalesce(v_srv.fdwserver, 'admmgt_local');
    v_opts text[];
    v_pairs text[] := '{}'::text[];
    v_opt text;
BEGIN
    -- The server's options count only with a user mapping for the caller (or PUBLIC): on local, a
    -- role without one, a superuser say, connects over the socket instead.
    SELECT coalesce(s.srvoptions, '{}') || coalesce(um.umoptions, '{}')
      INTO v_opts
      FROM pg_foreign_server s
      JOIN LATERAL (SELECT m.umoptions FROM pg_user_mappings m
                     WHERE m.srvid = s.oid AND m.usename IN (p_role, 'public')
                     ORDER BY m.usename = 'public' LIMIT 1) um ON true
     WHERE s.srvname = v_fdw;
    IF NOT FOUND AND v_srv.name <> 'local' THEN
        IF NOT EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = v_fdw) THEN
            RAISE EXCEPTION 'admmgt: server %: foreign server % does not exist', v_srv.name, v_fdw
                USING ERRCODE = 'undefined_object',
                      HINT = 'Register the server again: admmgt cluster add NAME --url ..., or SELECT admmgt.add_server(...).';
        END IF;
        RAISE EXCEPTION 'admmgt: server %: role % has no user mapping on foreign server %', v_srv.name, p_role, v_fdw
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Run SELECT admmgt.add_server(%L, ..., p_for_role => %L), or CREATE USER MAPPING FOR %I SERVER %I OPTIONS (user ..., password ...).',
                                v_srv.name, p_role, p_role, v_fdw);
    ELSIF NOT FOUND THEN
        v_opts := ARRAY['port=' || current_setting('port')];
        v_opt := nullif(btrim(split_part(current_setting('unix_socket_directories'), ',', 1)), '');
        IF v_opt IS NOT NULL THEN
            v_opts := v_opts || ('host=' || v_opt);
        END IF;
    END IF;
    -- A server that does not answer must not hold a run for minutes: 10 s unless the foreign server says otherwise.
    IF NOT EXISTS (SELECT 1 FROM unnest(v_opts) o WHERE o LIKE 'connect\_timeout=%') THEN
        v_opts := v_opts || 'connect_timeout=10'::text;
    END IF;
    -- A target is untrusted: nothing its roles create may run with admmgt's rights. Every session
    -- admmgt opens there resolves names in pg_catalog first and never in a schema a tenant can
    -- write to, and applies no row security policy (a query it would affect fails instead). It
    -- reads a '\' in a string as the lexer of SQL steps does (standard_conforming_strings on),
    -- whatever a database or role setting says, so every target reads a step as admmgt split it.
    -- Appended after the server's own options, so that these win.
    v_opts := v_opts || ('options=' || concat_ws(' ',
        (SELECT substr(o, 9) FROM unnest(v_opts) o WHERE o LIKE 'options=%' LIMIT 1),
        '-c search_path=pg_catalog,pg_temp -c row_security=off -c standard_conforming_strings=on'));
    FOREACH v_opt IN ARRAY v_opts LOOP
        IF split_part(v_opt, '=', 1) <> 'dbname' AND v_opt NOT LIKE 'options=%' THEN
            v_pairs := v_pairs || (split_part(v_opt, '=', 1) || '='
                                   || admmgt._conninfo_quote(substr(v_opt, position('=' IN v_opt) + 1)));
        END IF;
    END LOOP;
    v_pairs := v_pairs || ('options=' || admmgt._conninfo_quote(substr(v_opts[cardinality(v_opts)], 9)))
                       || ('application_name=' || admmgt._conninfo_quote('admmgt'));
    RETURN array_to_string(v_pairs, ' ');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._connstr_for(p_prefix text, p_dbname text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the connection string of database p_dbname from its server's _connprefix (which never holds a dbname) */
BEGIN
    RETURN p_prefix || ' dbname=' || admmgt._conninfo_quote(p_dbname);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._connstr(p_server text, p_dbname text, p_role name DEFAULT current_user)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the libpq connection string for database p_dbname on a registered server, with the user mapping of p_role (the caller) */
BEGIN
    RETURN admmgt._connstr_for(admmgt._connprefix(p_server, p_role), p_dbname);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._connprefixes(p_items admmgt.work_item[], p_known jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: p_known ({server: prefix}) with the _connprefix of every other server the items reach, so that a run reads each once; a server whose prefix cannot be made is left out, and its items fail on their own connection as without it. The result holds credentials: keep it in a local variable only */
DECLARE
    v jsonb := coalesce(p_known, '{}'::jsonb);
    v_srv text;
BEGIN
    FOR v_srv IN SELECT DISTINCT coalesce(i.server, 'local') FROM unnest(p_items) AS i LOOP
        CONTINUE WHEN v ? v_srv;
        BEGIN
            v := v || jsonb_build_object(v_srv, admmgt._connprefix(v_srv));
        EXCEPTION WHEN OTHERS THEN
            -- Not raised here: the item's own connect raises it again and books it for the target.
            NULL;
        END;
    END LOOP;
    RETURN v;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._server_databases(p_server text)
RETURNS text[]
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the databases that exist on a server; NULL when it cannot be reached (its work items then fail on their own connection, naming the server) */
BEGIN
    IF coalesce(p_server, 'local') = 'local' THEN
        RETURN ARRAY(SELECT d.datname::text FROM pg_database d);
    END IF;
    RETURN ARRAY(SELECT r.datname FROM dblink(admmgt._connstr(p_server, admmgt._maint_db(p_server)),
                                              'SELECT datname::text FROM pg_catalog.pg_database') AS r(datname text));
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._store_connection(p_fdw name, p_host text, p_port int, p_user text, p_password text, p_for_role name,
                                                     p_options jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: create or update a dblink_fdw foreign server (host, port and further libpq options such as sslmode) and the user mapping (user, password) of the role that runs the CALLs */
DECLARE
    v_opts text[];
    v_key text;
    v_val text;
    v_alter text[] := '{}'::text[];
BEGIN
    FOR v_key IN SELECT jsonb_object_keys(coalesce(p_options, '{}')) LOOP
        IF v_key !~ '^[a-z_]+$' OR v_key IN ('host', 'hostaddr', 'port', 'user', 'password', 'dbname', 'passfile') THEN
            RAISE EXCEPTION 'admmgt: % is not an option admmgt stores on the foreign server %', quote_literal(v_key), p_fdw
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Host and port have their own parameters; user and password go into the user mapping; the database is chosen per target. Pass libpq options such as sslmode or connect_timeout.';
        END IF;
    END LOOP;
    SELECT srvoptions INTO v_opts FROM pg_foreign_server WHERE srvname = p_fdw;
    IF NOT FOUND THEN
        EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER dblink_fdw', p_fdw);
    END IF;
    FOR v_key, v_val IN SELECT o.key, o.value
                          FROM jsonb_each_text(jsonb_build_object('host', p_host, 'port', p_port::text) || coalesce(p_options, '{}')) AS o LOOP
        v_alter := v_alter || format('%s %I %L',
            CASE WHEN EXISTS (SELECT 1 FROM unnest(coalesce(v_opts, '{}')) o WHERE o LIKE v_key || '=%') THEN 'SET' ELSE 'ADD' END,
            v_key, v_val);
    END LOOP;
    EXECUTE format('ALTER SERVER %I OPTIONS (%s)', p_fdw, array_to_string(v_alter, ', '));
    EXECUTE format('GRANT USAGE ON FOREIGN SERVER %I TO %I', p_fdw, p_for_role);
    SELECT m.umoptions INTO v_opts FROM pg_user_mappings m WHERE m.srvname = p_fdw AND m.usename = p_for_role;
    BEGIN
        IF NOT FOUND THEN
            EXECUTE format('CREATE USER MAPPING FOR %I SERVER %I OPTIONS (user %L)', p_for_role, p_fdw, p_user);
            v_opts := ARRAY['user=' || p_user];
        ELSE
            EXECUTE format('ALTER USER MAPPING FOR %I SERVER %I OPTIONS (%s user %L)', p_for_role, p_fdw,
                           CASE WHEN EXISTS (SELECT 1 FROM unnest(coalesce(v_opts, '{}')) o WHERE o LIKE 'user=%') THEN 'SET' ELSE 'ADD' END, p_user);
        END IF;
        -- No password given keeps the one stored (re-registering to drain a server or change its
        -- host must not lose it); ALTER USER MAPPING ... OPTIONS (DROP password) removes it.
        IF p_password IS NOT NULL THEN
            EXECUTE format('ALTER USER MAPPING FOR %I SERVER %I OPTIONS (%s password %L)', p_for_role, p_fdw,
                           CASE WHEN EXISTS (SELECT 1 FROM unnest(coalesce(v_opts, '{}')) o WHERE o LIKE 'password=%') THEN 'SET' ELSE 'ADD' END, p_password);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- The error's context would quote the statement, password included: raise it without.
        RAISE EXCEPTION 'admmgt: could not store the user mapping of role % on %: %', p_for_role, p_fdw, SQLERRM
            USING ERRCODE = SQLSTATE, HINT = format('Check that the role exists and that you may create user mappings on %s.', p_fdw);
    END;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.set_connection(p_host text, p_port int, p_user text, p_password text DEFAULT NULL,
                                                 p_for_role name DEFAULT current_user)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: keep how the control plane reaches its own cluster (server local) in the catalog: foreign server admmgt_local (host, port) and a user mapping (user, password) for the role that runs the CALLs */
BEGIN
    PERFORM admmgt._store_connection('admmgt_local', p_host, p_port, p_user, p_password, p_for_role, NULL);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_not_registered(p_name text, p_identifier text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a server whose cluster is already registered: the admin database's own (local), or another row reaching the same cluster by another address; two rows for one cluster would make its template a copy of itself */
DECLARE
    v_same text;
BEGIN
    SELECT s.name::text INTO v_same FROM admmgt.servers s
     WHERE s.name <> p_name
       AND CASE WHEN s.name = 'local' THEN (SELECT c.system_identifier::text FROM pg_catalog.pg_control_system() c) ELSE s.system_identifier END = p_identifier
     ORDER BY s.name = 'local' DESC, s.name LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'admmgt: server % is the cluster that is registered as server % already (system identifier %)', p_name, v_same, p_identifier
            USING ERRCODE = 'duplicate_object',
                  DETAIL = 'Nothing was registered.',
                  HINT = CASE WHEN v_same = 'local' THEN 'That is the admin database''s own cluster, which is always server local; to reach it over TCP with a password, use SELECT admmgt.set_connection(host, port, user, password).'
                              ELSE format('Change how server %s is reached instead: admmgt cluster add %s --url ...', v_same, v_same) END;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.add_server(p_name text, p_host text, p_port int, p_user text, p_password text DEFAULT NULL,
                                             p_maintdb text DEFAULT NULL, p_accepts_tenants boolean DEFAULT NULL,
                                             p_for_role name DEFAULT current_user, p_check boolean DEFAULT true,
                                             p_options jsonb DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: register a server, or change how it is reached: foreign server admmgt_srv_<name> (host, port, p_options such as sslmode), p_for_role's user mapping on it, and its registry row (p_maintdb default postgres, p_accepts_tenants default true; NULL keeps what a registered server has); connects once as p_for_role to prove it works and returns the server's version */
DECLARE
    v_name text := admmgt._server_name(p_name, 'the argument p_name of admmgt.add_server');
    v_fdw name := ('admmgt_srv_' || v_name)::name;
    v_version text;
    v_identifier text;
    v_state text;
    v_msg text;
    v_detail text;
BEGIN
    IF v_name = 'local' THEN
        RAISE EXCEPTION 'admmgt: server local is the admin database''s own cluster and is always registered'
            USING ERRCODE = 'reserved_name',
                  HINT = 'To reach it over TCP with a password, use SELECT admmgt.set_connection(host, port, user, password).';
    END IF;
    IF p_host IS NULL OR p_port IS NULL OR p_user IS NULL OR p_port NOT BETWEEN 1 AND 65535 THEN
        RAISE EXCEPTION 'admmgt: server % needs a host, a port between 1 and 65535 and a user', v_name
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass all three: admmgt cluster add NAME --url postgres://USER:PASSWORD@HOST:PORT/postgres.';
    END IF;
    PERFORM admmgt._store_connection(v_fdw, p_host, p_port, p_user, p_password, p_for_role, p_options);
    INSERT INTO admmgt.servers AS s (name, fdwserver, maintdb, accepts_tenants)
    VALUES (v_name, v_fdw, p_maintdb, coalesce(p_accepts_tenants, true))
    ON CONFLICT (name) DO UPDATE
       SET fdwserver = EXCLUDED.fdwserver, maintdb = coalesce(p_maintdb, s.maintdb),
           accepts_tenants = coalesce(p_accepts_tenants, s.accepts_tenants);
    IF coalesce(p_check, true) THEN
        BEGIN
            SELECT r.v, r.id INTO v_version, v_identifier
              FROM dblink(admmgt._connstr(v_name, admmgt._maint_db(v_name), p_for_role),
                          'SELECT pg_catalog.version(), (SELECT system_identifier::text FROM pg_catalog.pg_control_system())') AS r(v text, id text);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
            RAISE EXCEPTION 'admmgt: server % (host %, port %) cannot be reached as user % (the mapping of role %): %', v_name, p_host, p_port, p_user, p_for_role,
                            concat_ws(': ', v_msg, nullif(btrim(v_detail), ''))
                USING ERRCODE = v_state,
                      DETAIL = 'Nothing was registered.',
                      HINT = 'Check host, port, user, password and pg_hba.conf of that server, or pass p_check => false to register it while it is down.';
        END;
    END IF;
    IF v_identifier IS NOT NULL THEN
        PERFORM admmgt._check_not_registered(v_name, v_identifier);
        UPDATE admmgt.servers SET system_identifier = v_identifier WHERE name = v_name;
    END IF;
    RETURN coalesce(v_version, 'not checked');
END;
$$;
