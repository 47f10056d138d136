-- Worker sessions: a run spread over k backends of the admin database (p_workers => k). The
-- caller puts the run's targets in admmgt.work_queue (one row per target, its items in order),
-- starts k - 1 sessions on its own database over dblink (as the caller, the way _connstr reaches
-- local) and works as the k-th itself. Every session runs the same loop (_run in queue mode):
-- take the next target with FOR UPDATE SKIP LOCKED, connect, execute, book through _record and
-- commit, so connects and bookings happen in k backends at once.
--   - A target's row is marked done in the transaction that books its last item: a row is done
--     exactly when its target is booked to the end, and a claim commits with the session's first
--     booking after it. A session that dies therefore leaves either a claim that rolled back
--     (nothing of that target was booked: the caller runs it again, and the target's ledger
--     row, or its locks, keep a batch the lost worker had sent from counting twice) or a committed claim without
--     done (the caller books that target as failed, once; its transaction on the target rolled
--     back, or committed just before, which the next run reads from the target's ledger).
--   - Workers take targets only while the caller's CALL runs, and hold a shared advisory
--     lock (_worker_lock_keys: a deploy's workers those of apply, maintenance and refresh) that
--     the next run of the operation (and _hold_upkeep) must be able to take
--     exclusively before it starts (_try_lock): workers left by a killed (or cancelled) caller finish the
--     target they have and stop, and no second run meets them.
--   - Progress: the caller reports every target that any session finished (_relay), in the
--     format of the single-backend run, with a WARNING for a failure booked in another session.
--   - The caller knows its workers are done by dblink_get_result, which blocks: no sleep loop.

CREATE OR REPLACE FUNCTION admmgt._worker_slot(p_worker int)
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the executor slot of a worker session's connection, far above the slots of targets (at most 64 a session) */
SELECT 1000 + p_worker;
$$;

CREATE OR REPLACE FUNCTION admmgt._claim(p_run_id bigint, p_stop_at int)
RETURNS admmgt.work_item[]
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: take the next target of a run's queue for this session: its items, or NULL when none is left, the run's caller is gone, idle or finished, or p_stop_at targets of the run have failed (the stop rule); the claim commits with this session's next booking */
UPDATE admmgt.work_queue q SET worker_pid = pg_catalog.pg_backend_pid()
 WHERE (q.run_id, q.target_id) = (
        SELECT w.run_id, w.target_id FROM admmgt.work_queue w
         WHERE w.run_id = p_run_id AND w.worker_pid IS NULL
           AND EXISTS (SELECT 1 FROM admmgt.runs r
                        WHERE r.run_id = p_run_id AND r.finished_at IS NULL
                          AND coalesce(r.failed, 0) < coalesce(p_stop_at, 2147483647)
                          -- Its CALL still runs: a caller cancelled, idle now, has given up the run too.
                          AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(r.pid) a
                                       WHERE a.state IS NOT NULL AND a.state NOT LIKE 'idle%'))
         ORDER BY w.ord LIMIT 1
           FOR UPDATE SKIP LOCKED)
RETURNING q.items::admmgt.work_item[];
$$;

CREATE OR REPLACE FUNCTION admmgt._relay(p_op text, p_run_id bigint, p_counts int[])
RETURNS int[]
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the caller's progress in a run with workers: a NOTICE for each target a session finished since the last call, and a WARNING for a failure booked in another session (whose own never reaches the caller); p_counts and the result: {done, failed, total} of the queue, NULL to count them first */
DECLARE
    v int[] := p_counts;
    r record;
    v_error admmgt.target_results;
BEGIN
    IF v IS NULL THEN
        SELECT ARRAY[count(*) FILTER (WHERE q.relayed), count(*) FILTER (WHERE q.relayed AND NOT q.ok), count(*)]::int[]
          INTO v FROM admmgt.work_queue q WHERE q.run_id = p_run_id;
    END IF;
    -- A row another session holds locked (a claim may, see _run) is reported by a later call: the
    -- caller holds the run's row here, which that session's booking may be waiting for.
    FOR r IN UPDATE admmgt.work_queue q SET relayed = true
              WHERE (q.run_id, q.target_id) IN (SELECT w.run_id, w.target_id FROM admmgt.work_queue w
                                                 WHERE w.run_id = p_run_id AND w.done AND NOT w.relayed
                                                   FOR NO KEY UPDATE SKIP LOCKED)
          RETURNING q.target_id, q.ok, q.worker_pid, (q.items::admmgt.work_item[])[1] AS item LOOP
        v[1] := v[1] + 1;
        IF NOT r.ok THEN
            v[2] := v[2] + 1;
            IF r.worker_pid <> pg_catalog.pg_backend_pid() THEN
                SELECT * INTO v_error FROM admmgt.target_results t
                 WHERE t.run_id = p_run_id AND t.target_id = r.target_id AND NOT t.ok
                 ORDER BY t.finished_at DESC LIMIT 1;
                PERFORM admmgt._warn_failed(coalesce(v_error.operation, p_op), admmgt._target_label(r.item),
                                            v_error.message, v_error.sqlstate, v_error.statement);
            END IF;
        END IF;
        PERFORM admmgt._notice_progress(p_op, admmgt._target_label(r.item), r.ok, v[1], v[3], v[2]);
    END LOOP;
    RETURN v;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._lost_worker(p_op text, p_run_id bigint, p_pid int, p_state admmgt.exec_result)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: a worker session ended with an error or was killed: make sure it is gone, then book each target it had taken and not finished as failed, once (what it booked stays; a claim it never committed is taken again by the caller) */
DECLARE
    r record;
    v_item admmgt.work_item;
    v_fail admmgt.exec_result;
BEGIN
    RAISE WARNING 'admmgt %: worker session pid % ended before the run did: %', p_op, coalesce(p_pid::text, '?'),
                  concat_ws(': ', p_state.message, nullif(btrim(p_state.detail), ''))
        USING HINT = 'The targets it had taken and not finished are booked as failed; the other sessions go on. Run again for those.';
    IF p_pid IS NULL THEN
        RETURN;
    END IF;
    -- A worker whose CALL failed is alive until its connection closes: nothing it does after this may count.
    BEGIN
        PERFORM pg_catalog.pg_terminate_backend(p_pid, 10000) WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(p_pid));
    EXCEPTION WHEN OTHERS THEN
        -- Another role's session (the admmgt_local mapping logs in as another user): its
        -- connection is closed already, so it ends by itself.
        RAISE WARNING 'admmgt %: could not end worker session pid %: %', p_op, p_pid, SQLERRM;
    END;
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_activity(p_pid)) THEN
        -- Still alive: what it books of them stays its own (a booking after the run is over is
        -- undone in that session), and the run does not book them a second time.
        RAISE WARNING 'admmgt %: worker session pid % is still running: the targets it took are left to it', p_op, p_pid
            USING HINT = 'Run again once it has ended: the targets'' ledgers say what they have.';
        RETURN;
    END IF;
    FOR r IN SELECT q.target_id, q.items::admmgt.work_item[] AS items FROM admmgt.work_queue q
              WHERE q.run_id = p_run_id AND q.worker_pid = p_pid AND NOT q.done ORDER BY q.ord LOOP
        -- The item it was at: the first whose script the target does not have yet.
        v_item := (SELECT r.items[k] FROM generate_subscripts(r.items, 1) AS k
                     LEFT JOIN admmgt.vendor_db_settings v ON v.id = (r.items[k]).target_id
                    WHERE (r.items[k]).kind <> 'script' OR (r.items[k]).scriptid > coalesce(v.scriptversion, 0)
                    ORDER BY k LIMIT 1);
        v_item := coalesce(v_item, r.items[1]);
        v_fail := ROW(true, false, true, 0, '{}'::text[], '08006',
                      format('the worker session (pid %s) that ran it ended before it finished', p_pid),
                      'Its transaction there rolled back, or committed just before the session ended: the next run goes on from the target''s own ledger.',
                      NULL, 0, clock_timestamp(), clock_timestamp())::admmgt.exec_result;
        -- The queue row before the run's row, as every booking of the run locks them (see _run).
        UPDATE admmgt.work_queue SET done = true, ok = false, worker_pid = pg_catalog.pg_backend_pid()
         WHERE run_id = p_run_id AND target_id = r.target_id;
        PERFORM admmgt._record(p_op, v_item, v_fail, p_run_id, true);
    END LOOP;
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._work(p_op text, p_run_id bigint, p_parallel int, p_stop_at int, p_lock_timeout text)
LANGUAGE plpgsql
AS $$
/* purpose: the body of a worker session: take targets of the run's queue until none is left, under the shared worker locks of the operation (_worker_lock_keys) and with the caller's admmgt.lock_timeout */
DECLARE
    v_key int;
