-- Migrations as files: SELECT admmgt.add_script_file(...) and admmgt.sync_script_files(...)
-- (`admmgt script add` and `admmgt script sync`). A file becomes one script: its text as
-- script_sql rows, its base name in scripts.source_file and its checksum in
-- scripts.source_checksum. A registered file never changes: a change is a new file with a higher id.

CREATE OR REPLACE FUNCTION admmgt._script_file_text(p_body text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a file's text as admmgt keeps and hashes it: without a leading byte-order mark, every CRLF turned into LF (a checkout on Windows is no change) */
SELECT replace(regexp_replace(p_body, '^\uFEFF', ''), E'\r\n', E'\n');
$$;

CREATE OR REPLACE FUNCTION admmgt.script_file_checksum(p_body text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what scripts.source_checksum holds for a file: md5, in hex, of its text as UTF-8 after _script_file_text */
SELECT md5(convert_to(admmgt._script_file_text(p_body), 'UTF8'));
$$;

CREATE OR REPLACE FUNCTION admmgt._script_file_name(p_file text)
RETURNS TABLE (file text, version int, description text)
LANGUAGE sql IMMUTABLE
ROWS 1
SET search_path FROM CURRENT
AS $$
/* purpose: a file's base name and, when it is named V<N>__<words>.sql (Flyway's versioned files), the id N and the words with _ as spaces */
SELECT b.f,
       CASE WHEN m[1]::numeric BETWEEN 1 AND 2147483647 THEN m[1]::int END,
       nullif(btrim(replace(m[2], '_', ' ')), '')
  FROM (SELECT regexp_replace(btrim(coalesce(p_file, '')), '^.*[/\\]', '') AS f) b
  LEFT JOIN LATERAL regexp_match(b.f, '^V([0-9]+)__(.+)\.sql$') AS m ON true;
$$;

CREATE OR REPLACE FUNCTION admmgt._script_file_id(p_file text, p_id int)
RETURNS int
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the script id of a file: p_id, or else the N of its name V<N>__<words>.sql; refuses a file with neither, an id below 1, and an id that is not the one its name gives */
DECLARE
    v_name record;
BEGIN
    SELECT * INTO v_name FROM admmgt._script_file_name(p_file);
    IF v_name.file = '' THEN
        RAISE EXCEPTION 'admmgt: a migration file has no name'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Give each file its base name, such as V1__orders.sql.';
    END IF;
    IF coalesce(p_id, v_name.version) IS NULL OR coalesce(p_id, v_name.version) < 1 THEN
        RAISE EXCEPTION 'admmgt: file % has no script id', v_name.file
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Name it V<N>__<words>.sql with N from 1 to 2147483647, or give its id (p_id, --id), for %s.', v_name.file);
    END IF;
    IF p_id IS NOT NULL AND v_name.version IS NOT NULL AND v_name.version <> p_id THEN
        RAISE EXCEPTION 'admmgt: file % is named for script %, not %', v_name.file, v_name.version, p_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Register %s as script %s, or rename it V%s__<words>.sql.', v_name.file, v_name.version, p_id);
    END IF;
    RETURN coalesce(p_id, v_name.version);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._script_file_header(p_text text, p_file text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: whether a file's first line is the header -- admmgt: no-transaction; refuses, naming the file, that header on a later line and any other -- admmgt: header */
DECLARE
    v_lines text[] := string_to_array(p_text, E'\n');
    v_header constant text := '^--[[:blank:]]*admmgt:[[:blank:]]*no-transaction[[:blank:]]*$';
    v_line int;
BEGIN
    IF v_lines[1] ~* '^--[[:blank:]]*admmgt:' AND v_lines[1] !~* v_header THEN
        RAISE EXCEPTION 'admmgt: file % starts with an unknown header: %', p_file, v_lines[1]
            USING ERRCODE = 'syntax_error',
                  HINT = format('The one header admmgt knows is "-- admmgt: no-transaction", as the first line of %s.', p_file);
    END IF;
    SELECT min(l.n)::int INTO v_line FROM unnest(v_lines) WITH ORDINALITY AS l(line, n) WHERE l.n > 1 AND l.line ~* v_header;
    IF v_line IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: file % has the header "-- admmgt: no-transaction" on line %, where it does not count', p_file, v_line
            USING ERRCODE = 'syntax_error',
                  HINT = format('Move it to the first line of %s, or delete it to run the file in one transaction.', p_file);
    END IF;
    RETURN coalesce(v_lines[1] ~* v_header, false);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._script_file_state(p_id int, p_file text, p_checksum text, p_no_transaction boolean)
RETURNS TABLE (state text, reason text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: what registering file p_file (base name) as script p_id would do: new, unchanged, conflict (the file changed, or the id or the file is taken by something else) or out_of_order (at or below the template's version); reason names file and script */
DECLARE
    v_s admmgt.scripts;
    v_other int;
    v_version int;
BEGIN
    SELECT * INTO v_s FROM admmgt.scripts s WHERE s.id = p_id;
    IF FOUND THEN
        state := 'conflict';
        reason := CASE
            WHEN v_s.source_file IS NULL THEN format('script %s was made from rows, not from a file', p_id)
            WHEN v_s.source_file <> p_file THEN format('script %s was registered from %s', p_id, v_s.source_file)
            WHEN v_s.source_checksum IS DISTINCT FROM p_checksum
                THEN format('it changed since it was registered as script %s (md5 %s then, %s now)', p_id, v_s.source_checksum, p_checksum)
            WHEN p_no_transaction AND NOT EXISTS (SELECT 1 FROM admmgt.script_sql q WHERE q.scriptid = p_id AND q.txmode = 'none')
                THEN format('script %s was registered to run in one transaction, not with no-transaction', p_id)
        END;
        state := CASE WHEN reason IS NULL THEN 'unchanged' ELSE 'conflict' END;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT min(s.id) INTO v_other FROM admmgt.scripts s WHERE s.source_file = p_file;
    SELECT coalesce(max(v.scriptversion), 0) INTO v_version
      FROM admmgt.vendor_db_settings v WHERE v.istemplate AND NOT coalesce(v.deleted, false);
    IF v_other IS NOT NULL THEN
        state := 'conflict';
        reason := format('it is registered already, as script %s', v_other);
    ELSIF p_id <= v_version THEN
        state := 'out_of_order';
        reason := format('the template is at version %s already, so it would never run script %s', v_version, p_id);
    ELSE
        state := 'new';
    END IF;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._refuse_script_files(p_state text, p_reasons text[], p_files text[], p_next int)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse, naming each, files in conflict with registered scripts (p_state conflict) or below the template's version (out_of_order), with what to do instead */
BEGIN
    IF coalesce(cardinality(p_reasons), 0) = 0 OR p_state NOT IN ('conflict', 'out_of_order') THEN
        RETURN;
    END IF;
    IF p_state = 'conflict' THEN
        RAISE EXCEPTION 'admmgt: refused, registered scripts never change: %', array_to_string(p_reasons, '; ')
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Restore %s as registered (git checkout) and write the change as a new file V%s__<words>.sql; a new file whose id is taken: give it id %s.',
                                array_to_string(p_files, ', '), p_next, p_next);
    END IF;
    RAISE EXCEPTION 'admmgt: refused, added out of order: %', array_to_string(p_reasons, '; ')
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = format('Scripts run in id order: rename %s to V%s__<words>.sql (or higher).', array_to_string(p_files, ', '), p_next);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._next_script_id(p_ids int[] DEFAULT '{}')
RETURNS int
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the lowest id above every script, every given id and the template's version: what a new file should be called */
SELECT greatest((SELECT max(s.id) FROM admmgt.scripts s), (SELECT max(i) FROM unnest(p_ids) i),
                (SELECT max(v.scriptversion) FROM admmgt.vendor_db_settings v WHERE v.istemplate AND NOT coalesce(v.deleted, false)), 0) + 1;
$$;

CREATE OR REPLACE FUNCTION admmgt._register_script_file(p_id int, p_file text, p_text text, p_description text,
                                                        p_no_transaction boolean, p_draft boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: insert a checked file as script p_id: its scripts row (file name, checksum; ready unless p_draft) and its script_sql rows, the whole text as one step in the script's transaction or, with p_no_transaction, each statement as a step of its own; refuses a file with no statement */
DECLARE
    v_stmts text[] := admmgt._sql_statements(p_text, format('file %s', p_file));
    v_status int := CASE WHEN p_draft THEN 0 ELSE 1 END;
BEGIN
    IF coalesce(cardinality(v_stmts), 0) = 0 THEN
        RAISE EXCEPTION 'admmgt: file % holds no SQL statement', p_file
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Write the statements of script %s into %s, or delete the file.', p_id, p_file);
    END IF;
    INSERT INTO admmgt.scripts (id, description, status, source_file, source_checksum)
    VALUES (p_id, left(p_description, 1000), v_status, p_file, admmgt.script_file_checksum(p_text));
    IF p_no_transaction THEN
        INSERT INTO admmgt.script_sql (scriptid, seq, body, txmode, status)
        SELECT p_id, s.n, s.stmt, 'none', v_status FROM unnest(v_stmts) WITH ORDINALITY AS s(stmt, n);
    ELSE
        INSERT INTO admmgt.script_sql (scriptid, seq, body, txmode, status) VALUES (p_id, 1, p_text, 'script', v_status);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._script_file_down(p_id int, p_file text, p_down text)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: give script p_id the down steps of a file (the whole text as one down step, in the rollback's transaction) and say 'down added'; 'unchanged' when it has exactly these already; an applied script may get them too, and new ones replace the old; refuses a down file with no statement, or with the header no-transaction, naming it */
DECLARE
    v_text text := admmgt._script_file_text(p_down);
BEGIN
    IF admmgt._script_file_header(v_text, p_file) THEN
        RAISE EXCEPTION 'admmgt: down file % has the header "-- admmgt: no-transaction"', p_file
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A rollback undoes a script in one transaction per target: delete the header from the down file.';
    END IF;
    IF coalesce(cardinality(admmgt._sql_statements(v_text, format('down file %s', p_file))), 0) = 0 THEN
        RAISE EXCEPTION 'admmgt: down file % holds no SQL statement', p_file
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Write the statements that undo script %s into %s, or leave the down file out.', p_id, p_file);
    END IF;
    IF ARRAY(SELECT q.body FROM admmgt.script_sql q WHERE q.scriptid = p_id AND q.direction = 'down' ORDER BY q.seq) = ARRAY[v_text] THEN
        RETURN 'unchanged';
    END IF;
    DELETE FROM admmgt.script_sql WHERE scriptid = p_id AND direction = 'down';
    INSERT INTO admmgt.script_sql (scriptid, seq, body, txmode, direction, status)
    SELECT p_id, 1, v_text, 'script', 'down', s.status FROM admmgt.scripts s WHERE s.id = p_id;
    RETURN 'down added';
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.add_script_file(p_id int, p_file text, p_body text, p_description text DEFAULT NULL,
                                                  p_no_transaction boolean DEFAULT false, p_draft boolean DEFAULT false,
                                                  p_down text DEFAULT NULL, p_down_file text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: register a migration file as script p_id and say 'added', or 'unchanged' when it is registered as it is; with p_down, the text of its down file (p_down_file, its name), its down steps too: 'down added' when only those are new (an applied script may get them); refuses, naming file and script, a file that changed since, an id or a file taken by something else, an id at or below the template's version */
DECLARE
    v_name record;
    v_id int := admmgt._script_file_id(p_file, p_id);
    v_text text := admmgt._script_file_text(coalesce(p_body, ''));
    v_none boolean;
    v_st record;
BEGIN
    SELECT * INTO v_name FROM admmgt._script_file_name(p_file);
    v_none := coalesce(p_no_transaction, false) OR admmgt._script_file_header(v_text, v_name.file);
    -- Two registrations at once: the second one waits and then finds the file registered.
    LOCK TABLE admmgt.scripts IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO v_st FROM admmgt._script_file_state(v_id, v_name.file, admmgt.script_file_checksum(v_text), v_none);
    IF v_st.state = 'unchanged' THEN
        IF p_down IS NOT NULL THEN
            RETURN admmgt._script_file_down(v_id, coalesce(p_down_file, format('down of %s', v_name.file)), p_down);
        END IF;
        RETURN 'unchanged';
    END IF;
    PERFORM admmgt._refuse_script_files(v_st.state, ARRAY[format('%s (script %s): %s', v_name.file, v_id, v_st.reason)],
                                        ARRAY[v_name.file], admmgt._next_script_id(ARRAY[v_id]));
    PERFORM admmgt._register_script_file(v_id, v_name.file, v_text, coalesce(p_description, v_name.description, v_name.file),
                                         v_none, p_draft);
    IF p_down IS NOT NULL THEN
        -- Its answer (down added) speaks of a script registered before; this one is new.
        PERFORM admmgt._script_file_down(v_id, coalesce(p_down_file, format('down of %s', v_name.file)), p_down);
    END IF;
    RETURN 'added';
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._script_files(p_files jsonb)
RETURNS TABLE (id int, file text, description text, body text, checksum text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
/* purpose: the files of a sync, checked and in id order: each an object with "file" and "body" (and optionally "id" and "description", else from its name); no id or file name twice */
DECLARE
    v_files jsonb;
    v_dup text;
BEGIN
    IF jsonb_typeof(p_files) IS DISTINCT FROM 'array' OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_files) e
         WHERE jsonb_typeof(e) <> 'object' OR jsonb_typeof(e -> 'file') IS DISTINCT FROM 'string'
            OR jsonb_typeof(e -> 'body') IS DISTINCT FROM 'string' OR jsonb_typeof(e -> 'id') NOT IN ('number', 'null')) THEN
        RAISE EXCEPTION 'admmgt: p_files must be a JSON array of objects, each with a "file" and a "body" string'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example [{"file": "V1__orders.sql", "body": "CREATE TABLE ..."}]; "id" and "description" are optional.';
    END IF;
    SELECT jsonb_agg(jsonb_build_object(
               'id', admmgt._script_file_id(e ->> 'file', (e ->> 'id')::int), 'file', n.file,
               'description', coalesce(e ->> 'description', n.description, n.file),
               'body', admmgt._script_file_text(e ->> 'body'), 'checksum', admmgt.script_file_checksum(e ->> 'body')))
      INTO v_files
      FROM jsonb_array_elements(p_files) e CROSS JOIN LATERAL admmgt._script_file_name(e ->> 'file') n;
    SELECT string_agg(d.what, '; ') INTO v_dup FROM (
        SELECT format('script %s from %s', f.id, string_agg(f.file, ' and ' ORDER BY f.file)) AS what
          FROM jsonb_to_recordset(v_files) AS f(id int, file text) GROUP BY f.id HAVING count(*) > 1
        UNION ALL
        SELECT format('%s %s times', f.file, count(*))
          FROM jsonb_to_recordset(v_files) AS f(id int, file text) GROUP BY f.file HAVING count(*) > 1) d;
    IF v_dup IS NOT NULL THEN
        RAISE EXCEPTION 'admmgt: refused, the same script or file twice: %', v_dup
            USING ERRCODE = 'duplicate_object', HINT = 'Each script id and each file name may come once: rename one of those files (V01__ and V1__ are both script 1).';
    END IF;
    RETURN QUERY SELECT f.* FROM jsonb_to_recordset(v_files) AS f(id int, file text, description text, body text, checksum text) ORDER BY f.id;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._warn_missing_files(p_files text[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a WARNING for each script registered from a file that is not among the files of a sync (deleted or renamed since); nothing is changed */
DECLARE
    v_s record;
BEGIN
    FOR v_s IN SELECT s.id, s.source_file FROM admmgt.scripts s
                WHERE s.source_file IS NOT NULL AND s.source_file <> ALL (p_files) ORDER BY s.id LOOP
        RAISE WARNING 'admmgt script sync: script % was registered from %, which is not among the files given', v_s.id, v_s.source_file
            USING HINT = 'A registered script stays as it is: bring the file back (git checkout) unless it was registered from elsewhere.';
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.sync_script_files(p_files jsonb, p_draft boolean DEFAULT false)
RETURNS TABLE (scriptid int, file text, outcome text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
/* purpose: register every migration file of a folder at once, all or nothing: refuses first, naming each, the files that changed since they were registered or clash with a script, then those at or below the template's version; then registers the new ones in id order and says per file added or unchanged */
DECLARE
    v_f record;
    v_ids int[];
    v_next int;
    v_refused record;
BEGIN
    LOCK TABLE admmgt.scripts IN SHARE ROW EXCLUSIVE MODE;
    SELECT coalesce(array_agg(f.id), '{}') INTO v_ids FROM admmgt._script_files(p_files) f;
    v_next := admmgt._next_script_id(v_ids);
    FOR v_refused IN
        SELECT s.state, array_agg(format('%s (script %s): %s', f.file, f.id, s.reason) ORDER BY f.id) AS reasons,
               array_agg(f.file ORDER BY f.id) AS files
          FROM admmgt._script_files(p_files) f
         CROSS JOIN LATERAL admmgt._script_file_state(f.id, f.file, f.checksum, false) s
         WHERE s.state IN ('conflict', 'out_of_order')
         GROUP BY s.state ORDER BY s.state = 'out_of_order' LOOP
        PERFORM admmgt._refuse_script_files(v_refused.state, v_refused.reasons, v_refused.files, v_next);
    END LOOP;
    PERFORM admmgt._warn_missing_files(ARRAY(SELECT f.file FROM admmgt._script_files(p_files) f));
    -- Only new and unchanged files are left; registering one cannot change what another is.
    FOR v_f IN SELECT * FROM admmgt._script_files(p_files) f ORDER BY f.id LOOP
        scriptid := v_f.id;
        file := v_f.file;
        outcome := (SELECT s.state FROM admmgt._script_file_state(v_f.id, v_f.file, v_f.checksum, false) s);
        IF outcome = 'new' THEN
            PERFORM admmgt._register_script_file(v_f.id, v_f.file, v_f.body, v_f.description,
                                                 admmgt._script_file_header(v_f.body, v_f.file), p_draft);
            outcome := 'added';
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
