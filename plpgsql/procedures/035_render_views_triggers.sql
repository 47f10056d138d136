-- Render layer, part 5: views (script_views) and triggers with their functions (script_triggers).
-- Each returns the statements of one script in row-id order, with the row each statement comes
-- from; every statement runs inside the script's transaction. destructive marks every DROP.

CREATE OR REPLACE FUNCTION admmgt._view_query(p_view admmgt.script_views, p_where text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the checked query of a script_views row: required to create or replace, refused on a drop; one statement's worth of SQL (a list: commas allowed) */
BEGIN
    IF p_view.action = 'drop' THEN
        IF p_view.query IS NOT NULL THEN
            RAISE EXCEPTION 'admmgt: % drops view %.% but also gives a query', p_where, p_view.schemaname, p_view.viewname
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('A drop takes no query: set the query of %s to NULL, or use action replace to change the view.', p_where);
        END IF;
        RETURN NULL;
    END IF;
    IF nullif(btrim(p_view.query), '') IS NULL THEN
        RAISE EXCEPTION 'admmgt: view query is missing in %', p_where
            USING ERRCODE = 'not_null_violation',
                  HINT = format('Set the query of %s: what follows AS in CREATE VIEW, for example SELECT id FROM app.t.', p_where);
    END IF;
    RETURN admmgt._sql_fragment(p_view.query, 'view query', p_where, p_list => true);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._view_stmts(p_view admmgt.script_views)
RETURNS TABLE (stmt text, destructive boolean)
LANGUAGE plpgsql STABLE
ROWS 4
SET search_path FROM CURRENT
AS $$
/* purpose: the statements of one script_views row: CREATE [OR REPLACE] VIEW, CREATE MATERIALIZED VIEW (replace drops it first: its data goes), or a confirmed DROP */
DECLARE
    v_where  CONSTANT text := admmgt._row('script_views', p_view.id);
    v_schema CONSTANT text := admmgt._app_schema(p_view.schemaname, v_where);
    v_name   CONSTANT text := admmgt._ident(p_view.viewname, 'view name', v_where);
    v_kind   CONSTANT text := CASE WHEN p_view.materialized = 1 THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END;
    v_query  CONSTANT text := admmgt._view_query(p_view, v_where);
BEGIN
    IF p_view.action = 'drop' THEN
        IF p_view.confirm IS NOT TRUE THEN
            RAISE EXCEPTION 'admmgt: % drops % %.% without confirm', v_where, lower(v_kind), v_schema, v_name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = format('Dropping a view breaks whatever reads it in every tenant: once checked, UPDATE admmgt.script_views SET confirm = true WHERE id = %s.', p_view.id);
        END IF;
        RETURN QUERY SELECT format('DROP %s %I.%I', v_kind, v_schema, v_name), true;
    ELSIF p_view.action = 'create' THEN
        RETURN QUERY SELECT format('CREATE %s %I.%I AS %s', v_kind, v_schema, v_name, v_query), false;
    ELSIF p_view.action = 'replace' AND p_view.materialized = 0 THEN
        RETURN QUERY SELECT format('CREATE OR REPLACE VIEW %I.%I AS %s', v_schema, v_name, v_query), false;
    ELSIF p_view.action = 'replace' THEN
        -- A materialized view has no CREATE OR REPLACE: its stored rows (and its indexes) go.
        RETURN QUERY VALUES (format('DROP MATERIALIZED VIEW IF EXISTS %I.%I', v_schema, v_name), true),
                            (format('CREATE MATERIALIZED VIEW %I.%I AS %s', v_schema, v_name, v_query), false);
    ELSE
        RAISE EXCEPTION 'admmgt: unknown action % in %', quote_literal(p_view.action), v_where
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use create, replace or drop.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_views(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE [OR REPLACE] [MATERIALIZED] VIEW / DROP VIEW for each script_views row of a script */
SELECT s.stmt, admmgt._row('script_views', v.id), 'script'::text, s.destructive
  FROM admmgt.script_views v
 CROSS JOIN LATERAL admmgt._view_stmts(v) WITH ORDINALITY AS s(stmt, destructive, n)
 WHERE v.scriptid = p_scriptid
 ORDER BY v.id, s.n;
$$;

CREATE OR REPLACE FUNCTION admmgt._trigger_events(p_events text, p_where text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the events of a script_triggers row, each as SQL: INSERT, UPDATE, UPDATE OF col[, col], DELETE, TRUNCATE, joined by OR, any case; refuse anything else */
DECLARE
    v_part text;
    v_cols text;
    v_out  text[] := '{}'::text[];
BEGIN
    FOREACH v_part IN ARRAY regexp_split_to_array(btrim(coalesce(p_events, '')), '\s+or\s+', 'i') LOOP
        IF v_part ~* '^(insert|update|delete|truncate)$' THEN
            v_out := v_out || upper(v_part);
        ELSIF v_part ~* '^update\s+of\s' THEN
            SELECT string_agg(format('%I', admmgt._ident(btrim(c), 'event column', p_where)), ', ' ORDER BY n) INTO v_cols
              FROM regexp_split_to_table(regexp_replace(v_part, '^update\s+of\s+', '', 'i'), ',') WITH ORDINALITY AS x(c, n);
            v_out := v_out || ('UPDATE OF ' || v_cols);
        ELSE
            RAISE EXCEPTION 'admmgt: invalid events % in %', quote_literal(p_events), p_where
                USING ERRCODE = 'syntax_error',
                      HINT = 'Write INSERT, UPDATE, UPDATE OF col[, col], DELETE or TRUNCATE, several joined by OR, for example: INSERT OR UPDATE OF amount OR DELETE.';
        END IF;
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._trigger_function_stmt(p_schema text, p_function text, p_body text, p_where text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: CREATE OR REPLACE FUNCTION of a trigger's function: PL/pgSQL, the body as one dollar-quoted constant (so it renders exactly, and for schema targets its code references to the template schema are rewritten like a routine's), SECURITY INVOKER, with search_path pinned to pg_catalog, pg_temp so that it resolves names the same for every caller */
BEGIN
    IF btrim(p_body) = '' THEN
        RAISE EXCEPTION 'admmgt: the function body of % is blank', p_where
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give the PL/pgSQL body (BEGIN ... RETURN NEW; END), or NULL to use a function that exists already.';
    END IF;
    RETURN format('CREATE OR REPLACE FUNCTION %I.%I() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %s',
                  p_schema, p_function, admmgt._dollar_quote(p_body, 'body'));
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._trigger_clauses(p_trigger admmgt.script_triggers, p_where text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: timing, events, FOR EACH and WHEN of a script_triggers row as SQL (what goes between the trigger's name and ON, and after ON); refuses INSTEAD OF per statement and TRUNCATE per row, whose PostgreSQL message would not name the row */
DECLARE
    v_events text[] := admmgt._trigger_events(p_trigger.events, p_where);
    v_timing text := CASE p_trigger.timing WHEN 'BEFORE' THEN 'BEFORE' WHEN 'AFTER' THEN 'AFTER' WHEN 'INSTEAD OF' THEN 'INSTEAD OF' END;
    v_each   text := CASE p_trigger."foreach" WHEN 'ROW' THEN 'ROW' WHEN 'STATEMENT' THEN 'STATEMENT' END;
    v_when   text := nullif(btrim(p_trigger.whenclause), '');
BEGIN
    IF v_timing IS NULL OR v_each IS NULL THEN
        RAISE EXCEPTION 'admmgt: invalid timing % or foreach % in %', quote_literal(p_trigger.timing), quote_literal(p_trigger."foreach"), p_where
            USING ERRCODE = 'invalid_parameter_value', HINT = 'timing is BEFORE, AFTER or INSTEAD OF; foreach is ROW or STATEMENT.';
    END IF;
    IF v_timing = 'INSTEAD OF' AND v_each = 'STATEMENT' THEN
        RAISE EXCEPTION 'admmgt: % is an INSTEAD OF trigger FOR EACH STATEMENT', p_where
            USING ERRCODE = 'feature_not_supported', HINT = 'INSTEAD OF triggers (on views) must be FOR EACH ROW: set foreach = ''ROW''.';
    END IF;
    IF v_each = 'ROW' AND 'TRUNCATE' = ANY (v_events) THEN
        RAISE EXCEPTION 'admmgt: % has a TRUNCATE event FOR EACH ROW', p_where
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'TRUNCATE fires only FOR EACH STATEMENT (foreach defaults to ROW): set foreach = ''STATEMENT'', or put TRUNCATE in a trigger of its own.';
    END IF;
    RETURN format('%s %s ON %I.%I FOR EACH %s%s', v_timing, array_to_string(v_events, ' OR '),
                  admmgt._app_schema(p_trigger.schemaname, p_where), admmgt._ident(p_trigger.tablename, 'table name', p_where), v_each,
                  CASE WHEN v_when IS NOT NULL THEN format(' WHEN (%s)', admmgt._sql_fragment(v_when, 'WHEN condition', p_where)) ELSE '' END);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._trigger_stmts(p_trigger admmgt.script_triggers)
RETURNS TABLE (stmt text, destructive boolean)
LANGUAGE plpgsql STABLE
ROWS 4
SET search_path FROM CURRENT
AS $$
/* purpose: the statements of one script_triggers row: its function when a body is given, then CREATE [OR REPLACE] TRIGGER; or DROP TRIGGER (which leaves the function) */
DECLARE
    v_where    CONSTANT text := admmgt._row('script_triggers', p_trigger.id);
    v_schema   CONSTANT text := admmgt._app_schema(p_trigger.schemaname, v_where);
    v_table    CONSTANT text := admmgt._ident(p_trigger.tablename, 'table name', v_where);
    v_name     CONSTANT text := admmgt._ident(p_trigger.triggername, 'trigger name', v_where);
    v_function CONSTANT text := admmgt._ident(p_trigger.functionname, 'function name', v_where);
BEGIN
    IF p_trigger.action = 'drop' THEN
        IF p_trigger.functionbody IS NOT NULL THEN
            RAISE EXCEPTION 'admmgt: % drops trigger % but also gives a function body', v_where, v_name
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A drop removes the trigger only and creates no function: set functionbody to NULL (drop the function with a script_sql step if nothing else uses it).';
        END IF;
        RETURN QUERY SELECT format('DROP TRIGGER %I ON %I.%I', v_name, v_schema, v_table), true;
        RETURN;
    ELSIF p_trigger.action NOT IN ('create', 'replace') THEN
        RAISE EXCEPTION 'admmgt: unknown action % in %', quote_literal(p_trigger.action), v_where
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use create, replace or drop.';
    END IF;
    IF p_trigger.functionbody IS NOT NULL THEN
        RETURN QUERY SELECT admmgt._trigger_function_stmt(v_schema, v_function, p_trigger.functionbody, v_where), false;
    END IF;
    RETURN QUERY SELECT format('CREATE %sTRIGGER %I %s EXECUTE FUNCTION %I.%I()',
                               CASE WHEN p_trigger.action = 'replace' THEN 'OR REPLACE ' ELSE '' END,
                               v_name, admmgt._trigger_clauses(p_trigger, v_where), v_schema, v_function), false;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_triggers(p_scriptid int)
RETURNS TABLE (stmt text, source text, txmode text, destructive boolean)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: the trigger function (when a body is given) and CREATE TRIGGER / DROP TRIGGER for each script_triggers row of a script */
SELECT s.stmt, admmgt._row('script_triggers', g.id), 'script'::text, s.destructive
  FROM admmgt.script_triggers g
 CROSS JOIN LATERAL admmgt._trigger_stmts(g) WITH ORDINALITY AS s(stmt, destructive, n)
 WHERE g.scriptid = p_scriptid
 ORDER BY g.id, s.n;
$$;
