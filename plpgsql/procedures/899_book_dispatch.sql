-- The booking hooks' dispatcher, generated from the catalog once every operation's file has
-- created its hooks: admmgt._book(item, state, booking) calls admmgt._book_<item.kind> by name. The
-- record layer thus knows no operation, and yet calls its hook statically: a plan PL/pgSQL keeps
-- for the session, where an EXECUTE per finished item parsed and planned its call every time.
DO $do$
DECLARE
    v_cases text;
BEGIN
    SELECT string_agg(format('        WHEN %L THEN RETURN admmgt.%I(p_item, p_state, p_booking);', substr(p.proname, 7), p.proname),
                      E'\n' ORDER BY p.proname)
      INTO v_cases
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'admmgt'::regnamespace AND p.proname LIKE '\_book\_%'
       AND p.pronargs = 3 AND p.proargtypes[0] = 'admmgt.work_item'::regtype AND p.proargtypes[1] = 'admmgt.exec_result'::regtype
       AND p.proargtypes[2] = 'admmgt.booking'::regtype;
    EXECUTE format($f$
CREATE OR REPLACE FUNCTION admmgt._book(p_item admmgt.work_item, p_state admmgt.exec_result, p_booking admmgt.booking)
RETURNS admmgt.booking
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $b$
/* purpose: hand a finished item's booking to the hook of its kind, admmgt._book_<kind> (generated at install from the hooks there are) */
BEGIN
    CASE p_item.kind
%s
        ELSE
            RAISE EXCEPTION 'admmgt: work items of kind %% have no booking hook admmgt._book_%%', p_item.kind, p_item.kind
                USING ERRCODE = 'internal_error', HINT = 'This is a bug in admmgt; please report it.';
    END CASE;
END;
$b$$f$, v_cases);
END;
$do$;
