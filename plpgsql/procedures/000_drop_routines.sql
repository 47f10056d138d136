-- Every routine and engine type is re-created by the files after this one, so drop them all
-- first: a routine whose arguments or result type changed between versions cannot be replaced in
-- place. Without CASCADE, so an object of someone else's that uses one stops the install with a
-- clear error. The installer holds every operation's lock (_lock_class) around this, so no
-- running admmgt operation loses its routines midway.
DO $$
DECLARE
    v_sig text;
    v_trigger record;
BEGIN
    -- Triggers on admmgt's tables that run its routines go with them; the files re-create them.
    FOR v_trigger IN SELECT t.tgname, t.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger t
                       JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
                       JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                      WHERE NOT t.tgisinternal AND p.pronamespace = 'admmgt'::regnamespace
                        AND c.relnamespace = 'admmgt'::regnamespace LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.rel);
    END LOOP;
    FOR v_sig IN SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
                  WHERE p.pronamespace = 'admmgt'::regnamespace ORDER BY p.oid DESC LOOP
        EXECUTE 'DROP ROUTINE ' || v_sig;
    END LOOP;
END;
$$;
-- Installs before this version created the engine types in the versioned migrations.
DROP TYPE IF EXISTS admmgt.work_item;
DROP TYPE IF EXISTS admmgt.exec_result;
DROP TYPE IF EXISTS admmgt.booking;
DROP TYPE IF EXISTS admmgt.error_state;
