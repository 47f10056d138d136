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

CREATE OR REPLACE FUNCTION admmgt._window_days()
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the longest window of days that maintenance and rendering work on (t_numdays at most), about ten years: at most 3,661 daily partitions per table and run */
SELECT 3660;
$$;

CREATE OR REPLACE FUNCTION admmgt._finite_date(p_value date, p_what text)
RETURNS date
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a date that is not a day of the calendar (infinity, -infinity) or past year 9999, naming it: the partitions of such a day never end */
BEGIN
    IF p_value IS NULL OR NOT isfinite(p_value) OR p_value > date '9999-12-31' OR p_value < date '0001-01-01' THEN
        RAISE EXCEPTION 'admmgt: % must be a day between 0001-01-01 and 9999-12-31, not %', p_what, coalesce(p_value::text, 'NULL')
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'Leave it out for today, or give a date such as 2026-12-01.';
    END IF;
    RETURN p_value;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._check_window(p_from date, p_to date)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a window of days with a day that never comes, or of more than _window_days() days, naming it; true otherwise */
BEGIN
    PERFORM admmgt._finite_date(p_from, 'the first day of the window'), admmgt._finite_date(p_to, 'the last day of the window');
    IF p_to - p_from > admmgt._window_days() THEN
        RAISE EXCEPTION 'admmgt: the window from % to % has % days, more than %', p_from, p_to, p_to - p_from, admmgt._window_days()
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Create partitions at most about ten years ahead (t_numdays => 3660).';
    END IF;
    RETURN true;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._periods(p_unit text, p_from date, p_to date)
RETURNS TABLE (period_start date, period_end date)
LANGUAGE plpgsql IMMUTABLE
ROWS 12
SET search_path FROM CURRENT
AS $$
/* purpose: every period of p_unit that holds a day from p_from through p_to; a window of more than _window_days() days, or with a day that never comes, is refused */
BEGIN
    PERFORM admmgt._check_window(p_from, p_to);
    RETURN QUERY
    SELECT s::date, (s + admmgt._period_step(p_unit))::date
      FROM generate_series(date_trunc(p_unit, p_from::timestamp),
                           date_trunc(p_unit, p_to::timestamp),
                           admmgt._period_step(p_unit)) AS s;
END;
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
