-- Periods and partition names for RANGE partitions. Names sort in time order:
-- <table>[_<list value>]_p<YYYYMMDD of the period start>.

CREATE OR REPLACE FUNCTION admmgt._interval(p_value text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: check a RANGE partition interval name */
DECLARE
    v_unit text := lower(btrim(p_value));
BEGIN
    IF v_unit IS NULL OR v_unit NOT IN ('day', 'week', 'month', 'quarter', 'year') THEN
        RAISE EXCEPTION 'admmgt: unknown range interval % in %', coalesce(quote_literal(p_value), 'NULL'), p_row
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use day, week, month, quarter or year.';
    END IF;
    RETURN v_unit;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._period_step(p_unit text)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the length of one period of a checked interval name */
SELECT CASE p_unit WHEN 'quarter' THEN interval '3 months' ELSE ('1 ' || p_unit)::interval END;
$$;

CREATE OR REPLACE FUNCTION admmgt._periods(p_unit text, p_from date, p_to date)
RETURNS TABLE (period_start date, period_end date)
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: every period of p_unit that holds a day from p_from through p_to */
SELECT s::date, (s + admmgt._period_step(p_unit))::date
  FROM generate_series(date_trunc(p_unit, p_from::timestamp),
                       date_trunc(p_unit, p_to::timestamp),
                       admmgt._period_step(p_unit)) AS s;
$$;

CREATE OR REPLACE FUNCTION admmgt._partition_name(p_table text, p_list_value text, p_period date, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the predictable name of a LIST partition and/or a RANGE period partition */
DECLARE
    v_name text := p_table;
BEGIN
    IF p_list_value IS NOT NULL THEN
        v_name := v_name || '_' || regexp_replace(lower(p_list_value), '[^a-z0-9]+', '_', 'g');
    END IF;
    IF p_period IS NOT NULL THEN
        v_name := v_name || '_p' || to_char(p_period, 'YYYYMMDD');
    END IF;
    IF octet_length(v_name) > 63 THEN
        RAISE EXCEPTION 'admmgt: partition name % of % is longer than 63 bytes', quote_literal(v_name), p_row
            USING ERRCODE = 'name_too_long',
                  HINT = 'Shorten the table name or the list value.';
    END IF;
    RETURN v_name;
END;
$$;
