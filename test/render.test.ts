// The exact text of the render layer: render_script() and script_batch() for each kind of script
// row, render_maintenance() for the RANGE parents they make, at fixed dates. These functions are
// pure and STABLE (they read admmgt's script tables, nothing else), so this file needs no template
// or tenant: the rows are written to its admin database and rendered there.
// Every database of this file starts with render_.
import dedent from 'dedent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
/** The day the scripts are rendered for: a Friday, in the ISO week that starts on Monday 2030-05-13. */
const ASOF = '2030-05-17';

/** Script 1: a plain table with a column of each flavour, names in mixed case, a tablespace. */
const plainTable: ScriptSpec = {
  id: 1, description: 'a plain table',
  tables: [{
    schema: 'App', name: 'Kinds', tablespace: 'pg_default',
    columns: [
      { name: 'id', type: 'bigint', primaryKey: true, identity: true },
      { name: 'amount', type: 'numeric(12,2)', nullable: false, default: '0' },
      { name: 'Created_At', type: 'timestamptz', nullable: false, default: 'now()' },
      { name: 'note', type: 'varchar(200)' },
      { name: 'tags', type: 'text[]', default: "ARRAY['new']::text[]" },
      { name: 'code', type: 'char(3)', primaryKey: true },
    ],
  }],
};

/** Script 2: LIST partitions, a leaf with a tablespace and two with RANGE subpartitions. */
const listWithRange: ScriptSpec = {
  id: 2, description: 'LIST partitions with RANGE subpartitions',
  tables: [{
    schema: 'app', name: 'listrange',
    columns: [
      { name: 'id', type: 'bigint', primaryKey: true, identity: true },
      { name: 'kind', type: 'varchar(4)', nullable: false },
      { name: 'd', type: 'date', nullable: false },
    ],
    partitions: [
      { column: 'kind', type: 'list', value: 'A', tablespace: 'pg_default' },
      { column: 'kind', type: 'list', value: 'X-1', sub: { column: 'd', interval: 'month' } },
      { column: 'kind', type: 'list', value: 'Y', sub: { column: 'd', interval: 'year', tablespace: 'pg_default' } },
    ],
  }],
};

/** Script 3: RANGE partitions by week, the tablespace on the table and on its partitions. */
const rangeTable: ScriptSpec = {
  id: 3, description: 'RANGE partitions by week',
  tables: [{
    schema: 'app', name: 'byweek', tablespace: 'pg_default',
    columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'ts', type: 'timestamp', nullable: false }],
    partitions: [{ column: 'ts', type: 'range', value: 'Week', tablespace: 'pg_default' }],
  }],
};

/** Script 4: DEFAULT partitions (script_tables.defaultpart = 1) on a RANGE table and on a LIST table with RANGE subpartitions. */
const defaultPartitions: ScriptSpec = {
  id: 4, description: 'DEFAULT partitions',
  tables: [
    {
      schema: 'app', name: 'events', defaultPartition: true,
      columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'at', type: 'date', nullable: false }],
      partitions: [{ column: 'at', type: 'range', value: 'month' }],
    },
    {
      schema: 'app', name: 'items', defaultPartition: true,
      columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'status', type: 'varchar(1)', nullable: false },
        { name: 'closed', type: 'date', nullable: false }],
      partitions: [{ column: 'status', type: 'list', value: 'A' },
        { column: 'status', type: 'list', value: 'X', sub: { column: 'closed', interval: 'quarter' } }],
    },
  ],
};

/** Script 5: columns added to tables of scripts 1 and 4. */
const addedColumns: ScriptSpec = {
  id: 5, description: 'columns added to earlier tables',
  addColumns: [
    { schema: 'app', table: 'kinds', column: { name: 'Extra', type: 'varchar(10)', nullable: false, default: "'x'" } },
    { schema: 'APP', table: 'Events', column: { name: 'qty', type: 'smallint' } },
  ],
};

/** Script 6: foreign keys of one and two columns, with and without a delete rule, one NOT VALID. */
const foreignKeys: ScriptSpec = {
  id: 6, description: 'foreign keys',
  tables: [
    { schema: 'app', name: 'accounts', columns: [{ name: 'region', type: 'varchar(8)', primaryKey: true },
      { name: 'no', type: 'integer', primaryKey: true }, { name: 'owner_id', type: 'bigint' }] },
    { schema: 'app', name: 'invoices', columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true },
      { name: 'acc_region', type: 'varchar(8)' }, { name: 'acc_no', type: 'integer' }, { name: 'kind_id', type: 'bigint' }] },
  ],
  foreignKeys: [
    { schema: 'app', child: 'invoices', parent: 'accounts', columns: [['acc_region', 'region'], ['acc_no', 'no']], onDelete: 'CASCADE' },
    { schema: 'app', child: 'invoices', parent: 'kinds', columns: [['kind_id', 'id']], onDelete: 'SET NULL', notValid: true },
    { schema: 'app', child: 'accounts', parent: 'kinds', columns: [['owner_id', 'id']] },
  ],
};