BEGIN
    -- In the order of the array, which is the installer's.
    FOREACH v_key IN ARRAY admmgt._worker_lock_keys(p_op) LOOP
        PERFORM pg_catalog.pg_advisory_lock_shared(admmgt._lock_class(), v_key);
    END LOOP;
    PERFORM pg_catalog.set_config('admmgt.lock_timeout', coalesce(p_lock_timeout, ''), false);
    CALL admmgt._run(p_op, '{}'::admmgt.work_item[], p_parallel, p_run_id, p_stop_at, NULL, 'worker');
    FOREACH v_key IN ARRAY admmgt._worker_lock_keys(p_op) LOOP
        PERFORM pg_catalog.pg_advisory_unlock_shared(admmgt._lock_class(), v_key);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._queue(p_run_id bigint, p_items admmgt.work_item[])
RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: one work_queue row per target of a run's items: its items in their order, ord the position of its first; returns how many targets */
DECLARE
    v_ids bigint[] := admmgt._item_ids(p_items);
    v_group admmgt.work_item[] := '{}'::admmgt.work_item[];
    v_targets bigint[] := '{}'::bigint[];
    v_firsts int[] := '{}'::int[];
    v_texts text[] := '{}'::text[];
    k int;
BEGIN
    -- The positions by target, then in order: each target's items one after the other, its first
    -- position first.
    FOREACH k IN ARRAY ARRAY(SELECT u.k::int FROM unnest(v_ids) WITH ORDINALITY AS u(id, k) ORDER BY u.id, u.k) LOOP
        IF cardinality(v_group) > 0 AND v_ids[k] <> v_targets[cardinality(v_targets)] THEN
            v_texts := v_texts || v_group::text;
            v_group := '{}'::admmgt.work_item[];
        END IF;
        IF cardinality(v_group) = 0 THEN
            v_targets := v_targets || v_ids[k];
            v_firsts := v_firsts || k;
        END IF;
        v_group := v_group || p_items[k];
    END LOOP;
    IF cardinality(v_group) > 0 THEN
        v_texts := v_texts || v_group::text;
    END IF;
    INSERT INTO admmgt.work_queue (run_id, target_id, ord, items)
    SELECT p_run_id, q.target_id, q.ord, q.items FROM unnest(v_targets, v_firsts, v_texts) AS q(target_id, ord, items);
    RETURN cardinality(v_targets);
