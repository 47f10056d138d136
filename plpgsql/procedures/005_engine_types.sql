-- The engine's types. They live on the replaceable side: every install drops and re-creates them
-- with the routines (000), so changing the executor never needs a migration.

-- One unit of work for the executor: statements for one target. kind names the work (script,
-- rollback, create, adopt, grant, partitions, retention, retention_report, routines, fingerprint
-- (for partitions, routines and fingerprint scriptid is the target's version), drop: offboarding,
-- 165_drop_tenant; take: a pool database renamed to a new tenant, run in the admin session itself,
-- 102_pool; worker: a worker session's CALL on the admin database, 072_workers, never
-- booked); the record layer hands
-- a finished item to the booking hook of its kind, admmgt._book_<kind>, which lives in the file of
-- the operation that makes such items. A script that runs in several parts (a step outside a
-- transaction, or one that needs a transaction of its own) is several items of one target in a
-- row: part says which part, step what the item does for it (NULL: the whole script at once), and
-- sources names the row each statement comes from (NULL for admmgt's own statements).
CREATE TYPE admmgt.work_item AS (
    kind      text,
    target_id bigint,
    dbname    text,
    server    text,
    conn_db   text,
    scriptid  integer,
    stmts     text[],
    atomic    boolean,
    part      integer,
    step      text,
    sources   text[],
    nsp       text     -- a schema target: its schema (dbname names it too; conn_db is the database that holds it)
);

-- What the executor knows about one sent batch.
CREATE TYPE admmgt.exec_result AS (
    done         boolean,
    ok           boolean,
    broken       boolean,
    results      integer,
    outputs      text[],
    sqlstate     text,
    message      text,
    detail       text,
    hint         text,
    failed_index integer,
    started_at   timestamptz,
    finished_at  timestamptz
);

-- What the admin side keeps of one finished work item: the record layer fills in the defaults
-- from the item and its result, and the item's booking hook may change them.
CREATE TYPE admmgt.booking AS (
    ok        boolean,
    outcome   text,    -- script_log.outcome: ok, error, or what the hook says (already applied)
    scriptid  integer, -- the script the log rows are about, if any
    lines     text[],  -- one script_log row each (a script's hook makes its statements one line)
    statement text,    -- the statement that failed
    sqlstate  text,
    message   text,
    detail    text,
    hint      text,
    skip_part boolean, -- the hook found the item's part done already: the target goes on after it
    expand    text[],  -- statements the target runs next, one at a time outside a transaction, before its next item
    version   integer  -- the script version the target is at now (vendor_db_settings.scriptversion); NULL: unchanged
);

-- An error caught in a call frame, to be raised again with its own SQLSTATE once the frame is closed.
CREATE TYPE admmgt.error_state AS (
    sqlstate text,
    message  text,
    detail   text,
    hint     text
);

CREATE OR REPLACE FUNCTION admmgt._item(p_kind text, p_target_id bigint, p_dbname text, p_server text, p_conn_db text,
                                        p_scriptid int, p_stmts text[], p_atomic boolean,
                                        p_part int DEFAULT NULL, p_step text DEFAULT NULL, p_sources text[] DEFAULT NULL,
                                        p_nsp text DEFAULT NULL)
RETURNS admmgt.work_item
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
/* purpose: build a work item by name: the one place that knows the order of its attributes */
SELECT ROW(p_kind, p_target_id, p_dbname, p_server, p_conn_db, p_scriptid, p_stmts, p_atomic, p_part, p_step, p_sources, p_nsp)::admmgt.work_item;
$$;
