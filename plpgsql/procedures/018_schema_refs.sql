-- Schema references in SQL text, for "schema per tenant": text written for the template schema
-- (rendered DDL, SQL steps, pg_get_functiondef of a routine, pg_get_viewdef of a view) is
-- re-targeted to each tenant's schema. _schema_template() replaces, once per text, every code
-- reference to the template schema by chr(1); per tenant the caller does
-- replace(text, chr(1), quote_ident(tenant)).
--
-- Speed: no loop per character. The lexer is one regular expression run over the whole text
-- (regexp_matches 'g') that returns strings, comments, quoted names and runs of other code as
-- tokens; a loop runs only where a dollar quote opens or a block comment nests, which the
-- expression cannot see whole. Every token starts where the one before ended (the last branch
-- takes any character) and depends on nothing before it, so after a dollar quote or a nested
-- comment the tokens already found stay valid from the first one that starts where it ends; only
-- when none does is the rest lexed again. References are then found by regular expressions on
-- the code with every string and comment replaced by one placeholder character.
--
-- A code reference to a schema is an identifier token (quoted or not) that is
--  (a) followed, after optional white space and comments, by "." and not itself preceded by "."
--      (the first part of a qualified name: s.t, s . "T", s.t%ROWTYPE, s.f(1)); or
--  (b) a member of the list after the keyword SCHEMA (not preceded by "."), optionally after
--      IF EXISTS / IF NOT EXISTS: CREATE SCHEMA IF NOT EXISTS s, GRANT USAGE ON SCHEMA a, s TO r,
--      ALL TABLES IN SCHEMA s; CREATE SCHEMA AUTHORIZATION r names no schema.
-- Single-quoted strings (E'', U&'', B'', X'') and comments are not code; dollar-quoted strings
-- are (routine bodies, DO blocks) and are read with the same rules, recursively.

