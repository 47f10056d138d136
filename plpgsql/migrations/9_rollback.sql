-- Roll back: a script may carry down steps, plain SQL that undoes it (rollbackScripts,
-- `admmgt rollback --to N`). A down step is a script_sql row with direction 'down'; it runs only
-- when the script is rolled back, in seq order, in one transaction per target (txmode script).
-- Up and down steps number their seq apart.
ALTER TABLE admmgt.script_sql
    ADD COLUMN direction text NOT NULL DEFAULT 'up',
    ADD CONSTRAINT script_sql_direction_check CHECK (direction IN ('up', 'down'));
ALTER TABLE admmgt.script_sql DROP CONSTRAINT script_sql_seq;
ALTER TABLE admmgt.script_sql ADD CONSTRAINT script_sql_seq UNIQUE (scriptid, direction, seq);
COMMENT ON COLUMN admmgt.script_sql.direction IS
    'up: a step of the script (applyScripts); down: a step that undoes it (rollbackScripts), txmode script only, run in seq order; down steps may be added or changed after the script was applied';
