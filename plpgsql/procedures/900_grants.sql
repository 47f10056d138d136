-- Privileges. Nothing in admmgt is callable or readable by PUBLIC: a tenant's login must not drive
-- the control plane. Role admmgt_operator (NOLOGIN) is what a DBA grants to whoever runs the CALLs.
-- The procedures run with their caller's rights (a procedure that commits cannot be SECURITY
-- DEFINER), so the operator holds the rights they use: every routine, and the metadata tables.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'admmgt_operator') THEN
        CREATE ROLE admmgt_operator NOLOGIN;
        COMMENT ON ROLE admmgt_operator IS 'May run the admmgt procedures and read and write its metadata';
    END IF;
EXCEPTION WHEN unique_violation OR duplicate_object THEN
    -- Roles are cluster-wide: an install into another admin database made it at the same moment.
    NULL;
END;
$$;

REVOKE ALL ON SCHEMA admmgt FROM PUBLIC;
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA admmgt FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA admmgt FROM PUBLIC;

GRANT USAGE ON SCHEMA admmgt TO admmgt_operator;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA admmgt TO admmgt_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA admmgt TO admmgt_operator;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA admmgt TO admmgt_operator;
-- The ledger of the installer is not the operator's to change.
REVOKE INSERT, UPDATE, DELETE ON admmgt.migrations FROM admmgt_operator;

-- dblink connects wherever it is told, from the server: with EXECUTE for PUBLIC, any role that can
-- log in to the admin database (a tenant's login role among them) could probe ports or reach
-- other databases through it. Only the operator needs it. Other users of dblink in this database
-- need a GRANT of their own after this. An installer that does not own dblink (a superuser created
-- it) cannot change its grants: the installer checks first that its owner already did
-- (missingInstallRights in src/install.ts), so here only the grants it may give are given.
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
                  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
                  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink'
                 WHERE pg_catalog.pg_has_role(p.proowner, 'USAGE') LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', v_fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO admmgt_operator', v_fn);
    END LOOP;
END;
$$;