/** Script 7: procedure calls only. */
const calls: ScriptSpec = {
  id: 7, description: 'procedure calls',
  calls: [`call app.log_step('first')`, 'CALL app.seed(3);  '],
};

const SCRIPTS = [plainTable, listWithRange, rangeTable, defaultPartitions, addedColumns, foreignKeys, calls];

beforeAll(async () => {
  env = await createEnv('render');
  // Left in status 0 (designing): rendering does not look at the status.
  for (const s of SCRIPTS) await env.addScript(s, false);
});
afterAll(async () => {
  await env?.close();
});

/** render_script()'s statements, checking that seq numbers them 1, 2, ... */
async function renderScript(id: number, asof = ASOF): Promise<string[]> {
  const rows = await env.rows<{ seq: number; stmt: string }>('SELECT seq, stmt FROM admmgt.render_script($1, $2::date)', [id, asof]);
  expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
  return rows.map((r) => r.stmt);
}

/** script_batch(id), or script_batch(id, asof) when a day is given. */
async function scriptBatch(id: number, asof?: string): Promise<string[] | undefined> {
  const [row] = asof === undefined
    ? await env.rows<{ batch: string[] }>('SELECT admmgt.script_batch($1) AS batch', [id])
    : await env.rows<{ batch: string[] }>('SELECT admmgt.script_batch($1, $2::date) AS batch', [id, asof]);
  return row?.batch;
}

const renderMaintenance = (version: number, from: string, to: string) =>
  env.rows('SELECT seq, stmt, partition_name, from_default FROM admmgt.render_maintenance($1, $2::date, $3::date)', [version, from, to]);

