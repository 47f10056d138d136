-- The run loop: the one place that drives the executor over a list of work items and hands each
-- finished item to the record layer.

CREATE OR REPLACE FUNCTION admmgt._expanded_item(p_item admmgt.work_item, p_stmt text)
RETURNS admmgt.work_item
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one statement a booking hook asked a target to run next, as a work item of the same part, run alone outside a transaction */
SELECT admmgt._item(p_item.kind, p_item.target_id, p_item.dbname, p_item.server, p_item.conn_db, p_item.scriptid,
                    ARRAY[p_stmt], false, p_item.part, 'run',
                    ARRAY[(SELECT s FROM unnest(p_item.sources) s WHERE s IS NOT NULL LIMIT 1)], p_item.nsp);
$$;

CREATE OR REPLACE FUNCTION admmgt._notice_progress(p_op text, p_label text, p_ok boolean, p_done int, p_total int, p_failed int)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the progress NOTICE of a finished target, which the CLI reads */
BEGIN
    RAISE NOTICE 'admmgt %: % %  (%/% done, % failed)', p_op, p_label, CASE WHEN p_ok THEN 'done' ELSE 'FAILED' END, p_done, p_total, p_failed;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._warn_stopped(p_op text, p_failed int, p_max_failures int, p_left int)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the WARNING of a run that the stop rule ended */
