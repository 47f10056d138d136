-- Fleet control: choose the targets of an operation by name, server or tag; hold a tenant at a
-- version.
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN admmgt.vendor_db_settings.tags IS
    'Free labels (canary, eu, big, ...): p_tag => / --tag chooses the targets that have one';
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN pinned_version int;
ALTER TABLE admmgt.vendor_db_settings ADD CONSTRAINT vendor_db_settings_pinned_version_check CHECK (pinned_version >= 0);
COMMENT ON COLUMN admmgt.vendor_db_settings.pinned_version IS
    'applyScripts() brings the tenant up to this version and no further (admmgt.pin_tenant / admmgt pin); NULL: no pin';

-- Drift detection (detectDrift, admmgt drift): what each target's app schemas hold, against the
-- template at the target's version.
CREATE TABLE admmgt.template_fingerprints (
    version   int PRIMARY KEY CHECK (version >= 0),
    dbname    text NOT NULL,
    objects   jsonb NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE admmgt.template_fingerprints IS
    'The fingerprint of the template''s app schemas at each version it reached (taken by applyScripts after each script, or by detectDrift while the template is at that version): object -> {p: parent object, d: definition}';

CREATE TABLE admmgt.target_fingerprints (
    target_id bigint PRIMARY KEY,
    dbname    text NOT NULL,
    server    text NOT NULL,
    version   int NOT NULL,
    objects   jsonb NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE admmgt.target_fingerprints IS
    'The latest fingerprint taken of each target by detectDrift, with the version the registry gave it then';

CREATE TABLE admmgt.drift (
    target_id  bigint NOT NULL,
    dbname     text NOT NULL,
    server     text NOT NULL,
    version    int,
    object     text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('missing', 'extra', 'different', 'cannot compare')),
    detail     text,
    run_id     bigint,
    checked_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX drift_target_idx ON admmgt.drift (target_id);
COMMENT ON TABLE admmgt.drift IS
    'What the latest detectDrift found in each target it checked: objects of its app schemas missing, extra or different from the template at its version; cannot compare when there was no fingerprint to compare with (or none could be taken). A target checked without drift has no row.';
