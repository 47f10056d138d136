-- Monitoring: the fleet as metric samples, for `admmgt metrics` (which prints them in the
-- Prometheus text format) or for any exporter that runs a query. Read-only; every name, label and
-- help text is decided here, the CLI only formats the rows (src/commands/metrics.ts).

CREATE OR REPLACE FUNCTION admmgt.metrics(p_as_of timestamptz DEFAULT now())
RETURNS TABLE (name text, labels jsonb, value double precision, help text, type text)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one row per metric sample of the fleet (targets by kind, server, status and version; scripts by status; failed targets, runs and the last finished run per operation; runs in progress; the warm pool's ready databases and size, where there is one), in the order to print them; p_as_of is the moment the ages are measured to */
WITH ops AS (
    -- Every operation is reported, with 0 when it has nothing to count, so that no series comes
    -- and goes: the six that start runs, adopt (the databases create_database() takes over are
    -- booked apart, under the create run), then any other that has left a run or an outcome.
    SELECT o.op, o.ord, o.runs
      FROM (VALUES ('create', 1, true), ('adopt', 2, false), ('apply', 3, true), ('maintain', 4, true),
                   ('lifecycle', 5, true), ('refresh', 6, true), ('deploy', 7, true)) AS o(op, ord, runs)
    UNION ALL
    SELECT x.op, 100, bool_or(x.runs)
      FROM (SELECT r.operation, true FROM admmgt.runs r
            UNION ALL SELECT t.operation, false FROM admmgt.target_results t) AS x(op, runs)
     WHERE x.op NOT IN ('create', 'adopt', 'apply', 'maintain', 'lifecycle', 'refresh', 'deploy')
     GROUP BY x.op
),
run_ops AS (
    SELECT o.op, o.ord FROM ops o WHERE o.runs
),
last_run AS (
    SELECT DISTINCT ON (r.operation) r.operation AS op, r.started_at, r.finished_at, r.targets, r.failed
      FROM admmgt.runs r
     WHERE r.finished_at IS NOT NULL
     ORDER BY r.operation, r.run_id DESC
),
-- The operations whose lock is held by a session with an unfinished run of that operation (the
-- holder's latest run): a run going on, or a cancelled call whose idle session keeps the lock.
running AS (
    SELECT DISTINCT h.operation AS op
      FROM unnest(admmgt._lock_keys()) AS k(key), admmgt._lock_holders(k.key) h
     WHERE h.operation IS NOT NULL
),
samples (pos, sortkey, name, labels, value, help, type) AS (
    SELECT 1, concat_ws(' ', kind, server, status, lpad(version::text, 11, '0')),
           'admmgt_targets',
           jsonb_build_object('kind', kind, 'server', server, 'status', status, 'version', version::text),
           count(*)::float8,
           'Databases in the registry, not deleted, by kind (template, template_copy: the template''s copy on another server, tenant), server (empty for a pending row not placed yet), status (designing, pending, created) and script version.',
           'gauge'
      FROM (SELECT CASE WHEN v.istemplate THEN 'template' WHEN v.servertemplate THEN 'template_copy' ELSE 'tenant' END AS kind,
                   coalesce(v.on_server, '') AS server,
                   CASE v.status WHEN 0 THEN 'designing' WHEN 1 THEN 'pending' WHEN 2 THEN 'created' ELSE v.status::text END AS status,
                   coalesce(v.scriptversion, 0) AS version
              FROM admmgt.registry v WHERE NOT v.deleted AND NOT v.pool) t
     GROUP BY kind, server, status, version
    UNION ALL
    SELECT 2, lpad(s.code::text, 2, '0'),
           'admmgt_scripts', jsonb_build_object('status', s.status),
           (SELECT count(*) FROM admmgt.scripts c WHERE c.status = s.code)::float8,
           'Scripts by status: designing (0), ready (1), applied everywhere (2), failed on the template (3).',
           'gauge'
      FROM (VALUES (0, 'designing'), (1, 'ready'), (2, 'applied'), (3, 'failed')) AS s(code, status)
    UNION ALL
    SELECT 3, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_failed_targets', jsonb_build_object('operation', o.op),
           (SELECT count(DISTINCT (f.server, f.dbname)) FROM admmgt.failures f WHERE f.operation = o.op)::float8,
           'Targets whose latest outcome of the operation failed, as admmgt.failures lists them: they need a person; the next run of the operation retries them.',
           'gauge'
      FROM ops o
    UNION ALL
    SELECT 4, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_runs_total', jsonb_build_object('operation', o.op),
           (SELECT count(*) FROM admmgt.runs r WHERE r.operation = o.op)::float8,
           'Runs of the operation started (rows of admmgt.runs; a call that finds nothing to do starts none).',
           'counter'
      FROM run_ops o
    UNION ALL
    SELECT 5, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_run_target_failures_total', jsonb_build_object('operation', o.op),
           (SELECT coalesce(sum(r.failed), 0) FROM admmgt.runs r WHERE r.operation = o.op)::float8,
           'Targets that failed in runs of the operation, summed over its runs (a target that fails in three runs counts three times).',
           'counter'
      FROM run_ops o
    UNION ALL
    SELECT 6, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_run_in_progress', jsonb_build_object('operation', o.op),
           (EXISTS (SELECT 1 FROM running x WHERE x.op = o.op))::int::float8,
           '1 while a session holds the operation''s lock with a run of it that has not finished (a run going on, or a cancelled call whose idle session keeps the lock), else 0.',
           'gauge'
      FROM run_ops o
    UNION ALL
    SELECT 7, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_last_run_duration_seconds', jsonb_build_object('operation', o.op),
           extract(epoch FROM l.finished_at - l.started_at)::float8,
           'How long the last finished run of the operation took.',
           'gauge'
      FROM run_ops o JOIN last_run l ON l.op = o.op
    UNION ALL
    SELECT 8, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_last_run_finished_timestamp_seconds', jsonb_build_object('operation', o.op),
           extract(epoch FROM l.finished_at)::float8,
           'When the last finished run of the operation finished, in seconds since 1970-01-01 UTC.',
           'gauge'
      FROM run_ops o JOIN last_run l ON l.op = o.op
    UNION ALL
    SELECT 9, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_last_run_age_seconds', jsonb_build_object('operation', o.op),
           greatest(extract(epoch FROM p_as_of - l.finished_at), 0)::float8,
           'Seconds from the end of the last finished run of the operation to the moment these metrics were read.',
           'gauge'
      FROM run_ops o JOIN last_run l ON l.op = o.op
    UNION ALL
    SELECT 10, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_last_run_targets', jsonb_build_object('operation', o.op),
           coalesce(l.targets, 0)::float8,
           'Targets the last finished run of the operation went through.',
           'gauge'
      FROM run_ops o JOIN last_run l ON l.op = o.op
    UNION ALL
    SELECT 11, lpad(o.ord::text, 3, '0') || o.op,
           'admmgt_last_run_failed_targets', jsonb_build_object('operation', o.op),
           coalesce(l.failed, 0)::float8,
           'Targets that failed in the last finished run of the operation.',
           'gauge'
      FROM run_ops o JOIN last_run l ON l.op = o.op
    UNION ALL
    -- Only for a server that has a warm pool: a fleet without one reads as before.
    SELECT 12, p.server, 'admmgt_pool_ready', jsonb_build_object('server', p.server), p.ready::float8,
           'Spare databases of the warm pool that create_database() hands out now (admmgt.pool_status.ready); at 0, new tenants are copied from the template until refill_pool() runs.',
           'gauge'
      FROM admmgt.pool_status p
    UNION ALL
    SELECT 13, p.server, 'admmgt_pool_size', jsonb_build_object('server', p.server), p.pool_size::float8,
           'How many spare databases refill_pool() keeps ready on the server (admmgt.servers.pool_size).',
           'gauge'
      FROM admmgt.pool_status p
)
SELECT s.name, s.labels, s.value, s.help, s.type FROM samples s ORDER BY s.pos, s.sortkey COLLATE "C";
$$;
