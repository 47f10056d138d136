-- Drift of schema targets: the schema template's fingerprint at a version is kept beside the
-- database template's, so the table is keyed by the kind of template as well as the version.
ALTER TABLE admmgt.template_fingerprints
    ADD COLUMN kind text NOT NULL DEFAULT 'database',
    ADD CONSTRAINT template_fingerprints_kind_check CHECK (kind IN ('database', 'schema'));
ALTER TABLE admmgt.template_fingerprints DROP CONSTRAINT template_fingerprints_pkey;
ALTER TABLE admmgt.template_fingerprints ADD CONSTRAINT template_fingerprints_pkey PRIMARY KEY (kind, version);
COMMENT ON COLUMN admmgt.template_fingerprints.kind IS
    'database: the database template''s app schemas; schema: the template schema, with its name written as (schema) and its login role''s grants as (tenant role)';
COMMENT ON TABLE admmgt.template_fingerprints IS
    'The fingerprint of each template (database, schema) at each version it reached (taken by applyScripts after each script, by a refresh, or by detectDrift while the template is at that version): object -> {p: parent object, d: definition}';
