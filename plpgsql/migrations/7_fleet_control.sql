-- Fleet control: choose the targets of an operation by name, server or tag; hold a tenant at a
-- version.
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN admmgt.vendor_db_settings.tags IS
    'Free labels (canary, eu, big, ...): p_tag => / --tag chooses the targets that have one';
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN pinned_version int;
ALTER TABLE admmgt.vendor_db_settings ADD CONSTRAINT vendor_db_settings_pinned_version_check CHECK (pinned_version >= 0);
COMMENT ON COLUMN admmgt.vendor_db_settings.pinned_version IS
    'applyScripts() brings the tenant up to this version and no further (admmgt.pin_tenant / admmgt pin); NULL: no pin';
