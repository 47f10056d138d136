-- A tenant may get its own login role, which owns nothing and may connect to its own database only.
ALTER TABLE admmgt.vendor_db_settings ADD COLUMN loginrole varchar(63);
COMMENT ON COLUMN admmgt.vendor_db_settings.loginrole IS
    'Optional: a login role that create_database() makes (when missing) and allows to CONNECT to this tenant''s database, and to no other';
