-- Record layer: what the admin side keeps of each finished work item. Runs in the caller's
-- transaction, which the run loop commits after every target, so a killed run loses nothing
-- that a target committed (and the tenant-side ledger covers the window in between).

CREATE OR REPLACE FUNCTION admmgt._log(p_run_id bigint, p_op text, p_item admmgt.work_item, p_stmts text[],
                                       p_outcome text, p_state admmgt.exec_result)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $$
/* purpose: one script_log row per statement, all with the same outcome */
INSERT INTO admmgt.script_log (scriptid, dbname, commstat, run_id, operation, outcome, sqlstate, message, elapsed_ms, server)
SELECT CASE WHEN p_op = 'apply' THEN p_item.scriptid END, p_item.dbname, s, p_run_id, p_op, p_outcome,
       CASE WHEN p_outcome = 'error' THEN p_state.sqlstate END,
       CASE WHEN p_outcome = 'error' THEN p_state.message END,
       round(extract(epoch FROM p_state.finished_at - p_state.started_at)::numeric * 1000, 3), coalesce(p_item.server, 'local')
  FROM unnest(p_stmts) AS s;
$$;

CREATE OR REPLACE FUNCTION admmgt._login_role_sql(p_role text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a block run on a tenant's server that makes its login role there when missing, and refuses a role of that name that is privileged on that server */
SELECT format('DO %L', format($b$BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = %1$L
                  AND (r.rolsuper OR r.rolcreatedb OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls)) THEN
        RAISE EXCEPTION 'admmgt: login role %% is privileged on this server', %1$L
            USING ERRCODE = 'reserved_name',
                  HINT = 'A tenant login role must be an ordinary role of its own: no superuser, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = %1$L) THEN
        CREATE ROLE %2$I LOGIN;
    END IF;
END$b$, p_role, p_role));
$$;

