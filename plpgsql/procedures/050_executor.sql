-- Execute layer: the one place that talks to targets. A target's batch is sent as one query string
-- (BEGIN; statements; COMMIT when atomic) over a connection opened once per target and run, several
-- targets at a time with dblink's asynchronous calls. Results come back one per statement, so the
-- count of results tells which statement failed. It never raises for a target: whatever goes
-- wrong there (connect, send, a statement, a lost connection) comes back in the exec_result.

CREATE OR REPLACE FUNCTION admmgt._conn_name(p_slot int)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the dblink connection name of an executor slot */
BEGIN
    RETURN 'admmgt_' || p_slot;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._conn_key(p_item admmgt.work_item)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: which connection a work item needs: a slot already connected there is reused */
BEGIN
    RETURN format('%s/%s', coalesce(p_item.server, 'local'), p_item.conn_db);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._target_label(p_item admmgt.work_item)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: how messages name a target: its database, with @server when that is not local (the template's copies share its name) */
BEGIN
    RETURN p_item.dbname || CASE WHEN coalesce(p_item.server, 'local') <> 'local' THEN '@' || p_item.server ELSE '' END;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._exec_disconnect(p_slot int)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: close a slot's connection if it is open; a broken connection is closed all the same */
BEGIN
    IF admmgt._conn_name(p_slot) = ANY (coalesce(dblink_get_connections(), '{}')) THEN
        PERFORM dblink_disconnect(admmgt._conn_name(p_slot));
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._exec_disconnect_all()
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: close every executor connection of this session, also those an aborted earlier call left open */
DECLARE
    v_name text;
BEGIN
    FOREACH v_name IN ARRAY coalesce(dblink_get_connections(), '{}') LOOP
        IF v_name LIKE 'admmgt\_%' THEN
            PERFORM dblink_disconnect(v_name);
        END IF;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._batch_prefix(p_atomic boolean)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what the executor sends before a batch's own statements. DDL holds ACCESS EXCLUSIVE locks until the tenant's transaction ends, so a batch waits at most admmgt.lock_timeout (default 5s) for a lock instead of queueing the tenant's traffic behind it; that target fails and the next run retries it */
BEGIN
    IF NOT p_atomic THEN
        RETURN '{}'::text[];
    END IF;
    RETURN ARRAY['BEGIN', 'SET LOCAL client_min_messages = warning',
                 format('SET LOCAL lock_timeout = %L', coalesce(nullif(current_setting('admmgt.lock_timeout', true), ''), '5s'))];
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._batch_text(p_item admmgt.work_item)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the query string of one work item */
BEGIN
    IF p_item.atomic THEN
        RETURN array_to_string(admmgt._batch_prefix(true) || p_item.stmts || 'COMMIT'::text, E';\n');
    END IF;
    IF cardinality(p_item.stmts) <> 1 THEN
        RAISE EXCEPTION 'admmgt: a non-transactional work item for % must hold exactly one statement', p_item.dbname
            USING ERRCODE = 'internal_error', HINT = 'This is a bug in admmgt; please report it.';
    END IF;
    RETURN p_item.stmts[1];
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._failed_statement(p_item admmgt.work_item, p_state admmgt.exec_result)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the statement a failed batch stopped at (results arrive one per statement sent) */
BEGIN
    IF p_state.failed_index IS NULL OR p_state.failed_index = 0 THEN
        RETURN NULL;
    END IF;
    RETURN (admmgt._batch_prefix(p_item.atomic) || p_item.stmts || 'COMMIT'::text)[p_state.failed_index];
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._exec_start(p_slot int, p_item admmgt.work_item, p_connect boolean, p_prefixes jsonb DEFAULT NULL)
RETURNS admmgt.exec_result
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: connect a slot if asked (with the server's prefix from p_prefixes, _connprefixes, when it is there), then send one work item without waiting for it */
DECLARE
    v admmgt.exec_result;
    v_name text := admmgt._conn_name(p_slot);
BEGIN
    v.done := false;
    v.broken := false;
    v.results := 0;
    v.outputs := '{}';
    v.started_at := clock_timestamp();
    BEGIN
        IF p_connect THEN
            PERFORM admmgt._exec_disconnect(p_slot);
            PERFORM dblink_connect(v_name, coalesce(admmgt._connstr_for(p_prefixes ->> coalesce(p_item.server, 'local'), p_item.conn_db),
                                                    admmgt._connstr(p_item.server, p_item.conn_db)));
        END IF;
        IF dblink_send_query(v_name, admmgt._batch_text(p_item)) <> 1 THEN
            RAISE EXCEPTION '%', coalesce(nullif(dblink_error_message(v_name), 'OK'), 'could not send the batch')
                USING ERRCODE = 'connection_failure';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v.sqlstate = RETURNED_SQLSTATE, v.message = MESSAGE_TEXT,
                                v.detail = PG_EXCEPTION_DETAIL, v.hint = PG_EXCEPTION_HINT;
        v.done := true; v.ok := false; v.broken := true; v.failed_index := 0;
        v.finished_at := clock_timestamp();
    END;
    RETURN v;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._exec_poll(p_slot int, p_atomic boolean, p_state admmgt.exec_result, p_wait boolean)
RETURNS admmgt.exec_result
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: take every result a slot has ready (all of them when p_wait); mark the batch done after the last one */
DECLARE
    v admmgt.exec_result := p_state;
    v_name text := admmgt._conn_name(p_slot);
    v_rows bigint;
    v_out text;
BEGIN
    LOOP
        -- One block (a subtransaction) around the results up to the first error, not one per result:
        -- PL/pgSQL keeps what the block assigned to v when a result raises.
        BEGIN
            LOOP
                IF NOT p_wait AND dblink_is_busy(v_name) = 1 THEN
                    RETURN v;
                END IF;
                -- Every statement the executor sends yields one row: a command tag or a one-row query.
                SELECT count(*), min(r.s) INTO v_rows, v_out FROM dblink_get_result(v_name) AS r(s text);
                IF v_rows = 0 THEN
                    v.done := true;
                    v.ok := coalesce(v.ok, true);
                    v.finished_at := clock_timestamp();
                    IF NOT v.ok AND p_atomic THEN
                        BEGIN
                            PERFORM dblink_exec(v_name, 'ROLLBACK');
                        EXCEPTION WHEN OTHERS THEN
                            v.broken := true;
                        END;
                    END IF;
                    RETURN v;
                END IF;
                v.results := v.results + 1;
                v.outputs := v.outputs || v_out;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            IF v.ok IS FALSE THEN
                -- A second error while draining: the connection itself is gone.
                v.broken := true; v.done := true; v.finished_at := clock_timestamp();
                RETURN v;
            END IF;
            GET STACKED DIAGNOSTICS v.sqlstate = RETURNED_SQLSTATE, v.message = MESSAGE_TEXT,
                                    v.detail = PG_EXCEPTION_DETAIL, v.hint = PG_EXCEPTION_HINT;
            v.ok := false;
            v.results := v.results + 1;
            v.failed_index := v.results;
        END;
    END LOOP;
END;
$$;
