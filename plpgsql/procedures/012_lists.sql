-- List helpers: what the procedures do with their lists of targets and work items before the first
-- target (choose, leave out, split, merge), in time linear in the list. A list of composites with
-- variable-length fields, indexed as p_list[k] in a query or aggregated back into an array by
-- array_agg, costs more per element the longer the list is: a deploy of 2,000 targets spent 17.8 s
-- in one such helper, _at_goals (bench/helpers.ts). So the helpers decide on the positions, a
-- list of integers, and _at builds the result in PL/pgSQL, whose array variables index and grow in
-- place.

CREATE OR REPLACE FUNCTION admmgt._at(p_list anyarray, p_ks int[])
RETURNS anyarray
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the elements of a list at the positions p_ks, in the order of p_ks (NULL for a NULL list) */
DECLARE
    -- An empty list of the same type (a literal would have no type here).
    v_out p_list%TYPE := p_list[1:0];
    k int;
BEGIN
    FOREACH k IN ARRAY coalesce(p_ks, '{}'::int[]) LOOP
        v_out := v_out || p_list[k];
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._item_ids(p_items admmgt.work_item[])
RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the target of each item of a list, in the list's order */
DECLARE
    v_ids bigint[] := '{}'::bigint[];
BEGIN
    -- unnest() in a query would copy every item, statements and all, into a tuplestore first.
    FOR k IN 1 .. coalesce(cardinality(p_items), 0) LOOP
        v_ids := v_ids || (p_items[k]).target_id;
    END LOOP;
    RETURN v_ids;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._positions(p_ids bigint[], p_set bigint[], p_in boolean)
RETURNS int[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the positions, in order, of the ids of p_ids that are in p_set (p_in) or not in it; a NULL p_set holds none */
SELECT ARRAY(SELECT u.k::int FROM unnest(p_ids) WITH ORDINALITY AS u(id, k)
              WHERE (u.id IN (SELECT s FROM unnest(p_set) AS s)) = p_in
              ORDER BY u.k);
$$;

CREATE OR REPLACE FUNCTION admmgt._without(p_items admmgt.work_item[], p_targets bigint[], p_only boolean DEFAULT false)
RETURNS admmgt.work_item[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the items of p_items, in their order, but those of the targets p_targets; with p_only, only those */
SELECT admmgt._at(coalesce(p_items, '{}'::admmgt.work_item[]), admmgt._positions(admmgt._item_ids(p_items), p_targets, coalesce(p_only, false)));
$$;
