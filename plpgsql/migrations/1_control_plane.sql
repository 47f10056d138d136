-- admmgt control plane, version 1: registry, scripts as rows, log.
-- Column names, defaults and status codes follow the original design so that rows written for the
-- original tool insert unchanged. Added columns all have defaults.

CREATE TABLE admmgt.vendor_db_settings (
    id            bigserial,
    dbname        varchar(128) NOT NULL,
    createdon     timestamp DEFAULT current_timestamp,
    modifiedon    timestamp DEFAULT current_timestamp,
    deleted       boolean DEFAULT false,
    deletedon     timestamp,
    scriptversion int,
    updateflag    boolean DEFAULT true,
    istemplate    boolean DEFAULT false,
    status        int DEFAULT 0,  -- 0 designing, 1 pending creation, 2 created
    CONSTRAINT vendor_db_settings_pkey PRIMARY KEY (id),
    CONSTRAINT vendor_db_settings_status_check CHECK (status IN (0, 1, 2))
);
COMMENT ON TABLE admmgt.vendor_db_settings IS
    'Tenant registry: one row per tenant database and one for the template (istemplate). status: 0 designing, 1 pending creation, 2 created.';

-- Database names are folded to lower case, so two rows that differ only in case are one database.
CREATE UNIQUE INDEX vendor_db_settings_dbname
    ON admmgt.vendor_db_settings (lower(dbname)) WHERE NOT coalesce(deleted, false);
CREATE UNIQUE INDEX vendor_db_settings_one_template
    ON admmgt.vendor_db_settings (istemplate) WHERE istemplate AND NOT coalesce(deleted, false);

CREATE TABLE admmgt.scripts (
    id           int,
    description  varchar(1000),
    status       integer DEFAULT 0,  -- 0 designing, 1 ready, 2 applied, 3 failed
    created_date timestamp DEFAULT current_timestamp,
    applied_at   timestamptz,
    last_error   text,
    CONSTRAINT scripts_pkey PRIMARY KEY (id),
    CONSTRAINT scripts_id_check CHECK (id > 0),
    CONSTRAINT scripts_status_check CHECK (status IN (0, 1, 2, 3))
);
COMMENT ON TABLE admmgt.scripts IS
    'Migration scripts, applied in id order. status: 0 designing, 1 ready, 2 applied everywhere, 3 failed on the template.';

CREATE TABLE admmgt.script_tables (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int,
    schemaname   varchar(128),
    tablename    varchar(128),
    status       integer DEFAULT 0,
    haspart      integer DEFAULT 0,
    lifecycle    jsonb,
    tblspace     varchar(128),
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_tables_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_tables_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id)
);
CREATE INDEX script_tables_scriptid ON admmgt.script_tables (scriptid);

CREATE TABLE admmgt.script_table_columns (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    tableid      integer,
    scriptid     integer,
    columnname   varchar(128),
    datatype     varchar(128),
    nullable     integer,
    defaultval   varchar(128),
    isprimarykey integer DEFAULT 0,
    isidentity   integer DEFAULT 0,
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_table_columns_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_tables_columns FOREIGN KEY (tableid) REFERENCES admmgt.script_tables (id),
    CONSTRAINT fk_script_table_columns_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id)
);
CREATE INDEX script_table_columns_tableid ON admmgt.script_table_columns (tableid);
CREATE INDEX script_table_columns_scriptid ON admmgt.script_table_columns (scriptid);

CREATE TABLE admmgt.script_table_fkeys (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    scriptid         integer,
    schemaname       varchar(128),
    childtablename   varchar(128),
    childcolumnname  varchar(128),
    parenttablename  varchar(128),
    parentcolumnname varchar(128),
    keyorder         integer DEFAULT 1,
    delrule          varchar(32),
    novalidate       integer DEFAULT 0,
    status           integer DEFAULT 0,
    created_date     timestamp DEFAULT current_timestamp,
    constraintname   varchar(63),
    CONSTRAINT script_table_fkeys_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_table_fkeys_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id)
);
CREATE INDEX script_table_fkeys_scriptid ON admmgt.script_table_fkeys (scriptid);