describe('render_script: the statements of one script, in the order a target runs them', () => {
  it('renders a plain table: identity, NOT NULL, DEFAULT and primary key columns, its tablespace, names in lower case', async () => {
    expect(await renderScript(1)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS app',
      dedent`
        CREATE TABLE app.kinds (
            id bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL,
            amount numeric(12,2) NOT NULL DEFAULT (0),
            created_at timestamptz NOT NULL DEFAULT (now()),
            note varchar(200),
            tags text[] DEFAULT (ARRAY['new']::text[]),
            code char(3) NOT NULL,
            PRIMARY KEY (id, code)
        ) TABLESPACE pg_default
      `,
    ]);
  });

  it('renders a LIST-partitioned table: a leaf in its tablespace, and RANGE subpartitions with the period of p_asof', async () => {
    expect(await renderScript(2)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS app',
      dedent`
        CREATE TABLE app.listrange (
            id bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL,
            kind varchar(4) NOT NULL,
            d date NOT NULL,
            PRIMARY KEY (id, kind, d)
        ) PARTITION BY LIST (kind)
      `,
      "CREATE TABLE app.listrange_a PARTITION OF app.listrange FOR VALUES IN ('A') TABLESPACE pg_default",
      "CREATE TABLE app.listrange_x_1 PARTITION OF app.listrange FOR VALUES IN ('X-1') PARTITION BY RANGE (d)",
      "CREATE TABLE app.listrange_y PARTITION OF app.listrange FOR VALUES IN ('Y') PARTITION BY RANGE (d)",
      "CREATE TABLE app.listrange_x_1_p20300501 PARTITION OF app.listrange_x_1 FOR VALUES FROM ('2030-05-01') TO ('2030-06-01')",
      "CREATE TABLE app.listrange_y_p20300101 PARTITION OF app.listrange_y FOR VALUES FROM ('2030-01-01') TO ('2031-01-01') TABLESPACE pg_default",
    ]);
  });

  it('renders a RANGE-partitioned table with the period of p_asof (a week from Monday); the tablespace goes to the partitions', async () => {
    expect(await renderScript(3)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS app',
      dedent`
        CREATE TABLE app.byweek (
            id bigint NOT NULL,
            ts timestamp NOT NULL,
            PRIMARY KEY (id, ts)
        ) PARTITION BY RANGE (ts)
      `,
      "CREATE TABLE app.byweek_p20300513 PARTITION OF app.byweek FOR VALUES FROM ('2030-05-13') TO ('2030-05-20') TABLESPACE pg_default",
    ]);
  });

  it('renders DEFAULT partitions after the LIST partitions, and after the period of each RANGE parent', async () => {
    expect(await renderScript(4)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS app',
      dedent`
        CREATE TABLE app.events (
            id bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL,
            at date NOT NULL,
            PRIMARY KEY (id, at)
        ) PARTITION BY RANGE (at)
      `,
      "CREATE TABLE app.events_p20300501 PARTITION OF app.events FOR VALUES FROM ('2030-05-01') TO ('2030-06-01')",
      'CREATE TABLE app.events_default PARTITION OF app.events DEFAULT',
      dedent`
        CREATE TABLE app.items (
            id bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL,
            status varchar(1) NOT NULL,
            closed date NOT NULL,
            PRIMARY KEY (id, status, closed)
        ) PARTITION BY LIST (status)
      `,
      "CREATE TABLE app.items_a PARTITION OF app.items FOR VALUES IN ('A')",
      "CREATE TABLE app.items_x PARTITION OF app.items FOR VALUES IN ('X') PARTITION BY RANGE (closed)",
      'CREATE TABLE app.items_default PARTITION OF app.items DEFAULT',
      "CREATE TABLE app.items_x_p20300401 PARTITION OF app.items_x FOR VALUES FROM ('2030-04-01') TO ('2030-07-01')",
      'CREATE TABLE app.items_x_default PARTITION OF app.items_x DEFAULT',
    ]);
  });

  it("renders columns added to earlier scripts' tables as ALTER TABLE ADD COLUMN, with no CREATE SCHEMA", async () => {
    expect(await renderScript(5)).toEqual([
      "ALTER TABLE app.kinds ADD COLUMN extra varchar(10) NOT NULL DEFAULT ('x')",
      'ALTER TABLE app.events ADD COLUMN qty smallint',
    ]);
  });

  it('renders foreign keys after the tables: two columns in key order, a delete rule or NO ACTION, NOT VALID', async () => {
    expect(await renderScript(6)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS app',
      dedent`
        CREATE TABLE app.accounts (
            region varchar(8) NOT NULL,
            no integer NOT NULL,
            owner_id bigint,
            PRIMARY KEY (region, no)
        )
      `,
      dedent`
        CREATE TABLE app.invoices (
            id bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL,
            acc_region varchar(8),
            acc_no integer,
            kind_id bigint,
            PRIMARY KEY (id)
        )
      `,
      'ALTER TABLE app.invoices ADD CONSTRAINT invoices_accounts_fkey FOREIGN KEY (acc_region, acc_no) REFERENCES app.accounts (region, no) ON DELETE CASCADE',
      'ALTER TABLE app.invoices ADD CONSTRAINT invoices_kinds_fkey FOREIGN KEY (kind_id) REFERENCES app.kinds (id) ON DELETE SET NULL NOT VALID',
      'ALTER TABLE app.accounts ADD CONSTRAINT accounts_kinds_fkey FOREIGN KEY (owner_id) REFERENCES app.kinds (id) ON DELETE NO ACTION',
    ]);
  });

  it('renders the calls of script_procs as written, without the trailing semicolon', async () => {
    expect(await renderScript(7)).toEqual([
      "call app.log_step('first')",
      'CALL app.seed(3)',
    ]);
  });

  it('refuses a script that does not exist (SQLSTATE P0002)', async () => {
    const err = await env.errorOf('SELECT * FROM admmgt.render_script(99)');
    expect(err.code).toBe('P0002');
    expect(err.message).toBe('admmgt: script 99 does not exist');
  });
});

describe('script_batch: what a target runs for one script, the ledger first', () => {
  it('for a script of calls, with today as p_asof', async () => {
    expect(await scriptBatch(7)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS admmgt',
      'CREATE TABLE IF NOT EXISTS admmgt.applied_scripts (scriptid integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      'INSERT INTO admmgt.applied_scripts (scriptid) VALUES (7)',
      "call app.log_step('first')",
      'CALL app.seed(3)',
    ]);
  });

  it('for a script with a RANGE table, at a given p_asof', async () => {
    expect(await scriptBatch(3, ASOF)).toEqual([
      'CREATE SCHEMA IF NOT EXISTS admmgt',
      'CREATE TABLE IF NOT EXISTS admmgt.applied_scripts (scriptid integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      'INSERT INTO admmgt.applied_scripts (scriptid) VALUES (3)',
      'CREATE SCHEMA IF NOT EXISTS app',
      dedent`
        CREATE TABLE app.byweek (
            id bigint NOT NULL,
            ts timestamp NOT NULL,
            PRIMARY KEY (id, ts)
        ) PARTITION BY RANGE (ts)
      `,
      "CREATE TABLE app.byweek_p20300513 PARTITION OF app.byweek FOR VALUES FROM ('2030-05-13') TO ('2030-05-20') TABLESPACE pg_default",
    ]);
  });
});

