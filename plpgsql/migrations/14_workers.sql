-- The queue of a run with worker sessions (applyScripts(p_workers => k), 072_workers.sql): one row
-- per target, holding its work items in order, which the caller and its workers take with
-- FOR UPDATE SKIP LOCKED. Unlogged: a row is worth nothing once its run is over (a crash
-- empties the table, and the next run builds its items anew from the registry and the ledgers),
-- and a run writes every row three times.
CREATE UNLOGGED TABLE admmgt.work_queue (
    run_id     bigint  NOT NULL REFERENCES admmgt.runs (run_id) ON DELETE CASCADE,
    target_id  bigint  NOT NULL,
    ord        integer NOT NULL,
    items      text    NOT NULL,
    worker_pid integer,
    done       boolean NOT NULL DEFAULT false,
    ok         boolean,
    relayed    boolean NOT NULL DEFAULT false,
    CONSTRAINT work_queue_pkey PRIMARY KEY (run_id, target_id)
);
CREATE INDEX work_queue_open ON admmgt.work_queue (run_id, ord) WHERE worker_pid IS NULL;
CREATE INDEX work_queue_unrelayed ON admmgt.work_queue (run_id) WHERE done AND NOT relayed;
COMMENT ON TABLE admmgt.work_queue IS
    'The targets of a run with worker sessions (applyScripts p_workers), one row each while the run lasts: items, its work items in order (admmgt.work_item[] as text); worker_pid, the session that took it; done and ok, how it ended (written in the transaction that booked it); relayed, whether the caller has reported it';
