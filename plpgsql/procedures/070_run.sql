-- The run loop and the frame every public procedure runs in: refuse a transaction block, take
-- the operation's advisory lock, register the run, and always leave no connection behind.

CREATE OR REPLACE PROCEDURE admmgt._run(p_op text, p_items admmgt.work_item[], p_parallel int, p_run_id bigint)
LANGUAGE plpgsql
AS $$
/* purpose: execute work items, up to p_parallel targets at once; a target's items run in order on one connection and stop at its first failure; commits after every finished item */
DECLARE
    v_n int := coalesce(cardinality(p_items), 0);
    v_p int;
    v_next int := 1;
    v_slot_item int[];
    v_slot_db text[];
    v_slot_state admmgt.exec_result[];
    v_state admmgt.exec_result;
    v_item admmgt.work_item;
    v_targets int;
    v_done int := 0;
    v_failed int := 0;
    v_progress boolean;
    v_continue boolean;
    v_busy boolean;
BEGIN
    IF v_n = 0 THEN
        RETURN;
    END IF;
    SELECT count(DISTINCT i.target_id) INTO v_targets FROM unnest(p_items) AS i;
    -- Never more connections at once than a quarter of the server's max_connections.
    v_p := greatest(1, least(coalesce(p_parallel, 4), v_targets, current_setting('max_connections')::int / 4));
    v_slot_item := array_fill(0, ARRAY[v_p]);
    v_slot_db := array_fill(NULL::text, ARRAY[v_p]);
    v_slot_state := array_fill(NULL::admmgt.exec_result, ARRAY[v_p]);

    LOOP
        v_progress := false;
        v_busy := false;
        FOR s IN 1 .. v_p LOOP
            IF v_slot_item[s] = 0 AND v_next <= v_n THEN
                v_item := p_items[v_next];
                v_slot_item[s] := v_next;
                v_next := v_next + 1;
                WHILE v_next <= v_n AND (p_items[v_next]).target_id = v_item.target_id LOOP
                    v_next := v_next + 1;
                END LOOP;
                v_slot_state[s] := admmgt._exec_start(s, v_item, v_slot_db[s] IS DISTINCT FROM admmgt._conn_key(v_item));
                v_slot_db[s] := admmgt._conn_key(v_item);
                v_progress := true;
            END IF;
            CONTINUE WHEN v_slot_item[s] = 0;

            v_item := p_items[v_slot_item[s]];
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
            v_continue := admmgt._record(p_op, v_item, v_state, p_run_id);
            IF v_state.broken THEN
                PERFORM admmgt._exec_disconnect(s);
                v_slot_db[s] := NULL;
            END IF;
            IF v_continue AND v_slot_item[s] < v_n AND (p_items[v_slot_item[s] + 1]).target_id = v_item.target_id THEN
                v_slot_item[s] := v_slot_item[s] + 1;
                v_item := p_items[v_slot_item[s]];
                v_slot_state[s] := admmgt._exec_start(s, v_item, v_slot_db[s] IS DISTINCT FROM admmgt._conn_key(v_item));
                v_slot_db[s] := admmgt._conn_key(v_item);
                v_busy := true;
            ELSE
                v_done := v_done + 1;
                IF NOT v_continue THEN
                    v_failed := v_failed + 1;
                END IF;
                RAISE NOTICE 'admmgt %: % %  (%/% done, % failed)', p_op, admmgt._target_label(v_item),
                             CASE WHEN v_continue THEN 'done' ELSE 'FAILED' END, v_done, v_targets, v_failed;
                v_slot_item[s] := 0;
                UPDATE admmgt.runs SET targets = coalesce(targets, 0) + 1, failed = coalesce(failed, 0) + (NOT v_continue)::int
                 WHERE run_id = p_run_id;
            END IF;
            COMMIT;
        END LOOP;
        EXIT WHEN v_next > v_n AND NOT v_busy AND NOT EXISTS (SELECT 1 FROM unnest(v_slot_item) AS x WHERE x <> 0);
        IF NOT v_progress THEN
            PERFORM pg_sleep(0.001);
        END IF;
    END LOOP;
    PERFORM admmgt._exec_disconnect_all();
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._lock_key(p_op text)
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the advisory lock of an operation; creating tenants and applying scripts share one, since both need the template to themselves, and so do the two kinds of partition upkeep */
SELECT CASE p_op WHEN 'maintain' THEN 2 WHEN 'lifecycle' THEN 2 WHEN 'refresh' THEN 3 ELSE 1 END;
$$;