CREATE OR REPLACE FUNCTION admmgt._sql_is_dollar(p_tok text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: whether a token of _sql_tokens is a dollar-quoted string (it starts with $tag$, the tag empty or a name that does not start with a digit) */
SELECT p_tok ~ '^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$';
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_tokens(p_sql text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: SQL text cut into tokens whose concatenation is the text: comments (block comments nest), strings, quoted names, dollar-quoted strings (whole) and runs of other code */
DECLARE
    -- One alternation of deterministic branches: the longest match at a position (the rule for
    -- a regular expression with a top-level |) is the token the server's lexer reads there. A
    -- dollar quote's opening tag and a block comment up to its first */ are tokens here; the
    -- loop below finds where they really end. E'' only where the E does not end a longer name;
    -- $ in code only within a name or before a digit ($1); */ in code is a token of its own,
    -- so that one ends where a nested comment ends.
    v_re constant text :=
           '--[^\n\r]*'
        || '|/\*(?:[^*]|\*+[^*/])*(?:\*+/)?'
        || '|(?<![A-Za-z0-9_$\u0080-\uffff])[Ee]''(?:[^''\\]|''''|\\.)*''?'
        || '|''(?:[^'']|'''')*''?'
        || '|"(?:[^"]|"")*"?'
        || '|(?<![A-Za-z0-9_$\u0080-\uffff])\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$'
        || '|(?:[^-/''"$Ee*]|[Ee](?!'')|-(?!-)|/(?!\*)|\*(?!/)|(?<=[A-Za-z0-9_\u0080-\uffff])\$|\$(?=[0-9]))+'
        || '|\*/'
        || '|.';
    v_out text[] := '{}'::text[];
    v_rest text := p_sql;
    v_len int;
    v_tok text[];
    v_pos int[];
    v_odd int[];
    -- The tokens from..to of this pass that are one token, and its text.
    v_from int[];
    v_to int[];
    v_whole text[];
    v_i int;
    v_d int;
    v_start int;
    v_end int;
    v_tag text;
    v_at int;
    v_open int;
    v_close int;
    v_depth int;
    v_stop int;
    v_span int;
    v_local text;
    v_j int;
BEGIN
    -- A value read from a table may be compressed: work on a plain copy.
    v_rest := v_rest || '';
    LOOP
        v_len := length(v_rest);
        -- odd: a dollar quote's opening tag, or a block comment that does not end at its first
        -- */ (it nests) or never ends.
        SELECT array_agg(s.tok ORDER BY s.n), array_agg(s.pos ORDER BY s.n),
               array_agg(s.n::int ORDER BY s.n) FILTER (WHERE s.odd)
          INTO v_tok, v_pos, v_odd
          FROM (SELECT r.m[1] AS tok, r.n,
                       (sum(length(r.m[1])) OVER (ORDER BY r.n) - length(r.m[1]) + 1)::int AS pos,
                       (left(r.m[1], 1) = '$' AND admmgt._sql_is_dollar(r.m[1]))
                       OR (starts_with(r.m[1], '/*')
                           AND (length(r.m[1]) < 4 OR right(r.m[1], 2) <> '*/'
                                OR strpos(substr(r.m[1], 3), '/*') > 0)) AS odd
                  FROM regexp_matches(v_rest, v_re, 'g') WITH ORDINALITY AS r(m, n)) s;
        IF v_tok IS NULL THEN
            RETURN v_out;
        END IF;
        v_from := '{}'::int[];
        v_to := '{}'::int[];
        v_whole := '{}'::text[];
        v_i := 1;
        v_stop := NULL;
        FOREACH v_d IN ARRAY coalesce(v_odd, '{}'::int[]) LOOP
            CONTINUE WHEN v_d < v_i;
            v_start := v_pos[v_d];
            IF left(v_tok[v_d], 1) = '$' THEN
                -- $tag$ ... $tag$: nothing inside ends it but the same tag. Most often it is a
                -- token of its own further on, with no tag in the text before it.
                v_tag := v_tok[v_d];
                v_j := array_position(v_tok, v_tag, v_d + 1);
                IF v_j IS NOT NULL THEN
                    v_local := array_to_string(v_tok[v_d + 1:v_j - 1], '');
                    v_at := strpos(v_local, v_tag);
                    -- A body whose tokens hold no tag, no dollar quote and no nested comment
                    -- is already lexed as code by this pass: its tags stay tokens of their own
                    -- (kind t of _sql_scan), so the body is not read a second time.
                    IF v_at = 0 AND (SELECT min(o) FROM unnest(v_odd) AS o WHERE o > v_d) = v_j THEN
                        v_i := v_j + 1;
                        CONTINUE;
                    END IF;
                    v_end := CASE WHEN v_at = 0 THEN v_pos[v_j] + length(v_tag) - 1
                                  ELSE v_start + length(v_tag) + v_at + length(v_tag) - 2 END;
                ELSE
                    v_at := strpos(substr(v_rest, v_start + length(v_tag)), v_tag);
                    v_end := CASE WHEN v_at = 0 THEN v_len
                                  ELSE v_start + length(v_tag) + v_at + length(v_tag) - 2 END;
                END IF;
            ELSE
                -- Block comments nest: count /* and */ from the opening one on, in the text
                -- of the tokens that follow (as many as it takes), not in the whole rest.
                v_span := 16;
                LOOP
                    v_local := array_to_string(v_tok[v_d:v_d + v_span], '');
                    v_depth := 1;
                    v_at := 3;
                    v_end := NULL;
                    LOOP
                        v_close := strpos(substr(v_local, v_at), '*/');
                        EXIT WHEN v_close = 0;
                        v_open := strpos(substr(v_local, v_at), '/*');
                        IF v_open > 0 AND v_open < v_close THEN
                            v_depth := v_depth + 1;
                            v_at := v_at + v_open + 1;
                        ELSE
                            v_depth := v_depth - 1;
                            v_at := v_at + v_close + 1;
                            IF v_depth = 0 THEN
                                v_end := v_start + v_at - 2;
                                EXIT;
                            END IF;
                        END IF;
                    END LOOP;
                    EXIT WHEN v_end IS NOT NULL;
                    IF v_d + v_span >= cardinality(v_tok) THEN
                        v_end := v_len;
                        EXIT;
                    END IF;
                    v_span := v_span * 4;
                END LOOP;
            END IF;
            v_i := CASE WHEN v_end >= v_len THEN cardinality(v_tok) + 1
                        ELSE array_position(v_pos, v_end + 1, v_d + 1) END;
            v_from := v_from || v_d;
            v_to := v_to || coalesce(v_i - 1, cardinality(v_tok));
            -- (substr() deep into a long text is slow: the tokens make up the same text.)
            v_whole := v_whole || CASE WHEN v_i IS NOT NULL THEN array_to_string(v_tok[v_d:v_i - 1], '')
                                       ELSE substr(v_rest, v_start, v_end - v_start + 1) END;
            IF v_i IS NULL THEN
                -- No token found starts where this one ends: the rest is lexed again.
                v_stop := v_end;
                EXIT;
            END IF;
        END LOOP;
        -- This pass's tokens, each run from..to replaced by its one token.
        SELECT v_out || coalesce(array_agg(x.tok ORDER BY x.n, x.k DESC), '{}')
          INTO v_out
          FROM (SELECT y.n, y.k, y.tok, y.upto, max(y.upto) OVER (ORDER BY y.n, y.k DESC) AS reach
                  FROM (SELECT t.n::int AS n, 0 AS k, t.tok, NULL::int AS upto
                          FROM unnest(v_tok) WITH ORDINALITY AS t(tok, n)
                        UNION ALL
                        SELECT r.f, 1, r.w, r.t FROM unnest(v_from, v_to, v_whole) AS r(f, t, w)) y) x
         WHERE x.k = 1 OR x.reach IS NULL OR x.reach < x.n;
        IF v_stop IS NULL OR v_stop >= v_len THEN
            RETURN v_out;
        END IF;
        v_rest := substr(v_rest, v_stop + 1);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_scan(p_sql text)
RETURNS TABLE (n int, tok text, kind text)
LANGUAGE sql IMMUTABLE STRICT
ROWS 200
SET search_path FROM CURRENT
AS $$
/* purpose: the tokens of SQL text with their kind: c comment, s string, q quoted name, d dollar-quoted string, t the tag that opens or closes a dollar-quoted body whose tokens follow, x other code */
SELECT u.n::int, u.tok,
       CASE
           WHEN left(u.tok, 1) = '''' THEN 's'
           WHEN left(u.tok, 1) IN ('E', 'e') AND substr(u.tok, 2, 1) = '''' THEN 's'
           WHEN left(u.tok, 1) = '"' THEN 'q'
           WHEN starts_with(u.tok, '--') OR starts_with(u.tok, '/*') THEN 'c'
           WHEN left(u.tok, 1) = '$' AND u.tok ~ '^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?[$]$' THEN 't'
           WHEN left(u.tok, 1) = '$' AND admmgt._sql_is_dollar(u.tok) THEN 'd'
           ELSE 'x'
       END
  FROM unnest(admmgt._sql_tokens(p_sql)) WITH ORDINALITY AS u(tok, n);
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_dollar_parts(p_tok text)
RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: a dollar-quoted string cut into its opening tag, its text and its closing tag (empty when it never ends) */
SELECT CASE WHEN length(p_tok) >= 2 * length(v.tag) AND right(p_tok, length(v.tag)) = v.tag
            THEN ARRAY[v.tag, substr(p_tok, length(v.tag) + 1, length(p_tok) - 2 * length(v.tag)), v.tag]
            ELSE ARRAY[v.tag, substr(p_tok, length(v.tag) + 1), ''] END
  FROM (SELECT substring(p_tok FROM '^\$[^$]*\$') AS tag) v;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_ci(p_name text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: a regular expression that matches a name without quotes whatever the case of its ASCII letters (the server folds only those) */
SELECT string_agg(CASE WHEN s.c ~ '^[A-Za-z]$' THEN '[' || upper(s.c) || lower(s.c) || ']'
                       WHEN s.c ~ '^[0-9_]$' OR ascii(s.c) > 127 THEN s.c
                       ELSE '\' || s.c END, '' ORDER BY s.i)
  FROM regexp_split_to_table(p_name, '') WITH ORDINALITY AS s(c, i);
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_rewrite(p_sql text, p_schema text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: p_sql with every code reference to schema p_schema replaced by chr(1), dollar-quoted strings included (the work of _schema_template, without its check) */
DECLARE
    -- In the masked code a comment or a dollar quote's tag is chr(3), a string, dollar-quoted
    -- string or other quoted name chr(2). W: white space and comments; N: a name in a list after SCHEMA.
    c_w constant text := '(?:\s|\x03)*';
    c_space constant text := E' \t\n\r\f\v' || chr(3);
    c_n constant text := '(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*|"(?:[^"]|"")*"|[\x01\x02])';
    v_quoted text := '"' || replace(p_schema, '"', '""') || '"';
    v_target text;
    v_masked text;
    v_saved text[];
    v_parts text[];
    v_found text[];
    v_out text[];
    v_before text := '';
BEGIN
    IF strpos(lower(p_sql), lower(p_schema)) = 0 THEN
        RETURN p_sql;
    END IF;
    -- Code as it is; each comment, string, dollar-quoted string (rewritten first) and quoted name
    -- other than the schema's replaced by a placeholder and kept aside in order.
    SELECT string_agg(CASE WHEN s.kind = 'x' OR (s.kind = 'q' AND s.tok = v_quoted) THEN s.tok
                           WHEN s.kind IN ('c', 't') THEN chr(3) ELSE chr(2) END, '' ORDER BY s.n),
           array_agg(CASE WHEN s.kind = 'd' AND strpos(lower(s.tok), lower(p_schema)) > 0
                          THEN (SELECT d[1] || admmgt._schema_rewrite(d[2], p_schema) || d[3]
                                  FROM admmgt._sql_dollar_parts(s.tok) AS d)
                          ELSE s.tok END ORDER BY s.n)
               FILTER (WHERE s.kind IN ('c', 't', 's', 'd') OR (s.kind = 'q' AND s.tok <> v_quoted))
      INTO v_masked, v_saved
      FROM admmgt._sql_scan(p_sql) AS s;
    IF length(v_masked) - length(translate(v_masked, chr(2) || chr(3), '')) <> coalesce(cardinality(v_saved), 0) THEN
        RAISE EXCEPTION 'admmgt: SQL text for schema % holds chr(2) or chr(3) outside strings and comments', p_schema
            USING ERRCODE = 'internal_error', HINT = 'These characters cannot be part of SQL code: remove them.';
    END IF;
    -- The schema's name without quotes in any case, or quoted exactly ("UniTemplate" is another name).
    v_target := '(?<![A-Za-z0-9_$\u0080-\uffff])' || admmgt._sql_ci(p_schema) || '(?![A-Za-z0-9_$\u0080-\uffff])|'
                || regexp_replace(v_quoted, '([^A-Za-z0-9_])', '\\\1', 'g');
    v_parts := regexp_split_to_array(v_masked, v_target);
    IF cardinality(v_parts) > 1 THEN
        v_found := ARRAY(SELECT r.m[1] FROM regexp_matches(v_masked, '(' || v_target || ')', 'g') AS r(m));
        v_out := ARRAY[v_parts[1]];
        FOR v_i IN 1 .. cardinality(v_found) LOOP
            -- The 300 characters before this mention, and what follows it up to the next one.
            v_before := right(v_before || v_parts[v_i], 300);
            -- (a) a qualifier: "." follows, none comes before; (b) listed after SCHEMA.
            IF (left(ltrim(v_parts[v_i + 1], c_space), 1) = '.' AND right(rtrim(v_before, c_space), 1) IS DISTINCT FROM '.')
               OR (strpos(lower(v_before), 'schema') > 0
                   AND v_before ~ ('(?:^|[^A-Za-z0-9_$\u0080-\uffff."])[Ss][Cc][Hh][Ee][Mm][Aa]' || c_w
                                   || '(?:[Ii][Ff]' || c_w || '(?:[Nn][Oo][Tt]' || c_w || ')?[Ee][Xx][Ii][Ss][Tt][Ss]' || c_w || ')?'
                                   || '(?:' || c_n || c_w || ',' || c_w || ')*$')) THEN
                v_out := v_out || chr(1);
            ELSE
                v_out := v_out || v_found[v_i];
            END IF;
            v_out := v_out || v_parts[v_i + 1];
            v_before := v_before || v_found[v_i];
        END LOOP;
        v_masked := array_to_string(v_out, '');
    END IF;
    -- The strings and comments back in their places.
    RETURN (SELECT string_agg(p.part || coalesce(v_saved[p.i], ''), '' ORDER BY p.i)
              FROM unnest(regexp_split_to_array(v_masked, '[\x02\x03]')) WITH ORDINALITY AS p(part, i));
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_template(p_sql text, p_schema text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: SQL text written for template schema p_schema with every code reference to that schema (a qualifier, or a name after SCHEMA) replaced by chr(1), for replace(text, chr(1), quote_ident(tenant)) per tenant; strings and comments are left as they are */
BEGIN
    IF strpos(p_sql, chr(1)) > 0 THEN
        RAISE EXCEPTION 'admmgt: SQL text for schema % already holds the character chr(1)', p_schema
            USING ERRCODE = 'internal_error',
                  HINT = 'chr(1) marks the template schema''s references: the text must not hold it itself.';
    END IF;
    RETURN coalesce(admmgt._schema_rewrite(p_sql, p_schema), '');
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_excerpt(p_tok text, p_schema text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: a string literal cut to about 60 characters around its first mention of p_schema */
SELECT CASE WHEN length(p_tok) <= 60 THEN p_tok
            ELSE CASE WHEN v.f > 1 THEN '…' ELSE '' END || substr(p_tok, v.f, 60)
                 || CASE WHEN v.f + 60 <= length(p_tok) THEN '…' ELSE '' END END
  FROM (SELECT greatest(1, least(strpos(lower(p_tok), lower(p_schema)) - 20, length(p_tok) - 59)) AS f) v;
$$;

CREATE OR REPLACE FUNCTION admmgt._schema_kept(p_sql text, p_schema text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: the single-quoted strings of SQL text (in dollar-quoted bodies too, not in comments) that mention schema p_schema as a word, as excerpts: references _schema_template cannot rewrite (dynamic SQL, to_regclass('s.t')) */
DECLARE
    v_word text := '\m' || regexp_replace(p_schema, '([^A-Za-z0-9_])', '\\\1', 'g') || '\M';
    v_out text[] := '{}'::text[];
    v_tok record;
BEGIN
    IF strpos(lower(p_sql), lower(p_schema)) = 0 THEN
        RETURN v_out;
    END IF;
    FOR v_tok IN SELECT s.tok, s.kind FROM admmgt._sql_scan(p_sql) AS s
                  WHERE s.kind IN ('s', 'd') AND strpos(lower(s.tok), lower(p_schema)) > 0
                  ORDER BY s.n LOOP
        IF v_tok.kind = 's' THEN
            IF v_tok.tok ~* v_word THEN
                v_out := v_out || admmgt._schema_excerpt(v_tok.tok, p_schema);
            END IF;
        ELSE
            v_out := v_out || admmgt._schema_kept((admmgt._sql_dollar_parts(v_tok.tok))[2], p_schema);
        END IF;
    END LOOP;
    RETURN v_out;
END;
$$;

CREATE OR REPLACE FUNCTION admmgt._sql_name(p_name text, p_tok text[])
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: a name of the masked code of _code_schemas as the server reads it: without quotes folded (ASCII letters only), chr(4) k chr(4) the quoted name of token k */
SELECT CASE WHEN left(p_name, 1) = chr(4)
            THEN (SELECT replace(substr(v.q, 2, length(v.q) - 2), '""', '"') FROM (SELECT p_tok[trim(p_name, chr(4))::int] AS q) v)
            ELSE translate(p_name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END;
$$;

CREATE OR REPLACE FUNCTION admmgt._code_schemas(p_sql text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
/* purpose: the distinct names (folded) that SQL text uses in code as a schema (a qualifier, or a name after SCHEMA; dollar-quoted bodies included), in order of first appearance; a qualifier may also be a table or an alias */
DECLARE
    -- In the masked code a comment or a tag is chr(3), a string chr(2), quoted name number k
    -- chr(4) k chr(4) and dollar-quoted string number k chr(5) k chr(5).
    c_w constant text := '(?:\s|\x03)*';
    c_n constant text := '(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*|\x04[0-9]+\x04)';
    v_tok text[];
    v_masked text;
    v_out text[] := '{}'::text[];
    v_m text[];
    v_names text[];
    v_name text;
BEGIN
    SELECT array_agg(s.tok ORDER BY s.n),
           string_agg(CASE s.kind WHEN 'x' THEN s.tok WHEN 'c' THEN chr(3) WHEN 't' THEN chr(3) WHEN 's' THEN chr(2)
                                  WHEN 'q' THEN chr(4) || s.n || chr(4) ELSE chr(5) || s.n || chr(5) END, '' ORDER BY s.n)
      INTO v_tok, v_masked
      FROM admmgt._sql_scan(p_sql) AS s;
    IF v_masked IS NULL THEN
        RETURN v_out;
    END IF;
    -- A qualified name a.b.c is one match, so that b is not taken for a schema.
    FOR v_m IN SELECT r.m FROM regexp_matches(v_masked,
                   '(' || c_n || ')' || c_w || '\.(?:' || c_w || c_n || c_w || '\.)*'
                   || '|(?:^|[^A-Za-z0-9_$\u0080-\uffff."\x04])[Ss][Cc][Hh][Ee][Mm][Aa](?![A-Za-z0-9_$\u0080-\uffff])' || c_w
                   || '(?:[Ii][Ff]' || c_w || '(?:[Nn][Oo][Tt]' || c_w || ')?[Ee][Xx][Ii][Ss][Tt][Ss]' || c_w || ')?'
                   || '((?:' || c_n || c_w || ',' || c_w || ')*' || c_n || ')'
                   || '|\x05([0-9]+)\x05', 'g') AS r(m) LOOP
        IF v_m[3] IS NOT NULL THEN
            v_names := admmgt._code_schemas((admmgt._sql_dollar_parts(v_tok[v_m[3]::int]))[2]);
        ELSIF v_m[1] IS NOT NULL THEN
            v_names := ARRAY[CASE WHEN left(v_m[1], 1) = chr(4) THEN admmgt._sql_name(v_m[1], v_tok)
                                  ELSE translate(v_m[1], 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END];
        ELSE
            SELECT array_agg(admmgt._sql_name(x.m[1], v_tok) ORDER BY x.i) INTO v_names
              FROM regexp_matches(v_m[2], c_n, 'g') WITH ORDINALITY AS x(m, i)
             WHERE lower(x.m[1]) <> 'authorization';
        END IF;
        FOREACH v_name IN ARRAY coalesce(v_names, '{}') LOOP
            IF NOT v_name = ANY (v_out) THEN
                v_out := v_out || v_name;
            END IF;
        END LOOP;
    END LOOP;
    RETURN v_out;
END;
$$;
