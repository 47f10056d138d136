-- Choosing the targets of an operation: by name (p_tenants), by server (p_server), by tag
-- (p_tag). The three combine with AND; NULL leaves that filter out. A name, server or tag that
-- matches nothing is refused before any target is touched, so a typo never turns into a run on
-- nothing that reports success.

CREATE OR REPLACE FUNCTION admmgt._check_selection(p_op text, p_tenants text[], p_server text, p_tag text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a selection that names a tenant, server or tag the registry does not have */
DECLARE
    v_unknown text[];
BEGIN
    IF p_tenants IS NOT NULL AND cardinality(p_tenants) = 0 THEN
        RAISE EXCEPTION 'admmgt: % was given an empty list of tenants', p_op
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Name at least one tenant, or pass NULL for all of them.';
    END IF;
    SELECT array_agg(n ORDER BY n) INTO v_unknown
      FROM unnest(p_tenants) AS n
     WHERE NOT EXISTS (SELECT 1 FROM admmgt.targets t WHERE t.dbname = lower(btrim(n)) AND NOT t.pool);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: % was asked for %, which % not a created target', p_op, array_to_string(v_unknown, ', '),
                        CASE WHEN cardinality(v_unknown) = 1 THEN 'is' ELSE 'are' END
            USING ERRCODE = 'undefined_object', HINT = 'See SELECT dbname, status FROM admmgt.tenant_status.';
    END IF;
    IF p_server IS NOT NULL AND NOT EXISTS (SELECT 1 FROM admmgt.servers s WHERE s.name = p_server) THEN
        RAISE EXCEPTION 'admmgt: % was asked for server %, which is not registered', p_op, p_server
            USING ERRCODE = 'undefined_object', HINT = 'See SELECT name FROM admmgt.servers.';
    END IF;
    IF p_tag IS NOT NULL AND NOT EXISTS (SELECT 1 FROM admmgt.targets t WHERE p_tag = ANY (t.tags) AND NOT t.pool) THEN
        RAISE EXCEPTION 'admmgt: % was asked for tag %, which no created target has', p_op, p_tag
            USING ERRCODE = 'undefined_object', HINT = 'Tag targets with UPDATE admmgt.vendor_db_settings SET tags = tags || ''{...}''.';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._selected(p_target admmgt.targets, p_tenants text[], p_server text, p_tag text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: whether a target is one of those chosen; a pool database only when no tenant or tag is named (it is kept up with the fleet, never chosen as a tenant) */
SELECT (NOT p_target.pool OR (p_tenants IS NULL AND p_tag IS NULL))
   AND (p_tenants IS NULL OR p_target.dbname = ANY (ARRAY(SELECT lower(btrim(n)) FROM unnest(p_tenants) n)))
   AND (p_server IS NULL OR p_target.server = p_server)
   AND (p_tag IS NULL OR p_tag = ANY (p_target.tags));
$$;

CREATE OR REPLACE FUNCTION admmgt._select(p_targets admmgt.targets[], p_tenants text[], p_server text, p_tag text)
RETURNS admmgt.targets[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the chosen targets of a list, in its order */
-- Two set-returning functions in one select list run in step: each target beside its position.
SELECT admmgt._at(coalesce(p_targets, '{}'::admmgt.targets[]), ARRAY(SELECT s.k FROM (SELECT unnest(p_targets) AS t, generate_subscripts(p_targets, 1) AS k) s
                                    WHERE admmgt._selected(s.t, p_tenants, p_server, p_tag) ORDER BY s.k));
$$;
