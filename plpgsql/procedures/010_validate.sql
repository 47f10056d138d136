-- Input checks for names and SQL fragments that come from script rows and the tenant registry.
-- Every check names the offending row and value, so a DBA can fix the row and rerun.

CREATE OR REPLACE FUNCTION admmgt._ident(p_value text, p_what text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: fold a name from a script row to lower case and refuse anything but a plain identifier */
DECLARE
    v_name text := lower(btrim(p_value));
BEGIN
    IF v_name IS NULL OR v_name = '' THEN
        RAISE EXCEPTION 'admmgt: % is missing in %', p_what, p_row
            USING ERRCODE = 'not_null_violation',
                  HINT = format('Set the %s of %s.', p_what, p_row);
    END IF;
    IF v_name !~ '^[a-z_][a-z0-9_]*$' OR octet_length(v_name) > 63 THEN
        RAISE EXCEPTION 'admmgt: invalid % % in %', p_what, quote_literal(p_value), p_row
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use a plain identifier of at most 63 bytes: a letter or _, then letters, digits or _.';
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._app_schema(p_value text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a schema name from a script row: a plain identifier that is not a system schema or admmgt's own */
DECLARE
    v_name text := admmgt._ident(p_value, 'schema name', p_row);
BEGIN
    IF v_name IN ('admmgt', 'information_schema') OR v_name LIKE 'pg\_%' THEN
        RAISE EXCEPTION 'admmgt: % names the reserved schema %', p_row, v_name
            USING ERRCODE = 'reserved_name',
                  HINT = 'Scripts create objects in app schemas only; admmgt, information_schema and pg_* are not.';
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._login_role(p_value text, p_row text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a tenant's login role: a plain identifier, not a reserved or privileged role */
DECLARE
    v_name text := admmgt._ident(p_value, 'login role', p_row);
BEGIN
    IF v_name IN ('postgres', 'public', 'admmgt_operator') OR v_name LIKE 'pg\_%'
       OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = v_name
                   AND (r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls)) THEN
        RAISE EXCEPTION 'admmgt: % names the reserved or privileged role %', p_row, v_name
            USING ERRCODE = 'reserved_name',
                  HINT = 'A tenant login role must be an ordinary role of its own: no superuser, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS.';
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._tenant_name(p_value text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: fold a tenant database name to lower case and refuse anything but a slug; blanks around it are refused too, since 'x ', ' X' and 'x' would be one database */
DECLARE
    v_name text := lower(p_value);
BEGIN
    IF v_name IS NULL OR v_name !~ '^[a-z][a-z0-9_-]*$' OR octet_length(v_name) > 63 THEN
        RAISE EXCEPTION 'admmgt: invalid database name % in %', quote_literal(p_value), p_row
            USING ERRCODE = 'invalid_name',
                  HINT = 'A database name is a letter, then letters, digits, _ or -, at most 63 bytes after folding to lower case, with no blanks around it.';
    END IF;
    RETURN v_name;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._datatype(p_value text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: accept a column type written as SQL (varchar(10), numeric(12,2), timestamp with time zone, text[], schema.type) and nothing else */
DECLARE
    v_type text := btrim(p_value);
    v_word CONSTANT text := '[A-Za-z_][A-Za-z0-9_]*';
    v_ok boolean;
BEGIN
    v_ok := v_type ~ ('^' || v_word || '(\.' || v_word || ')?( ' || v_word || ')*'
                      || '( ?\( *[0-9]+ *(, *-?[0-9]+ *)?\))?( ' || v_word || ')*( ?\[[0-9]*\])*$');
    -- Words after the type name may only be those of multi-word SQL types, so that no constraint
    -- (PRIMARY KEY, REFERENCES, DEFAULT ...) rides along with the type.
    v_ok := coalesce(v_ok, false) AND NOT EXISTS (
        SELECT 1 FROM regexp_split_to_table(lower(regexp_replace(
                   regexp_replace(v_type, '\([^)]*\)|\[[0-9]*\]', ' ', 'g'), '^\S+', '')), '\s+') AS w
         WHERE w <> '' AND w NOT IN ('varying', 'precision', 'character', 'with', 'without', 'time', 'zone',
                                     'year', 'month', 'day', 'hour', 'minute', 'second', 'to'));
    IF NOT v_ok THEN
        RAISE EXCEPTION 'admmgt: invalid data type % in %', coalesce(quote_literal(p_value), 'NULL'), p_row
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write a type name as in CREATE TABLE, for example varchar(10), numeric(12,2), timestamptz or text[]; constraints have their own columns.';
    END IF;
    RETURN v_type;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_fragment(p_value text, p_what text, p_row text, p_list boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: accept a SQL fragment (a DEFAULT expression, a CALL) only if it is one expression: it cannot end its statement or start another one, and has no comma outside parentheses (which would add a clause: DEFAULT 0, DROP COLUMN x), unless it is a list (p_list: a CALL's arguments) */
DECLARE
    v_text  text := btrim(p_value);
    v_len   int := length(v_text);
    v_depth int := 0;
    v_quote text;
    v_i     int := 1;
    v_ch    text;
    v_bad   text;
BEGIN
    WHILE v_i <= v_len LOOP
        v_ch := substr(v_text, v_i, 1);
        IF v_ch = '\' THEN
            -- Inside E'...' a backslash escapes a quote, which would end the string early.
            v_bad := 'a backslash'; EXIT;
        END IF;
        IF v_quote IS NOT NULL THEN
            IF v_ch = v_quote THEN
                IF substr(v_text, v_i + 1, 1) = v_quote THEN
                    v_i := v_i + 1;
                ELSE
                    v_quote := NULL;
                END IF;
            END IF;
        ELSIF v_ch IN ('''', '"') THEN
            v_quote := v_ch;
        ELSIF v_ch IN ('(', '[') THEN
            -- Brackets nest like parentheses: ARRAY['a', 'b'] is one expression.
            v_depth := v_depth + 1;
        ELSIF v_ch IN (')', ']') THEN
            v_depth := v_depth - 1;
            IF v_depth < 0 THEN v_bad := 'an unbalanced "' || v_ch || '"'; EXIT; END IF;
        ELSIF v_ch = ',' AND v_depth = 0 AND NOT p_list THEN
            v_bad := 'a comma outside parentheses'; EXIT;
        ELSIF v_ch IN (';', '$') THEN
            v_bad := format('the character %L outside a string', v_ch); EXIT;
        ELSIF substr(v_text, v_i, 2) IN ('--', '/*') THEN
            v_bad := 'a comment'; EXIT;
        END IF;
        v_i := v_i + 1;
    END LOOP;
    IF v_bad IS NULL AND v_quote IS NOT NULL THEN v_bad := 'an unterminated quote'; END IF;
    IF v_bad IS NULL AND v_depth <> 0 THEN v_bad := 'an unbalanced "(" or "["'; END IF;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: invalid % % in %: it contains %', p_what, quote_literal(p_value), p_row, v_bad
            USING ERRCODE = 'syntax_error',
                  HINT = 'A fragment must be one expression or one CALL, without ;, comments, backslashes, dollar quotes or commas outside parentheses.';
    END IF;
    RETURN v_text;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._call_stmt(p_value text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: accept a script_procs call as one CALL of a schema-qualified procedure whose one argument list is all that follows its name ("p(), (1)" and "p() (1)" are refused) */
DECLARE
    v_call text := regexp_replace(btrim(coalesce(p_value, '')), ';\s*$', '');
    v_args text := (regexp_match(v_call, '^call\s+[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*\s*\((.*)\)$', 'i'))[1];
BEGIN
    IF v_args IS NULL THEN
        RAISE EXCEPTION 'admmgt: invalid call % in %', coalesce(quote_literal(p_value), 'NULL'), p_row
            USING ERRCODE = 'syntax_error',
                  HINT = 'Write one CALL of a schema-qualified procedure, for example: call mgttest.testproc1()';
    END IF;
    -- The arguments between the first "(" and the last ")" are a list that never closes early.
    PERFORM admmgt._sql_fragment(v_args, 'call arguments', p_row, true);
    RETURN admmgt._sql_fragment(v_call, 'call', p_row);
END;
$$;
