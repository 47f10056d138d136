-- Render layer, part 7: plain SQL steps (script_sql). A body is split into statements by a lexer
-- that sees quotes, dollar quotes and comments as PostgreSQL does, so that a step can be refused
-- before any target is touched (a transaction-control statement, two statements where one runs
-- alone). Atomicity does not rest on the lexer: a statement that runs in the script's transaction
-- is sent inside a DO block's EXECUTE, where PostgreSQL itself refuses COMMIT, ROLLBACK and the
-- like, so no step can end or open the script's transaction, whatever it holds.

CREATE OR REPLACE FUNCTION admmgt._sql_refuse(p_row text, p_what text, p_hint text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse SQL text of a row, naming the row */
BEGIN
    RAISE EXCEPTION 'admmgt: % %', p_row, p_what USING ERRCODE = 'syntax_error', HINT = p_hint;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_ident_char(p_ch text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: whether a character can continue a name without quotes, as PostgreSQL's lexer sees it: A-Z, a-z, 0-9, _, $ and every character outside ASCII, whatever the locale says */
SELECT p_ch ~ '^[A-Za-z0-9_$]$' OR ascii(p_ch) > 127;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_token_end(p_body text, p_chars text[], p_i int, p_row text)
RETURNS int
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: where the quoted token or comment that starts at p_i ends (its last character), 0 when nothing starts there; refuses one that never ends */
DECLARE
    v_n int := cardinality(p_chars);
    v_ch text := p_chars[p_i];
    v_next text := p_chars[p_i + 1];
    v_j int;
    v_depth int;
    v_escapes boolean;
    v_tag text[];
BEGIN
    IF v_ch = '-' AND v_next = '-' THEN
        v_j := p_i + 2;
        WHILE v_j <= v_n AND p_chars[v_j] NOT IN (E'\n', E'\r') LOOP v_j := v_j + 1; END LOOP;
        RETURN v_j - 1;
    ELSIF v_ch = '/' AND v_next = '*' THEN
        -- Block comments nest in PostgreSQL.
        v_depth := 1; v_j := p_i + 2;
        WHILE v_j <= v_n AND v_depth > 0 LOOP
            IF p_chars[v_j] = '/' AND p_chars[v_j + 1] = '*' THEN v_depth := v_depth + 1; v_j := v_j + 2;
            ELSIF p_chars[v_j] = '*' AND p_chars[v_j + 1] = '/' THEN v_depth := v_depth - 1; v_j := v_j + 2;
            ELSE v_j := v_j + 1; END IF;
        END LOOP;
        IF v_depth > 0 THEN PERFORM admmgt._sql_refuse(p_row, 'has a comment /* that never ends', 'Close it with */.'); END IF;
        RETURN v_j - 1;
    ELSIF v_ch IN ('''', '"') THEN
        -- E'...' strings take backslash escapes; an E that ends a longer word is not a prefix.
        v_escapes := v_ch = '''' AND p_i > 1 AND p_chars[p_i - 1] IN ('E', 'e')
                     AND (p_i = 2 OR NOT admmgt._sql_ident_char(p_chars[p_i - 2]));
        v_j := p_i + 1;
        LOOP
            IF v_j > v_n THEN
                PERFORM admmgt._sql_refuse(p_row, format('has a quote %s that never ends', v_ch), 'Close the string or quoted name.');
            END IF;
            IF v_escapes AND p_chars[v_j] = '\' THEN v_j := v_j + 2; CONTINUE; END IF;
            IF p_chars[v_j] = v_ch THEN
                EXIT WHEN p_chars[v_j + 1] IS DISTINCT FROM v_ch;
                v_j := v_j + 1;
            END IF;
            v_j := v_j + 1;
        END LOOP;
        RETURN v_j;
    ELSIF v_ch = '$' AND (p_i = 1 OR NOT admmgt._sql_ident_char(p_chars[p_i - 1])) THEN
        -- $tag$ ... $tag$: a tag is a name without $ that does not start with a digit ($1 is a
        -- parameter, not a tag).
        v_j := p_i + 1;
        IF p_chars[v_j] ~ '^[0-9]$' THEN RETURN 0; END IF;
        WHILE v_j <= v_n AND p_chars[v_j] <> '$' AND admmgt._sql_ident_char(p_chars[v_j]) LOOP v_j := v_j + 1; END LOOP;
        IF p_chars[v_j] IS DISTINCT FROM '$' THEN RETURN 0; END IF;
        v_tag := ARRAY[substr(p_body, p_i, v_j - p_i + 1)];
        v_j := strpos(substr(p_body, p_i + length(v_tag[1])), v_tag[1]);
        IF v_j = 0 THEN
            PERFORM admmgt._sql_refuse(p_row, format('has a dollar quote %s that never ends', v_tag[1]), 'Close it with the same tag.');
        END IF;
        RETURN p_i + 2 * length(v_tag[1]) + v_j - 2;
    END IF;
    RETURN 0;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_check_statement(p_stmt text, p_row text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: refuse a statement that cannot be a step: transaction control, a session setting (SET without LOCAL, RESET), COPY from or to the client */
DECLARE
    v_words text[] := regexp_match(lower(p_stmt), '^([[:alpha:]_]+)(?:\s+([[:alpha:]_]+))?');
BEGIN
    IF v_words[1] IN ('begin', 'start', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release')
       OR (v_words[1] = 'prepare' AND v_words[2] = 'transaction') THEN
        PERFORM admmgt._sql_refuse(p_row, format('holds the transaction-control statement %s', upper(v_words[1])),
            'A script runs in one transaction per target, which admmgt opens and ends; a statement that cannot run in a transaction is a step of its own with txmode none.');
    END IF;
    -- A session's setting outlasts the script on its connection, into the scripts after it there
    -- (search_path included), and a step outside a transaction cannot hand one to the next: a
    -- rerun may skip the one and run the other.
    IF v_words[1] = 'reset' OR (v_words[1] = 'set' AND v_words[2] IS DISTINCT FROM 'local'
                                AND v_words[2] IS DISTINCT FROM 'transaction' AND v_words[2] IS DISTINCT FROM 'constraints') THEN
        PERFORM admmgt._sql_refuse(p_row, format('holds %s, which would change the session beyond the script', upper(v_words[1])),
            'Use SET LOCAL in a step with txmode script: the setting ends with the script''s transaction. Outside a transaction, a setting cannot be carried from one step to the next.');
    END IF;
    IF p_stmt ~* '^copy\M.*\m(from\s+stdin|to\s+stdout)\M' THEN
        PERFORM admmgt._sql_refuse(p_row, 'holds COPY from or to the client, which has no data to send',
            'Load data with INSERT ... SELECT, or COPY from a file on the target''s server.');
    END IF;
    RETURN p_stmt;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_statements(p_body text, p_row text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: split SQL text at its top-level semicolons into statements, without the comments around them; refuses what cannot run as a step, naming the row */
DECLARE
    v_body text := coalesce(p_body, '');
    v_chars text[] := coalesce(string_to_array(v_body, NULL), '{}');
    v_n int := cardinality(v_chars);
    v_i int := 1;
    v_end int;
    v_first int;
    v_last int;
    v_out text[] := '{}'::text[];
    -- As psql splits a file: a semicolon inside parentheses (CREATE RULE ... DO (a; b)) or inside
    -- the BEGIN ATOMIC ... END body of a CREATE FUNCTION or PROCEDURE ends no statement.
    v_words text[] := '{}'::text[];   -- the first four names of the statement, in lower case
    v_prev text;              -- the token before this one when it is a name, in lower case
    v_word text;
    v_parens int := 0;
    v_atomic int := 0;        -- BEGIN ATOMIC, then CASE, opened and not yet ENDed
    v_ident boolean[];        -- per character: can it be part of a name without quotes
BEGIN
    SELECT array_agg(admmgt._sql_ident_char(c) ORDER BY k) INTO v_ident FROM unnest(v_chars) WITH ORDINALITY AS u(c, k);
    WHILE v_i <= v_n + 1 LOOP
        IF v_i > v_n OR (v_chars[v_i] = ';' AND v_parens = 0 AND v_atomic = 0) THEN
            IF v_first IS NOT NULL THEN
                v_out := v_out || admmgt._sql_check_statement(substr(v_body, v_first, v_last - v_first + 1), p_row);
            END IF;
            v_first := NULL; v_words := '{}'; v_prev := NULL; v_parens := 0; v_atomic := 0;
            v_i := v_i + 1;
            CONTINUE;
        END IF;
        IF v_chars[v_i] = '\' THEN
            PERFORM admmgt._sql_refuse(p_row, 'holds a backslash outside a string (a psql meta-command?)',
                'Steps are SQL run by the server: psql commands such as \connect or \i do not work there.');
        END IF;
        v_end := CASE WHEN v_chars[v_i] IN ('-', '/', '''', '"', '$') THEN admmgt._sql_token_end(v_body, v_chars, v_i, p_row) ELSE 0 END;
        IF v_end > 0 AND v_chars[v_i] IN ('-', '/') THEN
            v_i := v_end + 1;  -- a comment: neither starts nor ends a statement's text
            CONTINUE;
        END IF;
        v_word := NULL;
        IF v_end = 0 AND v_ident[v_i] AND v_chars[v_i] !~ '^[0-9$]$' AND (v_i = 1 OR NOT v_ident[v_i - 1]) THEN
            -- A name: read it whole.
            v_end := v_i;
            v_word := v_chars[v_i];
            WHILE v_end < v_n AND v_ident[v_end + 1] LOOP
                v_end := v_end + 1;
                v_word := v_word || v_chars[v_end];
            END LOOP;
            v_word := lower(v_word);
            IF cardinality(v_words) < 4 THEN v_words := v_words || v_word; END IF;
            IF v_parens = 0 AND v_words[1] = 'create'
               AND (v_words[2] IN ('function', 'procedure')
                    OR (v_words[2] = 'or' AND v_words[3] = 'replace' AND v_words[4] IN ('function', 'procedure'))) THEN
                IF v_word = 'atomic' AND v_prev = 'begin' THEN
                    v_atomic := v_atomic + 1;
                ELSIF v_word = 'case' AND v_atomic > 0 THEN
                    v_atomic := v_atomic + 1;
                ELSIF v_word = 'end' AND v_atomic > 0 THEN
                    v_atomic := v_atomic - 1;
                END IF;
            END IF;
        ELSIF v_chars[v_i] = '(' THEN
            v_parens := v_parens + 1;
        ELSIF v_chars[v_i] = ')' THEN
            v_parens := greatest(v_parens - 1, 0);
        END IF;
        v_end := greatest(v_end, v_i);
        IF v_chars[v_i] !~ '^\s$' THEN
            v_first := coalesce(v_first, v_i);
            v_last := v_end;
            v_prev := v_word;
        END IF;
        v_i := v_end + 1;
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._dollar_quote(p_text text, p_tag text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: p_text as a dollar-quoted constant whose tag (p_tag, or p_tag with a number) cannot end it early */
DECLARE
    v_delim text := '$' || p_tag || '$';
    v_k int := 0;
BEGIN
    -- The first place the delimiter occurs in text||delimiter must be the closing one.
    WHILE strpos(p_text || v_delim, v_delim) <> length(p_text) + 1 LOOP
        v_k := v_k + 1;
        v_delim := format('$%s%s$', p_tag, v_k);
    END LOOP;
    RETURN v_delim || p_text || v_delim;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._in_transaction(p_stmt text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: one statement of a SQL step wrapped so that PostgreSQL refuses it if it would end or open the script's transaction */
SELECT 'DO ' || admmgt._dollar_quote('BEGIN EXECUTE ' || admmgt._dollar_quote(p_stmt, 'step') || '; END', 'admmgt');
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_concurrent_index(p_stmt text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: the schema and name of the index a CREATE [UNIQUE] INDEX CONCURRENTLY statement builds, as the catalog spells them (NULL when the statement is something else, or its index has no name or its table no schema), so that a rerun knows an INVALID leftover of a failed build */
DECLARE
    v_ident text := '("(?:[^"]|"")+"|[^\s"().,;]+)';
    v_m text[] := regexp_match(p_stmt, '^create\s+(?:unique\s+)?index\s+concurrently\s+(?:if\s+not\s+exists\s+)?' || v_ident
                                        || '\s+on\s+(?:only\s+)?' || v_ident || '\s*\.\s*' || v_ident, 'i');
    v_out text[] := '{}'::text[];
    v_name text;
BEGIN
    IF v_m IS NULL OR lower(v_m[1]) = 'on' THEN
        RETURN NULL;
    END IF;
    FOREACH v_name IN ARRAY ARRAY[v_m[2], v_m[1]] LOOP
        v_out := v_out || CASE WHEN left(v_name, 1) = '"' THEN replace(substr(v_name, 2, length(v_name) - 2), '""', '"')
                               -- PostgreSQL folds only A-Z of a name without quotes.
                               ELSE translate(v_name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END;
    END LOOP;
    RETURN jsonb_build_object('schema', v_out[1], 'name', v_out[2]);
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_steps(p_scriptid int, p_direction text)
RETURNS TABLE (stmt text, txmode text, source text)
LANGUAGE plpgsql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: the statements of a script's SQL steps of one direction (up: what an apply runs; down: what a rollback runs), in seq order: a txmode script step's statements wrapped to stay in the script's transaction, a txmode none step's one statement as it is; refuses a step with no statement, a none step with more than one, and a down step outside a transaction, naming its row */
DECLARE
    v_step admmgt.script_sql;
    v_row text;
    v_stmts text[];
BEGIN
    FOR v_step IN SELECT * FROM admmgt.script_sql s WHERE s.scriptid = p_scriptid AND s.direction = p_direction ORDER BY s.seq LOOP
        v_row := admmgt._row('script_sql', v_step.id);
        IF p_direction = 'down' AND v_step.txmode <> 'script' THEN
            PERFORM admmgt._sql_refuse(v_row, format('is a down step with txmode %s', v_step.txmode),
                'A rollback undoes a script in one transaction per target: a down step has txmode script. Undo what cannot run in a transaction by hand, or in a new script.');
        END IF;
        v_stmts := admmgt._sql_statements(v_step.body, v_row);
        IF cardinality(v_stmts) = 0 THEN
            PERFORM admmgt._sql_refuse(v_row, 'holds no statement', format('Write the %s SQL in body, or delete the row.',
                                                                           CASE WHEN p_direction = 'down' THEN 'down step''s' ELSE 'step''s' END));
        END IF;
        IF v_step.txmode = 'none' THEN
            IF cardinality(v_stmts) > 1 THEN
                PERFORM admmgt._sql_refuse(v_row, format('has txmode none but holds %s statements', cardinality(v_stmts)),
                    'A step with txmode none runs exactly one statement alone: give each statement a row of its own.');
            END IF;
            RETURN QUERY SELECT v_stmts[1], 'none'::text, v_row;
        ELSE
            RETURN QUERY
            SELECT admmgt._in_transaction(s.stmt), 'script'::text,
                   CASE WHEN cardinality(v_stmts) = 1 THEN v_row ELSE format('%s, statement %s', v_row, s.n) END
              FROM unnest(v_stmts) WITH ORDINALITY AS s(stmt, n) ORDER BY s.n;
        END IF;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_sql_steps(p_scriptid int)
RETURNS TABLE (stmt text, txmode text, source text)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: the statements of a script's SQL steps (its up steps; down steps run only when the script is rolled back, render_down), in seq order */
SELECT s.stmt, s.txmode, s.source FROM admmgt._sql_steps(p_scriptid, 'up') s;
$$;

CREATE OR REPLACE FUNCTION admmgt.render_down(p_scriptid int)
RETURNS TABLE (seq int, stmt text, source text)
LANGUAGE sql STABLE
ROWS 10
SET search_path FROM CURRENT
AS $$
/* purpose: the statements of a script's down steps (script_sql rows with direction down), in seq order, as a rollback runs them in one transaction per target, checked and wrapped as up steps are; refuses a down step outside a transaction or with no statement, naming its row; no rows when the script has no down step */
SELECT s.n::int, s.stmt, s.source FROM admmgt._sql_steps(p_scriptid, 'down') WITH ORDINALITY AS s(stmt, txmode, source, n) ORDER BY s.n;
$$;