CREATE OR REPLACE FUNCTION admmgt._public_connect_check_sql(p_dbname text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: a block run on a database's server after the REVOKE: a REVOKE by a role that neither owns the database nor holds the grant option only warns, so make sure it took */
SELECT format('DO %L', format($b$BEGIN
    IF pg_catalog.has_database_privilege('public', %1$L, 'CONNECT') THEN
        RAISE EXCEPTION 'admmgt: PUBLIC may still connect to database %%', %1$L
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The REVOKE had no effect: the role admmgt connects as on this server does not own the database. Connect as its owner (the user mapping), or revoke it yourself and call create_database() again.';
    END IF;
END$b$, p_dbname));
$$;

CREATE OR REPLACE FUNCTION admmgt._access_stmts(p_target_id bigint, p_dbname text)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
/* purpose: who may connect to a new database, run on its own server before it counts as created: not PUBLIC (tenants must not reach each other's databases); its login role, if it has one */
SELECT ARRAY[format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', p_dbname), admmgt._public_connect_check_sql(p_dbname)]
    || CASE WHEN r.role IS NULL THEN '{}'::text[]
            ELSE ARRAY[admmgt._login_role_sql(r.role), format('GRANT CONNECT ON DATABASE %I TO %I', p_dbname, r.role)] END
  FROM (SELECT lower(btrim(v.loginrole)) AS role FROM admmgt.vendor_db_settings v WHERE v.id = p_target_id) r;
$$;

CREATE OR REPLACE FUNCTION admmgt._record(p_op text, p_item admmgt.work_item, p_state admmgt.exec_result, p_run_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: book one finished work item; true when the target may go on with its next item */
DECLARE
    v_failed text := admmgt._failed_statement(p_item, p_state);
    v_ok boolean := p_state.ok;
    v_outcome text := 'ok';
    v_stmts text[] := p_item.stmts;
    v_is_template boolean;
    v_sent int := cardinality(admmgt._batch_prefix(p_item.atomic));
    v_adopted int;
BEGIN
    IF p_state.broken THEN
        -- The connection failed or was lost: say where, with libpq's reason, which dblink keeps in the detail.
        p_state.message := format('server %s, database %s: %s', coalesce(p_item.server, 'local'), p_item.conn_db,
                                  concat_ws(': ', p_state.message, nullif(btrim(p_state.detail), '')));
    END IF;
    IF p_op = 'adopt' AND p_item.step = 'adopt' AND v_ok THEN
        -- The database of a pending tenant exists: a template copy (it has the ledger) or an empty
        -- database is taken over; one holding objects of its own is left alone.
        v_adopted := CASE WHEN p_state.outputs[1] LIKE 'ledger:%' THEN split_part(p_state.outputs[1], ':', 2)::int
                          WHEN p_state.outputs[1] = 'objects:0' THEN 0 END;
        IF v_adopted IS NULL THEN
            v_ok := false;
            p_state.sqlstate := '42P04';
            p_state.message := format('database %s already exists and holds %s objects that did not come from the template',
                                      p_item.dbname, split_part(p_state.outputs[1], ':', 2));
            p_state.hint := 'Drop or rename that database, or give the tenant another name, then call create_database() again.';
            v_failed := 'look into the existing database';
        ELSE
            v_stmts := ARRAY[format('adopted the existing database at version %s', v_adopted)];
        END IF;
    ELSIF p_op = 'apply' AND NOT v_ok AND p_state.sqlstate = '23505' AND v_failed = admmgt._ledger_insert(p_item.scriptid) THEN
        -- The tenant-side ledger already has this script: the admin side had lost track of it.
        v_ok := true;
        v_outcome := 'already applied';
        v_stmts := ARRAY[v_failed];
    ELSIF p_op = 'maintain' AND v_ok THEN
        v_stmts := (SELECT array_agg('created partition ' || n) FROM regexp_split_to_table(nullif(p_state.outputs[v_sent + 1], ''), ' ') n);
        IF p_item.stmts[cardinality(p_item.stmts)] = admmgt._moves_report_sql() THEN
            v_stmts := v_stmts || (SELECT array_agg(format('moved %s rows from the default partition into %s', m[2], m[1]))
                                     FROM regexp_matches(p_state.outputs[v_sent + cardinality(p_item.stmts)], '(\S+) (\d+)', 'g') AS m);
        END IF;
    ELSIF p_op = 'lifecycle' AND v_ok THEN
        -- The block itself logs nothing; its read-back says what it dropped, detached or deleted.
        v_stmts := CASE WHEN p_item.stmts[1] = admmgt._lifecycle_report_sql() THEN
                        (SELECT array_agg(format('%s %s: %s rows', split_part(l, '|', 2), split_part(l, '|', 1), split_part(l, '|', 3)))
                           FROM regexp_split_to_table(nullif(p_state.outputs[1], ''), E'\n') AS l)
                        ELSE '{}'::text[] END;
    ELSIF p_item.step = 'grant' AND v_ok THEN
        -- The blocks only make sure the grants took (and the login role exists): log the grants.
        v_stmts := ARRAY(SELECT x FROM unnest(p_item.stmts) AS x WHERE x NOT LIKE 'DO %');
    ELSIF p_op = 'refresh' AND v_ok THEN
        -- The batch also holds schemas, owners and grants: count the definitions only.
        v_stmts := ARRAY[format('refreshed %s routines',
                                (SELECT count(*) FROM unnest(p_item.stmts) AS s WHERE s LIKE 'CREATE OR REPLACE %'))];
    END IF;

    IF v_ok THEN
        PERFORM admmgt._log(p_run_id, p_op, p_item, v_stmts, v_outcome, p_state);
        IF p_op = 'apply' THEN
            UPDATE admmgt.vendor_db_settings SET scriptversion = p_item.scriptid, modifiedon = current_timestamp
             WHERE id = p_item.target_id;
        ELSIF p_op IN ('create', 'adopt') AND p_item.step = 'grant' THEN
            -- Only now, with PUBLIC's CONNECT revoked on its server, does the database count as created.
            UPDATE admmgt.vendor_db_settings SET status = 2, modifiedon = current_timestamp WHERE id = p_item.target_id;
        ELSIF p_op IN ('create', 'adopt') THEN
            -- The version its copy (or the ledger found in it) has; it stays pending until the grant step.
            UPDATE admmgt.vendor_db_settings SET scriptversion = coalesce(v_adopted, p_item.scriptid), modifiedon = current_timestamp
             WHERE id = p_item.target_id;
        END IF;
    ELSE
        PERFORM admmgt._log(p_run_id, p_op, p_item, ARRAY[coalesce(v_failed, 'connect')], 'error', p_state);
        IF p_op = 'apply' THEN
            SELECT istemplate INTO v_is_template FROM admmgt.vendor_db_settings WHERE id = p_item.target_id;
            -- Only a statement of the script makes it fail; a lost connection is retried next run.
            IF v_is_template AND p_state.failed_index > cardinality(admmgt._batch_prefix(p_item.atomic)) THEN
                UPDATE admmgt.scripts SET status = 3, last_error = format('%s (SQLSTATE %s) at: %s', p_state.message, p_state.sqlstate, v_failed)
                 WHERE id = p_item.scriptid;
            END IF;
        END IF;
    END IF;

    INSERT INTO admmgt.target_results AS r (operation, scriptid, target_id, dbname, ok, sqlstate, message, detail, hint,
                                            statement, run_id, finished_at, elapsed_ms)
    VALUES (p_op, coalesce(CASE WHEN p_op = 'apply' THEN p_item.scriptid END, 0), p_item.target_id, p_item.dbname, v_ok,
            CASE WHEN NOT v_ok THEN p_state.sqlstate END, CASE WHEN NOT v_ok THEN p_state.message END,
            CASE WHEN NOT v_ok THEN p_state.detail END, CASE WHEN NOT v_ok THEN p_state.hint END,
            CASE WHEN NOT v_ok THEN v_failed END, p_run_id, p_state.finished_at,
            round(extract(epoch FROM p_state.finished_at - p_state.started_at)::numeric * 1000, 3))
    ON CONFLICT (operation, scriptid, target_id) DO UPDATE
       SET dbname = EXCLUDED.dbname, ok = EXCLUDED.ok, sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message,
           detail = EXCLUDED.detail, hint = EXCLUDED.hint, statement = EXCLUDED.statement, run_id = EXCLUDED.run_id,
           finished_at = EXCLUDED.finished_at, elapsed_ms = EXCLUDED.elapsed_ms;

    IF NOT v_ok THEN
        RAISE WARNING 'admmgt %: % failed: % (SQLSTATE %)', p_op, admmgt._target_label(p_item), p_state.message, p_state.sqlstate
            USING DETAIL = coalesce('statement: ' || v_failed, 'no statement ran');
    END IF;
    RETURN v_ok;
END;
$$;