describe('render_maintenance: every period from p_from through p_to of the RANGE parents of the scripts up to p_version', () => {
  it('is empty for a version without RANGE parents', async () => {
    expect(await renderMaintenance(0, '2030-06-20', '2030-07-05')).toEqual([]);
    expect(await renderMaintenance(1, '2030-06-20', '2030-07-05')).toEqual([]);
  });

  it('creates each period IF NOT EXISTS, ordered by table, parent and period start', async () => {
    expect(await renderMaintenance(3, '2030-06-20', '2030-07-05')).toEqual([
      {
        seq: 1,
        stmt: "CREATE TABLE IF NOT EXISTS app.listrange_x_1_p20300601 PARTITION OF app.listrange_x_1 FOR VALUES FROM ('2030-06-01') TO ('2030-07-01')",
        partition_name: 'app.listrange_x_1_p20300601',
        from_default: false,
      },
      {
        seq: 2,
        stmt: "CREATE TABLE IF NOT EXISTS app.listrange_x_1_p20300701 PARTITION OF app.listrange_x_1 FOR VALUES FROM ('2030-07-01') TO ('2030-08-01')",
        partition_name: 'app.listrange_x_1_p20300701',
        from_default: false,
      },
      {
        seq: 3,
        stmt: "CREATE TABLE IF NOT EXISTS app.listrange_y_p20300101 PARTITION OF app.listrange_y FOR VALUES FROM ('2030-01-01') TO ('2031-01-01') TABLESPACE pg_default",
        partition_name: 'app.listrange_y_p20300101',
        from_default: false,
      },
      {
        seq: 4,
        stmt: "CREATE TABLE IF NOT EXISTS app.byweek_p20300617 PARTITION OF app.byweek FOR VALUES FROM ('2030-06-17') TO ('2030-06-24') TABLESPACE pg_default",
        partition_name: 'app.byweek_p20300617',
        from_default: false,
      },
      {
        seq: 5,
        stmt: "CREATE TABLE IF NOT EXISTS app.byweek_p20300624 PARTITION OF app.byweek FOR VALUES FROM ('2030-06-24') TO ('2030-07-01') TABLESPACE pg_default",
        partition_name: 'app.byweek_p20300624',
        from_default: false,
      },
      {
        seq: 6,
        stmt: "CREATE TABLE IF NOT EXISTS app.byweek_p20300701 PARTITION OF app.byweek FOR VALUES FROM ('2030-07-01') TO ('2030-07-08') TABLESPACE pg_default",
        partition_name: 'app.byweek_p20300701',
        from_default: false,
      },
    ]);
  });

  it('creates the periods of a parent with a DEFAULT partition in a DO block that moves their rows out of it', async () => {
    expect(await renderMaintenance(7, '2030-07-01', '2030-07-01')).toEqual([
      {
        seq: 1,
        stmt: "CREATE TABLE IF NOT EXISTS app.listrange_x_1_p20300701 PARTITION OF app.listrange_x_1 FOR VALUES FROM ('2030-07-01') TO ('2030-08-01')",
        partition_name: 'app.listrange_x_1_p20300701',
        from_default: false,
      },
      {
        seq: 2,
        stmt: "CREATE TABLE IF NOT EXISTS app.listrange_y_p20300101 PARTITION OF app.listrange_y FOR VALUES FROM ('2030-01-01') TO ('2031-01-01') TABLESPACE pg_default",
        partition_name: 'app.listrange_y_p20300101',
        from_default: false,
      },
      {
        seq: 3,
        stmt: "CREATE TABLE IF NOT EXISTS app.byweek_p20300701 PARTITION OF app.byweek FOR VALUES FROM ('2030-07-01') TO ('2030-07-08') TABLESPACE pg_default",
        partition_name: 'app.byweek_p20300701',
        from_default: false,
      },
      {
        seq: 4,
        stmt: dedent`
          DO '
          DECLARE
              v_n bigint;
          BEGIN
              IF pg_catalog.to_regclass(''app.events_p20300701'') IS NULL THEN
                  IF EXISTS (SELECT 1 FROM app.events_default WHERE at >= ''2030-07-01'' AND at < ''2030-08-01'') THEN
              IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                           JOIN pg_catalog.pg_proc f ON f.oid = g.tgfoid
                           JOIN pg_catalog.pg_roles o ON o.oid = f.proowner
                          WHERE g.tgrelid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree(''app.events''::pg_catalog.regclass) t
                                              UNION ALL SELECT ''app.events''::pg_catalog.regclass)
                            AND NOT g.tgisinternal AND g.tgenabled <> ''D''
                            AND (g.tgqual IS NOT NULL OR (NOT o.rolsuper AND o.rolname <> current_user))) THEN
                  RAISE EXCEPTION ''admmgt: % has a trigger that runs a function of another role or a WHEN condition; admmgt moves and deletes no rows there'', ''app.events''
                      USING ERRCODE = ''object_not_in_prerequisite_state'',
                            HINT = ''A trigger would run that function with admmgt''''s rights. Disable the trigger for the run (ALTER TABLE ... DISABLE TRIGGER ...), or move or delete those rows yourself.'';
              END IF;
                  END IF;
                  CREATE TEMP TABLE admmgt_move ON COMMIT DROP AS SELECT * FROM app.events_default LIMIT 0;
                  WITH m AS (DELETE FROM app.events_default WHERE at >= ''2030-07-01'' AND at < ''2030-08-01'' RETURNING *)
                  INSERT INTO admmgt_move SELECT * FROM m;
                  GET DIAGNOSTICS v_n = ROW_COUNT;
                  CREATE TABLE app.events_p20300701 PARTITION OF app.events FOR VALUES FROM (''2030-07-01'') TO (''2030-08-01'');
                  INSERT INTO app.events_p20300701 SELECT * FROM admmgt_move;
                  DROP TABLE admmgt_move;
                  IF v_n > 0 THEN
                      INSERT INTO admmgt_moved VALUES (''app.events_p20300701'', v_n);
                  END IF;
              END IF;
          END
          '
        `,
        partition_name: 'app.events_p20300701',
        from_default: true,
      },
      {
        seq: 5,
        stmt: dedent`
          DO '
          DECLARE
              v_n bigint;
          BEGIN
              IF pg_catalog.to_regclass(''app.items_x_p20300701'') IS NULL THEN
                  IF EXISTS (SELECT 1 FROM app.items_x_default WHERE closed >= ''2030-07-01'' AND closed < ''2030-10-01'') THEN
              IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                           JOIN pg_catalog.pg_proc f ON f.oid = g.tgfoid
                           JOIN pg_catalog.pg_roles o ON o.oid = f.proowner
                          WHERE g.tgrelid IN (SELECT t.relid FROM pg_catalog.pg_partition_tree(''app.items_x''::pg_catalog.regclass) t
                                              UNION ALL SELECT ''app.items_x''::pg_catalog.regclass)
                            AND NOT g.tgisinternal AND g.tgenabled <> ''D''
                            AND (g.tgqual IS NOT NULL OR (NOT o.rolsuper AND o.rolname <> current_user))) THEN
                  RAISE EXCEPTION ''admmgt: % has a trigger that runs a function of another role or a WHEN condition; admmgt moves and deletes no rows there'', ''app.items_x''
                      USING ERRCODE = ''object_not_in_prerequisite_state'',
                            HINT = ''A trigger would run that function with admmgt''''s rights. Disable the trigger for the run (ALTER TABLE ... DISABLE TRIGGER ...), or move or delete those rows yourself.'';
              END IF;
                  END IF;
                  CREATE TEMP TABLE admmgt_move ON COMMIT DROP AS SELECT * FROM app.items_x_default LIMIT 0;
                  WITH m AS (DELETE FROM app.items_x_default WHERE closed >= ''2030-07-01'' AND closed < ''2030-10-01'' RETURNING *)
                  INSERT INTO admmgt_move SELECT * FROM m;
                  GET DIAGNOSTICS v_n = ROW_COUNT;
                  CREATE TABLE app.items_x_p20300701 PARTITION OF app.items_x FOR VALUES FROM (''2030-07-01'') TO (''2030-10-01'');
                  INSERT INTO app.items_x_p20300701 SELECT * FROM admmgt_move;
                  DROP TABLE admmgt_move;
                  IF v_n > 0 THEN
                      INSERT INTO admmgt_moved VALUES (''app.items_x_p20300701'', v_n);
                  END IF;
              END IF;
          END
          '
        `,
        partition_name: 'app.items_x_p20300701',
        from_default: true,
      },
    ]);
  });
});