BEGIN
    RAISE WARNING 'admmgt %: stopped after % failed target(s) (p_max_failures => %): % target(s) left untouched',
                  p_op, p_failed, p_max_failures, p_left
        USING HINT = 'Fix the cause of the failures, then run again: it goes on with what is left.';
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._run(p_op text, p_items admmgt.work_item[], p_parallel int, p_run_id bigint,
                                        p_max_failures int DEFAULT NULL, p_workers int DEFAULT NULL, p_queue text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
/* purpose: execute work items, up to p_parallel targets at once; a target's items run in order on one connection and stop at its first failure; statements a booking asks for run right after its item; commits after every finished item; once p_max_failures targets have failed no new target is started. p_workers: spread over that many sessions (072_workers.sql). p_queue (caller, worker): a session of such a run, taking its targets from the run's queue, p_max_failures then the run's count of failures at which no target is taken */
DECLARE
    v_n int := coalesce(cardinality(p_items), 0);
    v_p int;
    v_next int := 1;
    v_slot_item int[];
    v_slot_work admmgt.work_item[];
    v_slot_queue jsonb[];
    v_slot_db text[];
    v_slot_state admmgt.exec_result[];
    v_state admmgt.exec_result;
    v_item admmgt.work_item;
    v_booked admmgt.booking;
    v_targets int;
    v_done int := 0;
    v_failed int := 0;
    v_progress boolean;
    v_continue boolean;
    v_busy boolean;
    v_finished boolean;
    v_ahead boolean;
    v_last boolean;
    v_async boolean;
    v_left int;
    v_drained boolean := p_queue IS NULL;
    v_claimed admmgt.work_item[];
    v_counts int[];
    -- Each server's connection string but the database, read once: it holds credentials, so it
    -- lives in this variable only.
    v_prefixes jsonb;
BEGIN
    IF p_workers IS NOT NULL AND p_queue IS NULL THEN
        CALL admmgt._run_workers(p_op, p_items, p_parallel, p_run_id, p_max_failures, p_workers);
        RETURN;
    END IF;
    IF v_n = 0 AND p_queue IS NULL THEN
        RETURN;
    END IF;
    -- Committed before any item runs: a run killed midway must not leave a record that still counts.
    IF p_queue IS NULL AND admmgt._forget_upkeep_of(p_items) THEN
        COMMIT;
    END IF;
    SELECT count(DISTINCT i.target_id)::int INTO v_targets FROM unnest(p_items) AS i;
    v_prefixes := admmgt._connprefixes(p_items);
    -- Never more connections at once than a quarter of the server's max_connections. A session
    -- of a run with workers runs one target at a time unless told otherwise.
    v_p := greatest(1, least(coalesce(p_parallel, CASE WHEN p_queue IS NULL THEN 4 ELSE 1 END),
                             CASE WHEN p_queue IS NULL THEN v_targets ELSE 64 END, current_setting('max_connections')::int / 4));
    v_slot_item := array_fill(0, ARRAY[v_p]);
    v_slot_work := array_fill(NULL::admmgt.work_item, ARRAY[v_p]);
    v_slot_queue := array_fill('[]'::jsonb, ARRAY[v_p]);
    v_slot_db := array_fill(NULL::text, ARRAY[v_p]);
    v_slot_state := array_fill(NULL::admmgt.exec_result, ARRAY[v_p]);

    LOOP
        v_progress := false;
        v_busy := false;
        FOR s IN 1 .. v_p LOOP
            v_finished := false;
            v_ahead := false;
            v_last := false;
            IF v_slot_item[s] <> 0 THEN
                v_item := v_slot_work[s];
                v_state := v_slot_state[s];
                IF NOT v_state.done THEN
                    v_state := admmgt._exec_poll(s, v_item.atomic, v_state, v_p = 1);
                    v_slot_state[s] := v_state;
                END IF;
                IF NOT v_state.done THEN
                    v_busy := true;
                    CONTINUE;
                END IF;
                v_progress := true;
                v_finished := true;
                -- The last item of a target, a whole script or job: what its booking says cannot
                -- change what this connection does next, so the next target's batch goes out
                -- first and the target works while the admin side books. Not under a stop rule,
                -- which must know every outcome before it starts another target.
                -- v_last: nothing of the target follows this item; its booking then counts the
                -- target in the run as it books it, unless it asks for more statements.
                v_last := jsonb_array_length(v_slot_queue[s]) = 0
                          AND (v_slot_item[s] = v_n OR (p_items[v_slot_item[s] + 1]).target_id <> v_item.target_id);
                v_ahead := v_last AND v_item.step IS NULL AND NOT v_state.broken AND p_max_failures IS NULL;
                IF v_ahead THEN
                    v_slot_item[s] := 0;
                END IF;
            END IF;

            IF p_queue IS NULL AND v_slot_item[s] = 0 AND v_next <= v_n AND v_failed >= coalesce(p_max_failures, v_n + 1) THEN
                -- The stop rule: what has not started stays untouched.
                SELECT count(DISTINCT (p_items[k]).target_id)::int INTO v_left FROM generate_series(v_next, v_n) AS k;
                PERFORM admmgt._warn_stopped(p_op, v_failed, p_max_failures, v_left);
                v_next := v_n + 1;
            END IF;
            IF v_slot_item[s] = 0 AND v_next > v_n AND NOT v_drained THEN
                -- Its items go to the end of p_items, one at a time: an element assigned past
                -- the end extends the array in place.
                v_claimed := admmgt._claim(p_run_id, p_max_failures);
                v_drained := v_claimed IS NULL;
                v_prefixes := admmgt._connprefixes(v_claimed, v_prefixes);
                FOR k IN 1 .. coalesce(cardinality(v_claimed), 0) LOOP
                    v_n := v_n + 1;
                    p_items[v_n] := v_claimed[k];
                END LOOP;
            END IF;
            IF v_slot_item[s] = 0 AND v_next <= v_n THEN
                v_slot_item[s] := v_next;
                v_slot_work[s] := p_items[v_next];
                v_next := v_next + 1;
                WHILE v_next <= v_n AND (p_items[v_next]).target_id = (v_slot_work[s]).target_id LOOP
                    v_next := v_next + 1;
                END LOOP;
                v_slot_state[s] := admmgt._exec_start(s, v_slot_work[s], v_slot_db[s] IS DISTINCT FROM admmgt._conn_key(v_slot_work[s]), v_prefixes);
                v_slot_db[s] := admmgt._conn_key(v_slot_work[s]);
                v_progress := true;
            END IF;
            CONTINUE WHEN NOT v_finished;

            -- v_item, v_state: the finished item; the slot runs the next target already when v_ahead.
            IF p_queue IS NOT NULL THEN
                -- Every session of a run locks its queue rows before the run's row, which the
                -- booking updates: a claim may hold a lock on this row until it commits (read
                -- committed locks the newest version of each row it tries, and a row claimed
                -- since its snapshot stays locked though it is not taken), and that claim's own
                -- booking waits for the run's row.
                PERFORM 1 FROM admmgt.work_queue q WHERE q.run_id = p_run_id AND q.target_id = v_item.target_id FOR NO KEY UPDATE;
            END IF;
            v_booked := admmgt._record(p_op, v_item, v_state, p_run_id, v_last);
            v_continue := v_booked.ok;
            -- A booking whose loss in a server crash costs a rerun's work, never a wrong record, need
            -- not wait for the WAL flush (a sixth of the admin backend's CPU per target): a whole
            -- script the target committed (its ledger row makes the next run book it as already
            -- applied), and routines or partitions that succeeded (pushed again, created if absent:
            -- their upkeep records are written after the run's last booking, by a commit that
            -- waits, and a crash that loses the booking loses them too). Every other booking waits.
            v_async := v_booked.ok AND v_item.step IS NULL AND v_item.kind IN ('script', 'routines', 'partitions');
            IF v_state.broken THEN
                PERFORM admmgt._exec_disconnect(s);
                v_slot_db[s] := NULL;
            END IF;
            IF v_continue AND cardinality(v_booked.expand) > 0 THEN
                v_slot_queue[s] := to_jsonb(v_booked.expand);
            ELSIF NOT v_continue AND NOT v_ahead THEN
                v_slot_queue[s] := '[]';
            END IF;
            IF NOT v_ahead AND v_continue AND v_booked.skip_part THEN
                -- The target has this part already: what is left of it is not sent.
                WHILE v_slot_item[s] < v_n AND (p_items[v_slot_item[s] + 1]).target_id = v_item.target_id
                      AND (p_items[v_slot_item[s] + 1]).scriptid = v_item.scriptid
                      AND (p_items[v_slot_item[s] + 1]).part = v_item.part LOOP
                    v_slot_item[s] := v_slot_item[s] + 1;
                END LOOP;
            END IF;
            IF v_item.step IS NOT NULL AND NOT v_ahead AND v_continue THEN
                -- A part's booking (its opening's token, that it ran) must be kept before the
                -- target runs what follows: a run killed in between would lose it.
                COMMIT;
            END IF;
            IF NOT v_ahead AND v_continue AND jsonb_array_length(v_slot_queue[s]) > 0 THEN
                v_item := admmgt._expanded_item(p_items[v_slot_item[s]], v_slot_queue[s] ->> 0);
                v_slot_queue[s] := v_slot_queue[s] - 0;
                v_slot_work[s] := v_item;
                v_slot_state[s] := admmgt._exec_start(s, v_item, v_slot_db[s] IS DISTINCT FROM admmgt._conn_key(v_item), v_prefixes);
                v_slot_db[s] := admmgt._conn_key(v_item);
            ELSIF NOT v_ahead AND v_continue AND v_slot_item[s] < v_n AND (p_items[v_slot_item[s] + 1]).target_id = v_item.target_id THEN
                v_slot_item[s] := v_slot_item[s] + 1;
                v_item := p_items[v_slot_item[s]];
                v_slot_work[s] := v_item;
                v_slot_state[s] := admmgt._exec_start(s, v_item, v_slot_db[s] IS DISTINCT FROM admmgt._conn_key(v_item), v_prefixes);
                v_slot_db[s] := admmgt._conn_key(v_item);
            ELSE
                v_done := v_done + 1;
                IF NOT v_continue THEN
                    v_failed := v_failed + 1;
                END IF;
                IF p_queue IS NULL THEN
                    PERFORM admmgt._notice_progress(p_op, admmgt._target_label(v_item), v_continue, v_done, v_targets, v_failed);
                ELSE
                    -- In the transaction that books the target's end: done means booked to the end.
                    UPDATE admmgt.work_queue SET done = true, ok = v_continue
                     WHERE run_id = p_run_id AND target_id = v_item.target_id AND worker_pid = pg_catalog.pg_backend_pid();
                    IF NOT FOUND THEN
                        -- The caller took this session for lost and booked the target itself, or the
                        -- run is over: this booking must not count a second time.
                        RAISE EXCEPTION 'admmgt %: % is no longer this worker session''s: its booking here is undone and the session stops',
                                        p_op, admmgt._target_label(v_item)
                            USING ERRCODE = 'object_not_in_prerequisite_state',
                                  HINT = 'The run booked it as failed (the worker looked lost); run again: the target''s ledger says what it has.';
                    END IF;
                    IF p_queue = 'caller' THEN
                        v_counts := admmgt._relay(p_op, p_run_id, v_counts);
                    END IF;
                END IF;
                IF NOT v_ahead THEN
                    v_slot_item[s] := 0;
                END IF;
                IF NOT v_last AND v_continue THEN
                    -- Not counted by _record: the target's last items were skipped (skip_part).
                    UPDATE admmgt.runs SET targets = coalesce(targets, 0) + 1 WHERE run_id = p_run_id;
                END IF;
            END IF;
            IF v_async THEN
                SET LOCAL synchronous_commit = off;
            END IF;
            COMMIT;
        END LOOP;
        EXIT WHEN v_next > v_n AND v_drained AND NOT v_busy AND NOT EXISTS (SELECT 1 FROM unnest(v_slot_item) AS x WHERE x <> 0);
        IF NOT v_progress THEN
            PERFORM pg_sleep(0.001);
        END IF;
    END LOOP;
    IF p_queue IS NULL THEN
        PERFORM admmgt._exec_disconnect_all();
    ELSE
        -- Only its own: the caller's connections to its workers stay open.
        FOR s IN 1 .. v_p LOOP
            PERFORM admmgt._exec_disconnect(s);
        END LOOP;
    END IF;
END;
$$;