CREATE OR REPLACE FUNCTION admmgt._lock_holder(p_key int)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: who holds an operation lock, for the message a second caller gets; an idle holder is a call that failed (the lock outlives it) */
SELECT format('pid %s (%s, user %s)%s', l.pid,
              CASE WHEN r.run_id IS NULL
                   -- An install holds every operation's lock while it replaces the routines.
                   THEN format('no admmgt run; application %L', a.application_name)
                   ELSE format('run %s: %s since %s', r.run_id, r.operation, to_char(r.started_at, 'YYYY-MM-DD HH24:MI:SS TZ')) END,
              a.usename,
              CASE WHEN a.state LIKE 'idle%' THEN format(', now idle: a call of that session failed and it keeps the lock until its next admmgt call or until it disconnects (SELECT pg_terminate_backend(%s))', l.pid) ELSE '' END)
  FROM pg_locks l
  LEFT JOIN pg_stat_activity a ON a.pid = l.pid
  LEFT JOIN LATERAL (SELECT * FROM admmgt.runs r WHERE r.pid = l.pid AND r.finished_at IS NULL
                      ORDER BY r.run_id DESC LIMIT 1) r ON true
 WHERE l.locktype = 'advisory' AND l.classid = 426601 AND l.objid = p_key AND l.objsubid = 2 AND l.granted
   -- Advisory locks belong to one database: another admin database on the cluster has its own.
   AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
 LIMIT 1;
$$;

CREATE OR REPLACE FUNCTION admmgt._try_lock(p_op text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: take an operation lock for this session, first dropping every one this session kept from a call that failed (a session runs one call at a time) */
DECLARE
    v_key int;
BEGIN
    FOR v_key IN SELECT l.objid::int FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.classid = 426601 AND l.objsubid = 2 AND l.pid = pg_backend_pid() AND l.granted LOOP
        WHILE pg_advisory_unlock(426601, v_key) LOOP
        END LOOP;
    END LOOP;
    RETURN pg_try_advisory_lock(426601, admmgt._lock_key(p_op));
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._hold_upkeep(p_wait_seconds int)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: for a create_database() that builds copies of the template: hold maintenance and refresh off (their locks) as well, waiting up to p_wait_seconds; NULL when both are held, else who holds one */
DECLARE
    v_deadline timestamptz := clock_timestamp() + make_interval(secs => greatest(coalesce(p_wait_seconds, 0), 0));
BEGIN
    LOOP
        IF pg_try_advisory_lock(426601, admmgt._lock_key('maintain')) THEN
            IF pg_try_advisory_lock(426601, admmgt._lock_key('refresh')) THEN
                RETURN NULL;
            END IF;
            PERFORM pg_advisory_unlock(426601, admmgt._lock_key('maintain'));
        END IF;
        EXIT WHEN clock_timestamp() >= v_deadline;
        PERFORM pg_sleep(0.2);
    END LOOP;
    RETURN coalesce(admmgt._lock_holder(admmgt._lock_key('maintain')), admmgt._lock_holder(admmgt._lock_key('refresh')), 'a run that has just finished');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._release_upkeep()
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: let maintenance and refresh run again after _hold_upkeep */
SELECT pg_advisory_unlock(426601, admmgt._lock_key('maintain')), pg_advisory_unlock(426601, admmgt._lock_key('refresh'));
$$;

CREATE OR REPLACE FUNCTION admmgt._check_call(p_label text, p_parallel int)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, with a hint, a CALL typed inside a transaction block or a bad p_parallel, before anything is touched */
BEGIN
    IF p_parallel IS NOT NULL AND (p_parallel < 1 OR p_parallel > 64) THEN
        RAISE EXCEPTION 'admmgt.%: p_parallel must be between 1 and 64, not %', p_label, p_parallel
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Each target at once holds one connection; leave p_parallel out for the default of 4.';
    END IF;
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
BEGIN
    PERFORM admmgt._check_call(p_label, NULL);
    -- Fails with "invalid transaction termination" in the cases the test above cannot see.
    COMMIT;
    WHILE NOT admmgt._try_lock(p_op) LOOP
        IF clock_timestamp() >= v_deadline THEN
            RAISE EXCEPTION 'admmgt.% is already running: %', p_label,
                            coalesce(admmgt._lock_holder(admmgt._lock_key(p_op)), 'holder has just finished')
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

CREATE OR REPLACE PROCEDURE admmgt._end_call(p_op text, p_run_id bigint)
LANGUAGE plpgsql
AS $$
/* purpose: close the frame of a public procedure */
BEGIN
    PERFORM admmgt._exec_disconnect_all();
    UPDATE admmgt.runs SET finished_at = clock_timestamp() WHERE run_id = p_run_id;
    COMMIT;
    PERFORM pg_advisory_unlock(426601, admmgt._lock_key(p_op));
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._template()
RETURNS admmgt.vendor_db_settings
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the registered template (istemplate, created); its dbname folded to lower case */
DECLARE
    v admmgt.vendor_db_settings;
BEGIN
    SELECT * INTO v FROM admmgt.vendor_db_settings
     WHERE istemplate AND NOT coalesce(deleted, false);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'admmgt: no template database is registered'
            USING ERRCODE = 'no_data_found',
                  HINT = 'Register it: INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES (''unitemplate'', true, 2);';
    END IF;
    IF v.status <> 2 THEN
        RAISE EXCEPTION 'admmgt: template % has status %, not 2 (created)', v.dbname, v.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create the template database yourself, then set its status to 2.';
    END IF;
    v.dbname := admmgt._tenant_name(v.dbname, admmgt._row('vendor_db_settings', v.id));
    v.scriptversion := coalesce(v.scriptversion, 0);
    RETURN v;
END;
$$;
