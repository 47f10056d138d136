-- The frame every public procedure runs in: refuse a transaction block, take the operation's
-- advisory lock, register the run, and always leave no connection behind.
--
-- THE RULE: nothing may raise between _begin_call and _end_call. The operation lock is
-- session-level (065_locks.sql), so an error in between would leave this session holding it
-- (until its next admmgt call or until it disconnects) and its run unfinished. So:
--   - everything that can be refused (arguments, rows, the template) is checked before
--     _begin_call, and what must be re-read under the lock is read inside a block that catches
--     the error into an admmgt.error_state;
--   - the executor and the record layer never raise for a target: a target's failure is booked
--     and the run goes on (050_executor.sql, 060_record.sql);
--   - a caught error closes the frame with it, CALL admmgt._end_call(op, run, error), which
--     raises it again with its own SQLSTATE, message, detail and hint once the lock is let go;
--     the idiom, in every procedure:
--         BEGIN
--             v_items := ...;   -- what may raise
--         EXCEPTION WHEN OTHERS THEN
--             GET STACKED DIAGNOSTICS v_error.sqlstate = RETURNED_SQLSTATE, v_error.message = MESSAGE_TEXT, ...;
--         END;
--         CALL admmgt._end_call_if_failed(op, run, v_error);
-- A block that catches errors cannot COMMIT, so CALL admmgt._run(...) always stands outside one.

CREATE OR REPLACE FUNCTION admmgt._check_count(p_label text, p_param text, p_value int, p_hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a count of sessions or connections (p_parallel, p_workers) outside 1 to 64, naming the routine and the parameter */
BEGIN
    IF p_value IS NOT NULL AND (p_value < 1 OR p_value > 64) THEN
        RAISE EXCEPTION 'admmgt.%: % must be between 1 and 64, not %', p_label, p_param, p_value
            USING ERRCODE = 'invalid_parameter_value', HINT = p_hint;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_parallel(p_label text, p_parallel int)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a p_parallel out of range, naming the routine */
BEGIN
    PERFORM admmgt._check_count(p_label, 'p_parallel', p_parallel,
                                'Each target at once holds one connection; leave p_parallel out for the default of 4.');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_workers(p_label text, p_workers int)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a p_workers out of range, naming the routine */
BEGIN
    PERFORM admmgt._check_count(p_label, 'p_workers', p_workers,
                                'Each worker is one more session on the admin database, with p_parallel targets at once (default 1); leave p_workers out to run in this session alone.');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_call(p_label text, p_parallel int, p_tenants text[] DEFAULT NULL, p_server text DEFAULT NULL,
                                              p_tag text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, with a hint, a CALL typed inside a transaction block, a bad p_parallel or a bad selection of targets, before anything is touched */
BEGIN
    PERFORM admmgt._check_parallel(p_label, p_parallel);
    PERFORM admmgt._check_selection(p_label, p_tenants, p_server, p_tag);
    -- PL/pgSQL cannot ask whether it runs in a transaction block. A transaction that began well
    -- before this statement is one (BEGIN typed in psql); the extended query protocol starts the
    -- transaction a fraction of a millisecond before the CALL, so only a clear gap counts. Blocks
    -- the gap misses are refused all the same by the COMMIT in _begin_call (SQLSTATE 2D000).
    IF statement_timestamp() - transaction_timestamp() > interval '1 second' THEN
        RAISE EXCEPTION 'admmgt.% cannot run inside a transaction block', p_label
            USING ERRCODE = 'active_sql_transaction',
                  HINT = format('Run CALL admmgt.%s(...) on its own in autocommit mode: it commits once per target so that a failure or a kill keeps every finished tenant.', p_label);
    END IF;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._begin_call(p_op text, p_label text, p_wait_seconds int, INOUT p_run_id bigint)
LANGUAGE plpgsql
AS $$
/* purpose: the frame of a public procedure: no transaction block, one run per operation at a time, no stale connections */
DECLARE
    v_deadline timestamptz := clock_timestamp() + make_interval(secs => greatest(coalesce(p_wait_seconds, 0), 0));
    v_holder record;
BEGIN
    PERFORM admmgt._check_call(p_label, NULL);
    -- Fails with "invalid transaction termination" in the cases the test above cannot see.
    COMMIT;
    WHILE NOT admmgt._try_lock(p_op) LOOP
        IF clock_timestamp() >= v_deadline THEN
            SELECT * INTO v_holder FROM admmgt._lock_holders(admmgt._lock_key(p_op));
            IF v_holder.operation IS NOT NULL AND v_holder.operation <> p_op THEN
                -- Operations that share a lock: say which one holds it.
                RAISE EXCEPTION 'admmgt.% cannot start while % is running (they share one lock): %', p_label, v_holder.operation, v_holder.description
                    USING ERRCODE = 'lock_not_available',
                          HINT = 'Wait for that run to end, or pass p_wait_seconds => N to wait up to N seconds.';
            END IF;
            RAISE EXCEPTION 'admmgt.% is already running: %', p_label,
                            coalesce(v_holder.description, admmgt._workers_of_earlier_run(p_op), 'holder has just finished')
                USING ERRCODE = 'lock_not_available',
                      HINT = 'Wait for that run to end, or pass p_wait_seconds => N to wait up to N seconds.';
        END IF;
        PERFORM pg_sleep(0.2);
    END LOOP;
    PERFORM admmgt._exec_disconnect_all();
    UPDATE admmgt.runs SET finished_at = clock_timestamp()
     WHERE finished_at IS NULL AND operation = p_op
       AND (pid = pg_backend_pid() OR pid NOT IN (SELECT a.pid FROM pg_stat_activity a));
    INSERT INTO admmgt.runs (operation) VALUES (p_op) RETURNING run_id INTO p_run_id;
    COMMIT;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._raise(p_error admmgt.error_state)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: raise a caught error again, keeping its SQLSTATE, message, detail and hint */
DECLARE
    v_detail text := nullif(p_error.detail, '');
    v_hint text := nullif(p_error.hint, '');
BEGIN
    IF v_detail IS NULL AND v_hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_error.sqlstate, MESSAGE = p_error.message;
    ELSIF v_detail IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_error.sqlstate, MESSAGE = p_error.message, HINT = v_hint;
    ELSIF v_hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = p_error.sqlstate, MESSAGE = p_error.message, DETAIL = v_detail;
    END IF;
    RAISE EXCEPTION USING ERRCODE = p_error.sqlstate, MESSAGE = p_error.message, DETAIL = v_detail, HINT = v_hint;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._end_call(p_op text, p_run_id bigint, p_error admmgt.error_state DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: close the frame of a public procedure; with p_error, raise that error again once the run is finished and the lock let go */
BEGIN
    PERFORM admmgt._exec_disconnect_all();
    UPDATE admmgt.runs SET finished_at = clock_timestamp() WHERE run_id = p_run_id;
    COMMIT;
    PERFORM admmgt._unlock(admmgt._lock_key(p_op));
    IF p_error.sqlstate IS NOT NULL THEN
        PERFORM admmgt._raise(p_error);
    END IF;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._end_call_if_failed(p_op text, p_run_id bigint, p_error admmgt.error_state)
LANGUAGE plpgsql
AS $$
/* purpose: after a block under the lock: when it caught an error, close the frame with it (which raises it again); else nothing */
BEGIN
    IF p_error.sqlstate IS NOT NULL THEN
        CALL admmgt._end_call(p_op, p_run_id, p_error);
    END IF;
END;
$$;
