-- The weekly vocabulary: plain SQL steps, indexes, column and table changes, constraints, views and
-- triggers as rows; applied scripts frozen; steps outside a transaction made exactly-once.
-- Enumerations are CHECK constraints, so a typo is refused when the row is written; names and SQL
-- fragments are checked when the script is rendered, before any target is touched.

-- Plain SQL. txmode 'script': the body (one statement or several) runs inside the script's
-- transaction, after its typed rows, in seq order. txmode 'none': exactly one statement, run alone
-- outside any transaction (CREATE INDEX CONCURRENTLY, ALTER TYPE ... ADD VALUE, VACUUM).
CREATE TABLE admmgt.script_sql (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int NOT NULL,
    seq          int NOT NULL,
    body         text NOT NULL,
    txmode       text NOT NULL DEFAULT 'script',
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_sql_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_sql_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id),
    CONSTRAINT script_sql_seq UNIQUE (scriptid, seq),
    CONSTRAINT script_sql_txmode_check CHECK (txmode IN ('script', 'none'))
);
COMMENT ON TABLE admmgt.script_sql IS
    'Plain SQL steps of a script, run after its typed rows in seq order. txmode script: inside the script''s transaction; none: one statement alone, outside any transaction.';

CREATE TABLE admmgt.script_indexes (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int NOT NULL,
    schemaname   varchar(128) NOT NULL,
    tablename    varchar(128) NOT NULL,
    indexname    varchar(63) NOT NULL,
    columns      text NOT NULL,            -- column names, each optionally ASC/DESC and NULLS FIRST/LAST, comma separated
    include      text,                     -- column names for INCLUDE, comma separated
    isunique     integer NOT NULL DEFAULT 0,
    whereclause  text,                     -- a partial index's predicate: one SQL fragment
    method       text NOT NULL DEFAULT 'btree',
    concurrent   integer NOT NULL DEFAULT 0,      -- 1: built without blocking writes (CONCURRENTLY; on a partitioned table partition by partition)
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_indexes_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_indexes_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id),
    CONSTRAINT script_indexes_method_check CHECK (method IN ('btree', 'hash', 'gist', 'spgist', 'gin', 'brin')),
    CONSTRAINT script_indexes_flags_check CHECK (isunique IN (0, 1) AND concurrent IN (0, 1))
);
CREATE INDEX script_indexes_scriptid ON admmgt.script_indexes (scriptid);

-- One change to an existing column. action: type (newvalue: the data type; usingexpr: a USING
-- expression), set_not_null, drop_not_null, set_default (newvalue: the default expression),
-- drop_default, rename (newvalue: the new name), drop (confirm must be true).
CREATE TABLE admmgt.script_column_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int NOT NULL,
    schemaname   varchar(128) NOT NULL,
    tablename    varchar(128) NOT NULL,
    columnname   varchar(128) NOT NULL,
    action       text NOT NULL,
    newvalue     text,
    usingexpr    text,
    confirm      boolean NOT NULL DEFAULT false,
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_column_changes_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_column_changes_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id),
    CONSTRAINT script_column_changes_action_check
        CHECK (action IN ('type', 'set_not_null', 'drop_not_null', 'set_default', 'drop_default', 'rename', 'drop'))
);
CREATE INDEX script_column_changes_scriptid ON admmgt.script_column_changes (scriptid);

-- RENAME (newname) or DROP (confirm must be true) of a whole table.
CREATE TABLE admmgt.script_table_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int NOT NULL,
    schemaname   varchar(128) NOT NULL,
    tablename    varchar(128) NOT NULL,
    action       text NOT NULL,
    newname      varchar(128),
    confirm      boolean NOT NULL DEFAULT false,
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_table_changes_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_table_changes_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id),
    CONSTRAINT script_table_changes_action_check CHECK (action IN ('rename', 'drop'))
);
CREATE INDEX script_table_changes_scriptid ON admmgt.script_table_changes (scriptid);

-- UNIQUE (columns) or CHECK (checkexpr), each optionally NOT VALID; validate: VALIDATE CONSTRAINT
-- of one made NOT VALID earlier (foreign keys included).
CREATE TABLE admmgt.script_constraints (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    scriptid       int NOT NULL,
    schemaname     varchar(128) NOT NULL,
    tablename      varchar(128) NOT NULL,
    constraintname varchar(63) NOT NULL,
    kind           text NOT NULL,
    columns        text,
    checkexpr      text,
    novalidate     integer NOT NULL DEFAULT 0,
    status         integer DEFAULT 0,
    created_date   timestamp DEFAULT current_timestamp,
    CONSTRAINT script_constraints_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_constraints_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id),
    CONSTRAINT script_constraints_kind_check CHECK (kind IN ('unique', 'check', 'validate')),
    CONSTRAINT script_constraints_novalidate_check CHECK (novalidate IN (0, 1))
);
CREATE INDEX script_constraints_scriptid ON admmgt.script_constraints (scriptid);

