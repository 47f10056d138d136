-- Every routine is re-created by the files after this one, so drop them all first: a routine
-- whose arguments or result type changed between versions cannot be replaced in place. Without
-- CASCADE, so an object of someone else's that uses one stops the install with a clear error.
-- First wait for every running admmgt operation to end: a run must not lose its routines midway.
SELECT pg_catalog.pg_advisory_xact_lock(426601, k) FROM pg_catalog.generate_series(1, 3) AS k;
DO $$
DECLARE
    v_sig text;
BEGIN
    FOR v_sig IN SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
                  WHERE p.pronamespace = 'admmgt'::regnamespace ORDER BY p.oid DESC LOOP
        EXECUTE 'DROP ROUTINE ' || v_sig;
    END LOOP;
END;
$$;