CREATE TABLE admmgt.script_table_partitions (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    tableid           integer,
    partcolumnname    varchar(128),
    parttype          varchar(10),
    partvalue         varchar(20),
    parttbs           varchar(128),
    subpartcolumnname varchar(128),
    subparttype       varchar(10),
    subpartvalue      varchar(20),
    subparttbs        varchar(128),
    created_date      timestamp DEFAULT current_timestamp,
    CONSTRAINT script_table_partitions_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_tables_partitions FOREIGN KEY (tableid) REFERENCES admmgt.script_tables (id)
);
CREATE INDEX script_table_partitions_tableid ON admmgt.script_table_partitions (tableid);

-- Partition keys must be part of the primary key of a partitioned table in PostgreSQL.
CREATE VIEW admmgt.script_pg_pklist AS
SELECT lower(columnname)::varchar(128) AS columnname, tableid
  FROM admmgt.script_table_columns WHERE isprimarykey = 1
UNION
SELECT lower(partcolumnname)::varchar(128), tableid
  FROM admmgt.script_table_partitions WHERE partcolumnname IS NOT NULL
UNION
SELECT lower(subpartcolumnname)::varchar(128), tableid
  FROM admmgt.script_table_partitions WHERE subpartcolumnname IS NOT NULL;

CREATE TABLE admmgt.script_procs (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    scriptid     int,
    proccallstmt text,
    status       integer DEFAULT 0,
    created_date timestamp DEFAULT current_timestamp,
    CONSTRAINT script_procs_pkey PRIMARY KEY (id),
    CONSTRAINT fk_script_procs_scripts FOREIGN KEY (scriptid) REFERENCES admmgt.scripts (id)
);
CREATE INDEX script_procs_scriptid ON admmgt.script_procs (scriptid);

-- Every statement sent to a target, with its outcome. Holds no connection details.
CREATE TABLE admmgt.script_log (
    id         bigserial,
    scriptid   integer,
    dbname     varchar(128),
    createdon  timestamp DEFAULT current_timestamp,
    commstat   text,
    run_id     bigint,
    operation  text,
    outcome    text,
    sqlstate   text,
    message    text,
    elapsed_ms numeric(12, 3),
    CONSTRAINT script_log_pkey PRIMARY KEY (id)
);
CREATE INDEX script_log_scriptid ON admmgt.script_log (scriptid, dbname);
CREATE INDEX script_log_run ON admmgt.script_log (run_id);

-- Latest outcome per operation, script and target: what `admmgt status` lists as failures.
CREATE TABLE admmgt.target_results (
    operation   text NOT NULL,
    scriptid    integer NOT NULL DEFAULT 0,
    target_id   bigint NOT NULL REFERENCES admmgt.vendor_db_settings (id) ON DELETE CASCADE,
    dbname      varchar(128) NOT NULL,
    ok          boolean NOT NULL,
    sqlstate    text,
    message     text,
    detail      text,
    hint        text,
    statement   text,
    run_id      bigint,
    finished_at timestamptz NOT NULL DEFAULT now(),
    elapsed_ms  numeric(12, 3),
    CONSTRAINT target_results_pkey PRIMARY KEY (operation, scriptid, target_id)
);

-- One row per CALL of a public procedure: who runs what since when, and how it ended.
CREATE TABLE admmgt.runs (
    run_id      bigserial PRIMARY KEY,
    operation   text NOT NULL,
    pid         integer NOT NULL DEFAULT pg_backend_pid(),
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    targets     integer,
    failed      integer
);

-- One unit of work for the executor: statements for one target.
CREATE TYPE admmgt.work_item AS (
    target_id bigint,
    dbname    text,
    conn_db   text,
    scriptid  integer,
    stmts     text[],
    atomic    boolean
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