-- A view (plain or materialized): create, replace (CREATE OR REPLACE; a materialized view is
-- dropped and created again) or drop (confirm must be true).
CREATE TABLE admmgt.script_views (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int NOT NULL,
    schemaname   varchar(128) NOT NULL,
    viewname     varchar(128) NOT NULL,
    query        text,
    materialized integer NOT NULL DEFAULT 0,
    action       text NOT NULL DEFAULT 'create',
    confirm      boolean NOT NULL DEFAULT false,
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_views_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_views_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id),
    CONSTRAINT script_views_action_check CHECK (action IN ('create', 'replace', 'drop')),
    CONSTRAINT script_views_materialized_check CHECK (materialized IN (0, 1))
);
CREATE INDEX script_views_scriptid ON admmgt.script_views (scriptid);

-- A trigger, with its trigger function when functionbody is given (created in the trigger's
-- schema, or replaced); action drop removes the trigger.
CREATE TABLE admmgt.script_triggers (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int NOT NULL,
    schemaname   varchar(128) NOT NULL,
    tablename    varchar(128) NOT NULL,
    triggername  varchar(63) NOT NULL,
    timing       text NOT NULL DEFAULT 'AFTER',
    events       text NOT NULL DEFAULT 'INSERT',  -- INSERT, UPDATE [OF col, ...], DELETE, TRUNCATE joined by OR
    foreach      text NOT NULL DEFAULT 'ROW',
    whenclause   text,
    functionname varchar(128) NOT NULL,           -- in the trigger's schema
    functionbody text,                            -- PL/pgSQL body of the trigger function
    action       text NOT NULL DEFAULT 'create',
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_triggers_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_triggers_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id),
    CONSTRAINT script_triggers_timing_check CHECK (timing IN ('BEFORE', 'AFTER', 'INSTEAD OF')),
    CONSTRAINT script_triggers_foreach_check CHECK (foreach IN ('ROW', 'STATEMENT')),
    CONSTRAINT script_triggers_action_check CHECK (action IN ('create', 'replace', 'drop'))
);
CREATE INDEX script_triggers_scriptid ON admmgt.script_triggers (scriptid);

-- A script's source file, when it was registered by `admmgt script add` / `script sync`.
ALTER TABLE admmgt.scripts ADD COLUMN source_file text;
ALTER TABLE admmgt.scripts ADD COLUMN source_checksum text;
-- Frozen when the template first applies it: what every target runs from then on.
ALTER TABLE admmgt.scripts ADD COLUMN frozen_at timestamptz;
ALTER TABLE admmgt.scripts ADD COLUMN rows_checksum text;
COMMENT ON COLUMN admmgt.scripts.rows_checksum IS
    'md5 of the script''s rows when it was frozen; admmgt.script_drift compares it with the rows as they are';

-- The frozen batch of a script, in parts: a transactional part (txmode script) runs as one
-- transaction; a part with txmode none is one statement run alone. sources names the row of
-- each statement and destructive says which ones drop data; index_def describes the index a
-- CONCURRENTLY part builds (schema, table, name, unique, the definition after the table name),
-- which each target builds on its own partitions.
CREATE TABLE admmgt.script_parts (
    scriptid     int NOT NULL REFERENCES admmgt.scripts (id) ON DELETE CASCADE,
    part         int NOT NULL,
    txmode       text NOT NULL,
    stmts        text[] NOT NULL,
    sources      text[] NOT NULL,
    index_def    jsonb,
    destructive  boolean[] NOT NULL,
    CONSTRAINT script_parts_pkey PRIMARY KEY (scriptid, part),
    CONSTRAINT script_parts_txmode_check CHECK (txmode IN ('script', 'none'))
);

-- What the admin side saw of the last attempt of a part outside a transaction on a target:
-- token is the attempt's mark in the target's ledger; state started (its end was not seen),
-- ran, failed. A rerun uses it to decide whether a started part ran.
CREATE TABLE admmgt.part_attempts (
    target_id  bigint NOT NULL REFERENCES admmgt.vendor_db_settings (id) ON DELETE CASCADE,
    scriptid   int NOT NULL,
    part       int NOT NULL,
    token      text NOT NULL,
    state      text NOT NULL,
    run_id     bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT part_attempts_pkey PRIMARY KEY (target_id, scriptid, part),
    CONSTRAINT part_attempts_state_check CHECK (state IN ('started', 'ran', 'failed'))
);
