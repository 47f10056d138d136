-- Record layer: what the admin side keeps of each finished work item. It knows no operation:
-- it fills in a booking from the item and its result, hands it to the booking hook of the item's
-- kind (admmgt._book_<kind>, in the file of the operation that makes such items), which may say
-- what to log instead and updates the registry for its kind, then writes what the booking says
-- in one statement: the log rows, the target's latest outcome, its version and the run's counters.
-- The hooks are called through admmgt._book (899_book_dispatch.sql, generated at install from the
-- _book_<kind> routines), so that no call is planned anew for each target.
-- Runs in the caller's transaction, which the run loop commits after every target, so a killed
-- run loses nothing that a target committed (and the tenant-side ledger covers the window in
-- between). Like the executor it never raises for a target: a failure is booked, not thrown.

CREATE OR REPLACE FUNCTION admmgt._elapsed_ms(p_state admmgt.exec_result)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: how long a work item took, in milliseconds */
BEGIN
    RETURN round(extract(epoch FROM p_state.finished_at - p_state.started_at)::numeric * 1000, 3);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._booking(p_item admmgt.work_item, p_state admmgt.exec_result)
RETURNS admmgt.booking
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the default booking of a finished item: its statements when it succeeded; else the statement it stopped at, and the error, a lost connection named by server and database */
DECLARE
    b admmgt.booking;
BEGIN
    b.ok := p_state.ok;
    b.statement := CASE WHEN NOT p_state.ok THEN admmgt._failed_statement(p_item, p_state) END;
    b.sqlstate := p_state.sqlstate;
    b.message := p_state.message;
    b.detail := p_state.detail;
    b.hint := p_state.hint;
    IF p_state.broken THEN
        -- The connection failed or was lost: say where, with libpq's reason, which dblink keeps in the detail.
        b.message := format('server %s, database %s: %s', coalesce(p_item.server, 'local'), p_item.conn_db,
                            concat_ws(': ', p_state.message, nullif(btrim(p_state.detail), '')));
    END IF;
    b.outcome := CASE WHEN b.ok THEN 'ok' ELSE 'error' END;
    b.lines := CASE WHEN b.ok THEN p_item.stmts ELSE ARRAY[coalesce(b.statement, 'connect')] END;
    b.skip_part := false;
    RETURN b;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._success_lines(p_booking admmgt.booking, p_lines text[])
RETURNS admmgt.booking
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: for a hook: log p_lines instead of the item's statements when it succeeded (a failure keeps the statement it stopped at) */
BEGIN
    IF p_booking.ok THEN
        p_booking.lines := coalesce(p_lines, '{}');
    END IF;
    RETURN p_booking;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._refused(p_booking admmgt.booking, p_sqlstate text, p_message text, p_hint text, p_statement text)
RETURNS admmgt.booking
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: for a hook: book a work item that ran as failed after all, with the reason the hook found */
BEGIN
    p_booking.ok := false;
    p_booking.outcome := 'error';
    p_booking.sqlstate := p_sqlstate;
    p_booking.message := p_message;
    p_booking.hint := p_hint;
    p_booking.statement := p_statement;
    p_booking.lines := ARRAY[p_statement];
    RETURN p_booking;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._booked_op(p_op text, p_item admmgt.work_item)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the operation an item is booked under: its run's, but in a deploy the one whose procedure makes items of its kind, so that status, metrics and the upkeep records read a deploy as the three calls it stands for */
SELECT CASE WHEN p_op <> 'deploy' THEN p_op
            WHEN p_item.kind = 'routines' THEN 'refresh'
            WHEN p_item.kind = 'partitions' THEN 'maintain'
            ELSE 'apply' END;
$$;

CREATE OR REPLACE FUNCTION admmgt._warn_failed(p_op text, p_label text, p_message text, p_sqlstate text, p_statement text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the WARNING of a target that failed */
BEGIN
    RAISE WARNING 'admmgt %: % failed: % (SQLSTATE %)', p_op, p_label, p_message, p_sqlstate
        USING DETAIL = coalesce('statement: ' || p_statement, 'no statement ran');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._record(p_op text, p_item admmgt.work_item, p_state admmgt.exec_result, p_run_id bigint,
                                          p_last boolean DEFAULT false)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: book one finished work item through the hook of its kind, in one statement: one script_log row per line, the latest outcome per (operation, script, target) in target_results, the target's version when the hook moves it, and, when the item ends its target (it failed, or p_last: no item of the target follows and the hook asks for none), the run's counters; a WARNING when it failed; returns the booking: ok when the target may go on with its next item, skip_part when that is after the item's part */
DECLARE
    b admmgt.booking := admmgt._book(p_item, p_state, admmgt._booking(p_item, p_state));
    v_op text := admmgt._booked_op(p_op, p_item);
    v_ms numeric := admmgt._elapsed_ms(p_state);
    v_ends boolean := NOT b.ok OR (p_last AND coalesce(cardinality(b.expand), 0) = 0);
BEGIN
    WITH logged AS (
        INSERT INTO admmgt.script_log (scriptid, dbname, commstat, run_id, operation, outcome, sqlstate, message, elapsed_ms, server)
        SELECT b.scriptid, p_item.dbname, l, p_run_id, v_op, b.outcome,
               CASE WHEN NOT b.ok THEN b.sqlstate END, CASE WHEN NOT b.ok THEN b.message END,
               v_ms, coalesce(p_item.server, 'local')
          FROM unnest(b.lines) AS l
    ), moved AS (
        UPDATE admmgt.vendor_db_settings SET scriptversion = b.version, modifiedon = current_timestamp
         WHERE b.version IS NOT NULL AND id = p_item.target_id
    ), counted AS (
        UPDATE admmgt.runs SET targets = coalesce(targets, 0) + 1, failed = coalesce(failed, 0) + (NOT b.ok)::int
         WHERE v_ends AND run_id = p_run_id
    )
    INSERT INTO admmgt.target_results AS r (operation, scriptid, target_id, dbname, ok, sqlstate, message, detail, hint,
                                            statement, run_id, finished_at, elapsed_ms)
    VALUES (v_op, coalesce(b.scriptid, 0), p_item.target_id, p_item.dbname, b.ok,
            CASE WHEN NOT b.ok THEN b.sqlstate END, CASE WHEN NOT b.ok THEN b.message END,
            CASE WHEN NOT b.ok THEN b.detail END, CASE WHEN NOT b.ok THEN b.hint END,
            CASE WHEN NOT b.ok THEN b.statement END, p_run_id, p_state.finished_at, v_ms)
    ON CONFLICT (operation, scriptid, target_id) DO UPDATE
       SET dbname = EXCLUDED.dbname, ok = EXCLUDED.ok, sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message,
           detail = EXCLUDED.detail, hint = EXCLUDED.hint, statement = EXCLUDED.statement, run_id = EXCLUDED.run_id,
           finished_at = EXCLUDED.finished_at, elapsed_ms = EXCLUDED.elapsed_ms;

    IF NOT b.ok THEN
        PERFORM admmgt._warn_failed(v_op, admmgt._target_label(p_item), b.message, b.sqlstate, b.statement);
    END IF;
    RETURN b;
END;
$$;
