-- The operations' advisory locks. Two runs of one operation at once must not work on the same
-- targets, so each operation takes a session-level advisory lock (_lock_class(), _lock_key(op))
-- for the whole CALL. Session-level, because a procedure commits after every target and a
-- transaction-level lock would be released at the first COMMIT. The installer (src/install.ts,
-- OPERATION_LOCKS) holds every key of _lock_keys() while it replaces the routines; a test checks
-- that both sides name the same class and keys.

CREATE OR REPLACE FUNCTION admmgt._lock_class()
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the first key of every admmgt advisory lock (pg_locks.classid), so that admmgt's locks never meet an application's */
SELECT 426601;
$$;

CREATE OR REPLACE FUNCTION admmgt._lock_keys()
RETURNS int[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: every operation lock key (pg_locks.objid): 1 create, apply and rollback, 2 partition upkeep (maintenance and lifecycle), 3 refresh, 4 drift detection, and 101 to 104 the worker sessions' of each (_worker_lock_key), which the installer holds too so that it waits for workers a killed caller left behind */
SELECT ARRAY[1, 2, 3, 4, 101, 102, 103, 104];
$$;

CREATE OR REPLACE FUNCTION admmgt._lock_key(p_op text)
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the advisory lock of an operation; creating tenants, applying scripts and rolling them back share one, since they need the template to themselves (dropping a tenant, drop, takes it too, so that it never races them, and deploy takes it with the upkeep locks, _hold_upkeep), and so do the two kinds of partition upkeep */
SELECT CASE p_op WHEN 'maintain' THEN 2 WHEN 'lifecycle' THEN 2 WHEN 'refresh' THEN 3 WHEN 'drift' THEN 4 ELSE 1 END;
$$;

CREATE OR REPLACE FUNCTION admmgt._worker_lock_key(p_op text)
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the advisory lock that the worker sessions of a run (072_workers.sql) hold shared while they work: 100 above their operation's */
SELECT 100 + admmgt._lock_key(p_op);
$$;

CREATE OR REPLACE FUNCTION admmgt._worker_lock_keys(p_op text)
RETURNS int[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the worker locks a worker session of an operation holds shared: its own, and for a deploy, which does the work of apply, refresh and maintenance, the three of those, so that none of them starts while a deploy's workers left by a killed caller still work (in that order, as the installer takes them) */
SELECT CASE WHEN p_op = 'deploy' THEN ARRAY[admmgt._worker_lock_key('apply'), admmgt._worker_lock_key('maintain'), admmgt._worker_lock_key('refresh')]
            ELSE ARRAY[admmgt._worker_lock_key(p_op)] END;
$$;

CREATE OR REPLACE FUNCTION admmgt._workers_gone(p_op text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: whether no worker session of an earlier run of the operation still works (none holds its worker lock shared) */
BEGIN
    IF NOT pg_try_advisory_lock(admmgt._lock_class(), admmgt._worker_lock_key(p_op)) THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_unlock(admmgt._lock_class(), admmgt._worker_lock_key(p_op));
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._workers_of_earlier_run(p_op text)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the worker sessions that hold an operation's worker lock (those of a run whose caller is gone finish the target they have), for the message a caller gets; NULL when there are none */
SELECT format('worker sessions of an earlier run still finish their targets: pid %s', string_agg(l.pid::text, ', ' ORDER BY l.pid))
  FROM pg_locks l
 WHERE l.locktype = 'advisory' AND l.classid = admmgt._lock_class() AND l.objid = admmgt._worker_lock_key(p_op) AND l.objsubid = 2 AND l.granted
   AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
HAVING count(*) > 0;
$$;

CREATE OR REPLACE FUNCTION admmgt._lock_holders(p_key int)
RETURNS TABLE (pid int, operation text, description text)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: who holds an operation lock, with the operation of its run (NULL for an install, which holds every lock while it replaces the routines), for the message a second caller gets; an idle holder is a call that failed (the lock outlives it) */
SELECT l.pid, r.operation,
       format('pid %s (%s, user %s)%s', l.pid,
              CASE WHEN r.run_id IS NULL
                   THEN format('no admmgt run; application %L', a.application_name)
                   ELSE format('run %s: %s since %s', r.run_id, r.operation, to_char(r.started_at, 'YYYY-MM-DD HH24:MI:SS TZ')) END,
              a.usename,
              CASE WHEN a.state LIKE 'idle%' THEN format(', now idle: a call of that session failed and it keeps the lock until its next admmgt call or until it disconnects (SELECT pg_terminate_backend(%s))', l.pid) ELSE '' END)
  FROM pg_locks l
  LEFT JOIN pg_stat_activity a ON a.pid = l.pid
  LEFT JOIN LATERAL (SELECT * FROM admmgt.runs r WHERE r.pid = l.pid AND r.finished_at IS NULL
                      ORDER BY r.run_id DESC LIMIT 1) r ON true
 WHERE l.locktype = 'advisory' AND l.classid = admmgt._lock_class() AND l.objid = p_key AND l.objsubid = 2 AND l.granted
   -- Advisory locks belong to one database: another admin database on the cluster has its own.
   AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
 LIMIT 1;
$$;

CREATE OR REPLACE FUNCTION admmgt._lock_holder(p_key int)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: who holds an operation lock, as the message a second caller gets */
SELECT h.description FROM admmgt._lock_holders(p_key) h;
$$;

CREATE OR REPLACE FUNCTION admmgt._lock(p_key int)
RETURNS boolean
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: try to take one operation lock for this session */
SELECT pg_try_advisory_lock(admmgt._lock_class(), p_key);
$$;

CREATE OR REPLACE FUNCTION admmgt._unlock(p_key int)
RETURNS boolean
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: let go of one operation lock of this session */
SELECT pg_advisory_unlock(admmgt._lock_class(), p_key);
$$;

CREATE OR REPLACE FUNCTION admmgt._try_lock(p_op text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: take an operation lock for this session, first dropping every one this session kept from a call that failed (a session runs one call at a time); not while worker sessions of an earlier run of the operation still work (their shared lock) */
DECLARE
    v_key int;
BEGIN
    FOR v_key IN SELECT l.objid::int FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.classid = admmgt._lock_class() AND l.objsubid = 2
                    AND l.pid = pg_backend_pid() AND l.granted LOOP
        WHILE admmgt._unlock(v_key) LOOP
        END LOOP;
    END LOOP;
    IF NOT admmgt._lock(admmgt._lock_key(p_op)) THEN
        RETURN false;
    END IF;
    IF NOT admmgt._workers_gone(p_op) THEN
        PERFORM admmgt._unlock(admmgt._lock_key(p_op));
        RETURN false;
    END IF;
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._hold_upkeep(p_wait_seconds int)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: for a create_database() that builds copies of the template, and for a deploy: hold maintenance and refresh off as well (their locks, once no worker session of theirs still works), waiting up to p_wait_seconds; NULL when both are held, else who holds one or what still works */
DECLARE
    v_deadline timestamptz := clock_timestamp() + make_interval(secs => greatest(coalesce(p_wait_seconds, 0), 0));
BEGIN
    LOOP
        IF admmgt._lock(admmgt._lock_key('maintain')) THEN
            IF admmgt._lock(admmgt._lock_key('refresh')) THEN
                IF admmgt._workers_gone('maintain') AND admmgt._workers_gone('refresh') THEN
                    RETURN NULL;
                END IF;
                PERFORM admmgt._unlock(admmgt._lock_key('refresh'));
            END IF;
            PERFORM admmgt._unlock(admmgt._lock_key('maintain'));
        END IF;
        EXIT WHEN clock_timestamp() >= v_deadline;
        PERFORM pg_sleep(0.2);
    END LOOP;
    RETURN coalesce(admmgt._lock_holder(admmgt._lock_key('maintain')), admmgt._lock_holder(admmgt._lock_key('refresh')),
                    admmgt._workers_of_earlier_run('maintain'), admmgt._workers_of_earlier_run('refresh'), 'a run that has just finished');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._release_upkeep()
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: let maintenance and refresh run again after _hold_upkeep */
SELECT admmgt._unlock(admmgt._lock_key('maintain')), admmgt._unlock(admmgt._lock_key('refresh'));
$$;
