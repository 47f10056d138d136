-- Upkeep that does not connect when there is nothing to do: what maintenance and refresh last made
-- sure of in each target, so that a call asking for no more than that leaves the target alone.
-- A record only counts while nothing has changed the target since: a trigger on
-- vendor_db_settings (118_upkeep.sql) forgets it when the target's version, status or place
-- changes, and lifecycle forgets a target's partitions when it runs there.
CREATE TABLE admmgt.upkeep_partitions (
    target_id     bigint PRIMARY KEY REFERENCES admmgt.vendor_db_settings (id) ON DELETE CASCADE,
    scriptversion integer NOT NULL,
    from_day      date NOT NULL,
    to_day        date NOT NULL,
    run_id        bigint,
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT upkeep_partitions_window_check CHECK (from_day <= to_day)
);
COMMENT ON TABLE admmgt.upkeep_partitions IS
    'Per target, the window of days [from_day, to_day] whose partitions a maintenance batch that succeeded there made sure of, at the target''s scriptversion then; applyMaintenance leaves out a target whose record holds the window asked for at its current version (p_verify => true does not)';

CREATE TABLE admmgt.upkeep_refresh (
    target_id   bigint NOT NULL REFERENCES admmgt.vendor_db_settings (id) ON DELETE CASCADE,
    refresh     text NOT NULL,
    scriptversion integer NOT NULL,
    digest      text NOT NULL,
    run_id      bigint,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT upkeep_refresh_pkey PRIMARY KEY (target_id, refresh),
    CONSTRAINT upkeep_refresh_refresh_check CHECK (refresh IN ('routines', 'views'))
);
COMMENT ON TABLE admmgt.upkeep_refresh IS
    'Per target and refresh (routines: refesh_stored_procedures, views: refesh_views), the md5 of the batch a refresh that succeeded there pushed, at the target''s scriptversion then; a refresh leaves out a target at that version whose batch now has the same digest (p_verify => true does not)';

ALTER TABLE admmgt.runs ADD COLUMN skipped integer;
COMMENT ON COLUMN admmgt.runs.skipped IS
    'Targets the run left out because their upkeep record says they hold what it would send (maintenance and refresh); targets counts only those it worked on';