END;
$$;

CREATE OR REPLACE PROCEDURE admmgt._run_workers(p_op text, p_items admmgt.work_item[], p_parallel int, p_run_id bigint,
                                                p_max_failures int, p_workers int)
LANGUAGE plpgsql
AS $$
/* purpose: _run over p_workers sessions, this one among them: queue the targets, start the workers, work, wait for them (blocking), book what a lost worker left, and take again what nobody finished */
DECLARE
    v_targets int;
    v_k int;
    v_stop_at int;
    v_slots int[] := '{}'::int[];
    v_pids int[] := '{}'::int[];
    v_states admmgt.exec_result[] := '{}'::admmgt.exec_result[];
    v_slot int;
    v_item admmgt.work_item;
    v_state admmgt.exec_result;
    v_counts int[];
    v_left int;
BEGIN
    IF coalesce(cardinality(p_items), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM admmgt._forget_upkeep_of(p_items);
    -- What killed runs left (_begin_call has closed them).
    DELETE FROM admmgt.work_queue q
     WHERE q.run_id <> p_run_id AND NOT EXISTS (SELECT 1 FROM admmgt.runs r WHERE r.run_id = q.run_id AND r.finished_at IS NULL);
    v_targets := admmgt._queue(p_run_id, p_items);
    SELECT coalesce(r.failed, 0) + p_max_failures INTO v_stop_at FROM admmgt.runs r WHERE r.run_id = p_run_id;
    -- The workers read the queue from their own sessions.
    COMMIT;

    -- A worker holds one session on the admin database and p_parallel on targets: all of them
    -- together stay within a quarter of max_connections, as a single session's slots do.
    v_k := greatest(1, least(p_workers, v_targets, current_setting('max_connections')::int / 4 / (coalesce(p_parallel, 1) + 1)));
    FOR w IN 1 .. v_k - 1 LOOP
        v_slot := admmgt._worker_slot(w);
        -- A worker must be this session's role: it reaches the targets with that role's user
        -- mappings, and sees the caller's state (a session of another role reads it as NULL).
        v_item := admmgt._item('worker', NULL, current_database(), NULL, current_database(), NULL,
                               ARRAY[format('SELECT pg_catalog.pg_backend_pid()::text || CASE WHEN current_user = %L THEN %L ELSE %L || current_user END',
                                            current_user, '', ' ')], false);
        v_state := admmgt._exec_poll(v_slot, false, admmgt._exec_start(v_slot, v_item, true), true);
        IF v_state.ok AND position(' ' IN v_state.outputs[1]) > 0 THEN
            v_state.ok := false;
            v_state.done := true;
            v_state.message := format('it logs in as role %s, not as %s (the admmgt_local user mapping)', split_part(v_state.outputs[1], ' ', 2), current_user);
            v_state.detail := NULL;
        ELSIF v_state.ok THEN
            v_pids := v_pids || v_state.outputs[1]::int;
            v_item.stmts := ARRAY[format('CALL admmgt._work(%L, %s, %s, %s, %L)', p_op, p_run_id, coalesce(p_parallel, 1),
                                         coalesce(v_stop_at::text, 'NULL'), current_setting('admmgt.lock_timeout', true))];
            v_state := admmgt._exec_start(v_slot, v_item, false);
        END IF;
        IF v_state.done THEN
            RAISE WARNING 'admmgt %: worker session % could not start: %', p_op, w,
                          concat_ws(': ', v_state.message, nullif(btrim(v_state.detail), ''))
                USING HINT = 'The run goes on with the sessions that started.';
            PERFORM admmgt._exec_disconnect(v_slot);
            CONTINUE;
        END IF;
        v_slots := v_slots || v_slot;
        v_states := v_states || v_state;
    END LOOP;

    LOOP
        CALL admmgt._run(p_op, '{}'::admmgt.work_item[], p_parallel, p_run_id, v_stop_at, NULL, 'caller');
        FOR w IN 1 .. coalesce(cardinality(v_slots), 0) LOOP
            CONTINUE WHEN v_slots[w] IS NULL;
            v_state := admmgt._exec_poll(v_slots[w], false, v_states[w], true);
            PERFORM admmgt._exec_disconnect(v_slots[w]);
            v_slots[w] := NULL;
            IF NOT v_state.ok THEN
                PERFORM admmgt._lost_worker(p_op, p_run_id, v_pids[w], v_state);
            END IF;
            v_counts := admmgt._relay(p_op, p_run_id, v_counts);
            COMMIT;
        END LOOP;
        -- Left untaken: a lost worker's claim that rolled back (run again here), or the stop rule.
        SELECT count(*)::int INTO v_left FROM admmgt.work_queue q WHERE q.run_id = p_run_id AND q.worker_pid IS NULL;
        EXIT WHEN v_left = 0 OR (SELECT coalesce(r.failed, 0) FROM admmgt.runs r WHERE r.run_id = p_run_id) >= coalesce(v_stop_at, 2147483647);
    END LOOP;
    IF v_left > 0 THEN
        PERFORM admmgt._warn_stopped(p_op, (SELECT coalesce(r.failed, 0) FROM admmgt.runs r WHERE r.run_id = p_run_id) - (v_stop_at - p_max_failures),
                                     p_max_failures, v_left);
    END IF;
    DELETE FROM admmgt.work_queue WHERE run_id = p_run_id;
    COMMIT;
END;
$$;
