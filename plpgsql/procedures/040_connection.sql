-- How the control plane reaches a database. Connection details live in the catalog: the dblink_fdw
-- foreign server admmgt_local (host, port, ...) and the caller's user mapping on it (user, password).
-- Without that server, or without a mapping for the caller, it connects over the server's own Unix
-- socket (trust or peer authentication).
-- The assembled string exists only in a local variable: it is never logged, raised or stored.

CREATE OR REPLACE FUNCTION admmgt._conninfo_quote(p_value text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: quote one libpq conninfo value */
SELECT '''' || replace(replace(p_value, '\', '\\'), '''', '\''') || '''';
$$;

CREATE OR REPLACE FUNCTION admmgt._connstr(p_dbname text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the libpq connection string for database p_dbname on the local cluster */
DECLARE
    v_opts text[];
    v_pairs text[] := '{}';
    v_opt text;
BEGIN
    -- The server's options count only with a user mapping for the caller (or PUBLIC): a role
    -- without one, a superuser say, connects over the socket instead.
    SELECT coalesce(s.srvoptions, '{}') || coalesce(um.umoptions, '{}')
      INTO v_opts
      FROM pg_foreign_server s
      JOIN LATERAL (SELECT m.umoptions FROM pg_user_mappings m
                     WHERE m.srvid = s.oid AND m.usename IN (current_user, 'public')
                     ORDER BY m.usename = 'public' LIMIT 1) um ON true
     WHERE s.srvname = 'admmgt_local';
    IF NOT FOUND THEN
        v_opts := ARRAY['port=' || current_setting('port')];
        v_opt := nullif(btrim(split_part(current_setting('unix_socket_directories'), ',', 1)), '');
        IF v_opt IS NOT NULL THEN
            v_opts := v_opts || ('host=' || v_opt);
        END IF;
    END IF;
    FOREACH v_opt IN ARRAY v_opts LOOP
        IF split_part(v_opt, '=', 1) <> 'dbname' THEN
            v_pairs := v_pairs || (split_part(v_opt, '=', 1) || '='
                                   || admmgt._conninfo_quote(substr(v_opt, position('=' IN v_opt) + 1)));
        END IF;
    END LOOP;
    RETURN array_to_string(v_pairs || ('dbname=' || admmgt._conninfo_quote(p_dbname))
                           || ('application_name=' || admmgt._conninfo_quote('admmgt')), ' ');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.set_connection(p_host text, p_port int, p_user text, p_password text DEFAULT NULL,
                                                 p_for_role name DEFAULT current_user)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: keep how the control plane reaches this cluster in the catalog: server admmgt_local (host, port) and a user mapping (user, password) for the role that runs the CALLs */
DECLARE
    v_opts text[];
    v_key text;
    v_val text;
    v_alter text[] := '{}';
BEGIN
    SELECT srvoptions INTO v_opts FROM pg_foreign_server WHERE srvname = 'admmgt_local';
    IF NOT FOUND THEN
        EXECUTE format('CREATE SERVER admmgt_local FOREIGN DATA WRAPPER dblink_fdw OPTIONS (host %L, port %L)', p_host, p_port::text);
    ELSE
        FOR v_key, v_val IN SELECT * FROM (VALUES ('host', p_host), ('port', p_port::text)) AS o(k, v) LOOP
            v_alter := v_alter || format('%s %I %L',
                CASE WHEN EXISTS (SELECT 1 FROM unnest(coalesce(v_opts, '{}')) o WHERE o LIKE v_key || '=%') THEN 'SET' ELSE 'ADD' END,
                v_key, v_val);
        END LOOP;
        EXECUTE format('ALTER SERVER admmgt_local OPTIONS (%s)', array_to_string(v_alter, ', '));
    END IF;
    EXECUTE format('GRANT USAGE ON FOREIGN SERVER admmgt_local TO %I', p_for_role);
    EXECUTE format('DROP USER MAPPING IF EXISTS FOR %I SERVER admmgt_local', p_for_role);
    BEGIN
        IF p_password IS NULL THEN
            EXECUTE format('CREATE USER MAPPING FOR %I SERVER admmgt_local OPTIONS (user %L)', p_for_role, p_user);
        ELSE
            EXECUTE format('CREATE USER MAPPING FOR %I SERVER admmgt_local OPTIONS (user %L, password %L)', p_for_role, p_user, p_password);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- The error's context would quote the statement, password included: raise it without.
        RAISE EXCEPTION 'admmgt: could not store the user mapping of role %: %', p_for_role, SQLERRM
            USING ERRCODE = SQLSTATE, HINT = 'Check that the role exists and that you may create user mappings on admmgt_local.';
    END;
END;
$$;
