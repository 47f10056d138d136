-- Drift detection in a steady fleet: a target's kept fingerprint is reused while its catalog
-- stamp (one cheap query, _stamp_sql) is the one read with it, so detectDrift runs the full
-- fingerprint query only where DDL happened since.
ALTER TABLE admmgt.target_fingerprints
    ADD COLUMN stamp text,
    ADD COLUMN query_md5 text,
    ADD COLUMN seen_at timestamptz;
UPDATE admmgt.target_fingerprints SET seen_at = taken_at;
ALTER TABLE admmgt.target_fingerprints
    ALTER COLUMN seen_at SET NOT NULL,
    ALTER COLUMN seen_at SET DEFAULT clock_timestamp();
COMMENT ON COLUMN admmgt.target_fingerprints.stamp IS
    'The target''s catalog stamp read in the same statement as the fingerprint (NULL: none was read, the next detectDrift takes the fingerprint again)';
COMMENT ON COLUMN admmgt.target_fingerprints.query_md5 IS
    'md5 of the query that took the fingerprint: a kept fingerprint is reused only for the same query (same admmgt, template schema and login roles)';
COMMENT ON COLUMN admmgt.target_fingerprints.seen_at IS
    'When detectDrift last found the target''s catalogs as they were when the fingerprint was taken (taken_at, or a later run whose stamp was the same)';
