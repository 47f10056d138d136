// CALL admmgt.applyScripts() against real template and tenant databases: what each script leaves
// in the catalogs of every target, what admmgt records, and how failures stay contained.
// Every database of this file starts with apply_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { markReadySql, scriptRowsSql, type ColumnSpec, type PartitionSpec, type ScriptSpec, type TableSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'apply_tpl';

beforeAll(async () => {
  env = await createEnv('apply');
});
afterAll(async () => {
  await env?.close();
});

// ---------------------------------------------------------------------------------------------
// helpers

const admin = <T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) => env.rows<T>(text, values);

const adminError = (text: string) => env.errorOf(text);

/** Write a script's rows (and mark it ready) in one transaction, as a DBA does. */
async function addScript(spec: ScriptSpec, ready = true): Promise<void> {
  try {
    await env.admin.query(`BEGIN;\n${scriptRowsSql(spec).text}\n${ready ? markReadySql(spec.id).text : ''}\nCOMMIT;`);
  } catch (e) {
    await env.admin.query('ROLLBACK');
    throw e;
  }
}

async function deleteScript(id: number): Promise<void> {
  await env.admin.query(`BEGIN;
    DELETE FROM admmgt.script_table_partitions WHERE tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = ${id});
    DELETE FROM admmgt.script_table_columns WHERE scriptid = ${id} OR tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = ${id});
    DELETE FROM admmgt.script_table_fkeys WHERE scriptid = ${id};
    DELETE FROM admmgt.script_procs WHERE scriptid = ${id};
    DELETE FROM admmgt.script_tables WHERE scriptid = ${id};
    DELETE FROM admmgt.scripts WHERE id = ${id};
    COMMIT;`);
}

/**
 * Start a scenario from nothing: drop this file's template and tenants, empty admmgt's tables,
 * create the template (schema mgttest, `setup` run in it) and the tenants from it.
 */
async function fresh(tenants: string[], setup?: string): Promise<void> {
  for (const db of await env.databases()) {
    if (db !== env.adminDb) await env.admin.query(`DROP DATABASE "${db}" WITH (FORCE)`);
  }
  await env.admin.query(`TRUNCATE admmgt.script_log, admmgt.target_results, admmgt.runs, admmgt.script_table_partitions,
    admmgt.script_table_columns, admmgt.script_table_fkeys, admmgt.script_procs, admmgt.script_tables, admmgt.scripts,
    admmgt.vendor_db_settings RESTART IDENTITY CASCADE`);
  await env.makeTemplate(TPL);
  if (setup) await env.queryIn(TPL, setup);
  for (const t of tenants) await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ($1, 1)`, [t]);
  if (tenants.length) await env.admin.query('CALL admmgt.create_database()');
  expect(await env.databases()).toEqual([env.adminDb, TPL, ...tenants].sort());
  env.notices.length = 0;
}

async function versions(): Promise<Record<string, number | null>> {
  const rows = await admin<{ dbname: string; scriptversion: number | null }>(
    'SELECT lower(dbname) AS dbname, scriptversion FROM admmgt.vendor_db_settings ORDER BY id');
  return Object.fromEntries(rows.map((r) => [r.dbname, r.scriptversion]));
}

async function scriptStatus(): Promise<Record<number, number>> {
  const rows = await admin<{ id: number; status: number }>('SELECT id, status FROM admmgt.scripts ORDER BY id');
  return Object.fromEntries(rows.map((r) => [r.id, r.status]));
}

async function runCount(): Promise<number> {
  return (await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n;
}

/** Tables of schema mgttest: name:relkind. */
async function tables(db: string): Promise<string[]> {
  return (await env.queryIn<{ t: string }>(db,
    `SELECT c.relname || ':' || c.relkind::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'mgttest' AND c.relkind IN ('r', 'p') ORDER BY c.relname`)).map((r) => r.t);
}

async function hasTable(db: string, name: string): Promise<boolean> {
  return (await env.queryIn<{ ok: boolean }>(db, `SELECT to_regclass($1) IS NOT NULL AS ok`, [`mgttest.${name}`]))[0]!.ok;
}

/** The tenant-side ledger; [] when the target has none yet. */
async function ledger(db: string): Promise<number[]> {
  const [{ ok }] = await env.queryIn<{ ok: boolean }>(db, `SELECT to_regclass('admmgt.applied_scripts') IS NOT NULL AS ok`) as [{ ok: boolean }];
  if (!ok) return [];
  return (await env.queryIn<{ scriptid: number }>(db, 'SELECT scriptid FROM admmgt.applied_scripts ORDER BY scriptid'))
    .map((r) => r.scriptid);
}

interface Column {
  name: string;
  type: string;
  notnull: boolean;
  identity: string;
  def: string | null;
}

async function columns(db: string, table: string): Promise<Column[]> {
  return env.queryIn<Column>(db,
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
            a.attidentity::text AS identity, pg_get_expr(d.adbin, d.adrelid) AS def
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, [`mgttest.${table}`]);
}

/** Direct partitions of a table with their bounds. */
async function partitions(db: string, parent: string): Promise<{ name: string; kind: string; bound: string }[]> {
  return env.queryIn(db,
    `SELECT c.relname AS name, c.relkind::text AS kind, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = $1::regclass ORDER BY c.relname`, [`mgttest.${parent}`]);
}

async function partKey(db: string, table: string): Promise<string> {
  return (await env.queryIn<{ k: string }>(db, `SELECT pg_get_partkeydef($1::regclass) AS k`, [`mgttest.${table}`]))[0]!.k;
}

async function constraintDefs(db: string, table: string, type: 'p' | 'f'): Promise<{ name: string; def: string; validated: boolean }[]> {
  return env.queryIn(db,
    `SELECT conname AS name, pg_get_constraintdef(oid) AS def, convalidated AS validated
       FROM pg_constraint WHERE conrelid = $1::regclass AND contype = $2 ORDER BY conname`, [`mgttest.${table}`, type]);
}

/** Today on the server, and period starts/ends computed here (not by admmgt). */
let today = '';
function ymd(y: number, m: number): string {
  const d = new Date(Date.UTC(y, m - 1, 1));
  return d.toISOString().slice(0, 10);
}
function period(unit: 'month' | 'quarter' | 'year'): { start: string; end: string; tag: string } {
  const [y, m] = today.split('-').map(Number) as [number, number];
  const first = unit === 'month' ? m : unit === 'quarter' ? Math.floor((m - 1) / 3) * 3 + 1 : 1;
  const len = unit === 'month' ? 1 : unit === 'quarter' ? 3 : 12;
  const start = ymd(y, first);
  return { start, end: ymd(y, first + len), tag: start.replace(/-/g, '') };
}

// ---------------------------------------------------------------------------------------------
// scripts of the main scenario

const S = 'mgttest';

const tablesScript: ScriptSpec = {
  id: 1,
  description: 'tables: column kinds, LIST, RANGE by month/quarter/year, LIST with RANGE subpartitions',
  tables: [
    {
      schema: S, name: 'kinds', tablespace: 'pg_default',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'amount', type: 'numeric(12,2)', nullable: false, default: '0' },
        { name: 'created_at', type: 'timestamptz', nullable: false, default: 'now()' },
        { name: 'tags', type: 'text[]', default: "ARRAY['new']::text[]" },
        { name: 'due', type: 'date', default: 'current_date + 30' },
        { name: 'Note', type: 'varchar(200)' },
        { name: 'flag', type: 'boolean', nullable: false, default: 'true' },
        { name: 'price', type: 'double precision' },
        { name: 'local_ts', type: 'timestamp(3) without time zone' },
        { name: 'counts', type: 'integer[]' },
      ],
    },
    {
      schema: S, name: 'bylist',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'region', type: 'varchar(8)', nullable: false },
      ],
      partitions: [
        { column: 'region', type: 'list', value: 'eu' },
        { column: 'region', type: 'list', value: 'us', tablespace: 'pg_default' },
        { column: 'region', type: 'list', value: 'AP-x' },
      ],
    },
    {
      schema: S, name: 'bymonth',
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'd', type: 'date', nullable: false }],
      partitions: [{ column: 'd', type: 'range', value: 'month' }],
    },
    {
      schema: S, name: 'byquarter',
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'ts', type: 'timestamp', nullable: false }],
      partitions: [{ column: 'ts', type: 'range', value: 'quarter', tablespace: 'pg_default' }],
    },
    {
      schema: S, name: 'byyear',
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'tz', type: 'timestamptz', nullable: false }],
      partitions: [{ column: 'tz', type: 'range', value: 'YEAR' }],
    },
    {
      schema: S, name: 'listrange',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'kind', type: 'varchar(4)', nullable: false },
        { name: 'd', type: 'date', nullable: false },
        { name: 'payload', type: 'jsonb' },
      ],
      partitions: [
        { column: 'kind', type: 'list', value: 'A' },
        { column: 'kind', type: 'list', value: 'X', sub: { column: 'd', interval: 'month' } },
        { column: 'kind', type: 'list', value: 'Y', sub: { column: 'd', interval: 'year', tablespace: 'pg_default' } },
      ],
    },
  ],
};

const addColumnScript: ScriptSpec = {
  id: 2,
  description: 'add columns to an existing table',
  addColumns: [
    { schema: S, table: 'kinds', column: { name: 'extra', type: 'varchar(10)', nullable: false, default: "'x'" } },
    { schema: S, table: 'bymonth', column: { name: 'qty', type: 'smallint' } },
  ],
};

const fkScript: ScriptSpec = {
  id: 3,
  description: 'tables with foreign keys',
  tables: [
    {
      schema: S, name: 'accounts',
      columns: [
        { name: 'region', type: 'varchar(8)', primaryKey: true },
        { name: 'no', type: 'integer', primaryKey: true },
      ],
    },
    {
      schema: S, name: 'invoices',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'acc_region', type: 'varchar(8)' },
        { name: 'acc_no', type: 'integer' },
      ],
    },
    {
      schema: S, name: 'notes',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'kind_id', type: 'bigint' },
      ],
    },
    {
      schema: S, name: 'audit',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'kind_id', type: 'bigint' },
      ],
    },
  ],
  foreignKeys: [
    { schema: S, child: 'notes', parent: 'kinds', columns: [['kind_id', 'id']], onDelete: 'SET NULL' },
    { schema: S, child: 'audit', parent: 'kinds', columns: [['kind_id', 'id']], onDelete: 'RESTRICT', notValid: true },
  ],
};

const callScript: ScriptSpec = {
  id: 4,
  description: 'a table and procedure calls',
  tables: [{
    schema: S, name: 'steps',
    columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'label', type: 'text' }],
  }],
  calls: [`call ${S}.log_step('first')`, `CALL ${S}.seed(3);`, `call ${S}.log_step('second')`],
};

/** Procedures the template holds before its tenants are created (tenants copy them). */
const TEMPLATE_PROCS = `
CREATE PROCEDURE mgttest.log_step(p_label text) LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.steps (label) VALUES (p_label); END $$;
CREATE PROCEDURE mgttest.seed(p_n int) LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.kinds (note) SELECT 'seed ' || g FROM generate_series(1, p_n) g; END $$;
CREATE PROCEDURE mgttest.bump() LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.iso_a (label) VALUES ('bumped'); END $$;`;

// ---------------------------------------------------------------------------------------------

describe('applyScripts: what a script leaves in the template and every tenant', () => {
  const TENANTS = ['apply_t1', 'apply_t2'];
  const TARGETS = [TPL, ...TENANTS];

  beforeAll(async () => {
    today = (await admin<{ d: string }>(`SELECT current_date::text AS d`))[0]!.d;
    await fresh(TENANTS, TEMPLATE_PROCS);
    await addScript(tablesScript);
    await addScript(addColumnScript);
    // The composite key is written by hand with keyorder 2 before keyorder 1: keyorder decides.
    await addScript(fkScript);
    await env.admin.query(`INSERT INTO admmgt.script_table_fkeys
        (scriptid, schemaname, childtablename, childcolumnname, parenttablename, parentcolumnname, keyorder, delrule, status)
      VALUES (3, 'mgttest', 'invoices', 'acc_no', 'accounts', 'no', 2, 'cascade', 1),
             (3, 'MgtTest', 'Invoices', 'acc_region', 'Accounts', 'region', 1, 'CASCADE', 1)`);
    await addScript(callScript);
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 1)');
  });

  it('brings the template and every tenant to the last script, in the registry and in the ledger', async () => {
    expect(await versions()).toEqual({ apply_tpl: 4, apply_t1: 4, apply_t2: 4 });
    for (const db of TARGETS) expect(await ledger(db)).toEqual([1, 2, 3, 4]);
    const runs = await admin('SELECT operation, targets, failed, finished_at IS NOT NULL AS finished FROM admmgt.runs WHERE operation = \'apply\'');
    expect(runs).toEqual([{ operation: 'apply', targets: 3, failed: 0, finished: true }]);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });

  it('creates a table with every column kind: types, NOT NULL, identity, defaults, primary key', async () => {
    for (const db of TARGETS) {
      const cols = await columns(db, 'kinds');
      expect(cols.map(({ name, type, notnull, identity }) => ({ name, type, notnull, identity }))).toEqual([
        { name: 'id', type: 'bigint', notnull: true, identity: 'd' },
        { name: 'amount', type: 'numeric(12,2)', notnull: true, identity: '' },
        { name: 'created_at', type: 'timestamp with time zone', notnull: true, identity: '' },
        { name: 'tags', type: 'text[]', notnull: false, identity: '' },
        { name: 'due', type: 'date', notnull: false, identity: '' },
        { name: 'note', type: 'character varying(200)', notnull: false, identity: '' },
        { name: 'flag', type: 'boolean', notnull: true, identity: '' },
        { name: 'price', type: 'double precision', notnull: false, identity: '' },
        { name: 'local_ts', type: 'timestamp(3) without time zone', notnull: false, identity: '' },
        { name: 'counts', type: 'integer[]', notnull: false, identity: '' },
        { name: 'extra', type: 'character varying(10)', notnull: true, identity: '' },
      ]);
      const def = Object.fromEntries(cols.map((c) => [c.name, c.def]));
      expect(def).toMatchObject({
        id: null, amount: '0', created_at: 'now()', flag: 'true', note: null, extra: "'x'::character varying",
      });
      expect(def.tags).toMatch(/^ARRAY\['new'::text\]/);
      expect(def.due).toMatch(/CURRENT_DATE \+ 30/);
      expect(await constraintDefs(db, 'kinds', 'p')).toEqual([{ name: 'kinds_pkey', def: 'PRIMARY KEY (id)', validated: true }]);
      const [{ rk }] = await env.queryIn<{ rk: string }>(db, `SELECT relkind::text AS rk FROM pg_class WHERE oid = 'mgttest.kinds'::regclass`) as [{ rk: string }];
      expect(rk).toBe('r');
    }
    // The DEFAULT expressions work: a row with only the identity filled in gets them.
    const [row] = await env.queryIn<{ amount: string; tags: string[]; flag: boolean; extra: string; due_ok: boolean }>('apply_t2',
      `INSERT INTO mgttest.kinds DEFAULT VALUES RETURNING amount, tags, flag, extra, due = current_date + 30 AS due_ok`);
    expect(row).toEqual({ amount: '0.00', tags: ['new'], flag: true, extra: 'x', due_ok: true });
    await env.queryIn('apply_t2', `DELETE FROM mgttest.kinds WHERE note IS NULL`);
  });

  it('creates LIST partitions named <table>_<value> and puts the partition key into the primary key', async () => {
    for (const db of TARGETS) {
      expect(await partKey(db, 'bylist')).toBe('LIST (region)');
      expect(await partitions(db, 'bylist')).toEqual([
        { name: 'bylist_ap_x', kind: 'r', bound: "FOR VALUES IN ('AP-x')" },
        { name: 'bylist_eu', kind: 'r', bound: "FOR VALUES IN ('eu')" },
        { name: 'bylist_us', kind: 'r', bound: "FOR VALUES IN ('us')" },
      ]);
      expect((await constraintDefs(db, 'bylist', 'p')).map((c) => c.def)).toEqual(['PRIMARY KEY (id, region)']);
    }
    // Rows are routed by value; a value without a partition is refused by PostgreSQL.
    await env.queryIn('apply_t1', `INSERT INTO mgttest.bylist (region) VALUES ('AP-x'), ('eu')`);
    expect(await env.queryIn('apply_t1', `SELECT tableoid::regclass::text AS t FROM mgttest.bylist ORDER BY 1`))
      .toEqual([{ t: 'mgttest.bylist_ap_x' }, { t: 'mgttest.bylist_eu' }]);
    await expect(env.queryIn('apply_t1', `INSERT INTO mgttest.bylist (region) VALUES ('cn')`)).rejects.toMatchObject({ code: '23514' });
    await env.queryIn('apply_t1', `DELETE FROM mgttest.bylist`);
  });

  it('creates the RANGE partition of the current month, quarter and year, named <table>_pYYYYMMDD', async () => {
    const m = period('month');
    const q = period('quarter');
    const y = period('year');
    for (const db of TARGETS) {
      expect(await partKey(db, 'bymonth')).toBe('RANGE (d)');
      expect(await partitions(db, 'bymonth')).toEqual([
        { name: `bymonth_p${m.tag}`, kind: 'r', bound: `FOR VALUES FROM ('${m.start}') TO ('${m.end}')` },
      ]);
      expect(await partitions(db, 'byquarter')).toEqual([
        { name: `byquarter_p${q.tag}`, kind: 'r', bound: `FOR VALUES FROM ('${q.start} 00:00:00') TO ('${q.end} 00:00:00')` },
      ]);
      const years = await partitions(db, 'byyear');
      expect(years.map((p) => p.name)).toEqual([`byyear_p${y.tag}`]);
      expect(years[0]!.bound).toMatch(new RegExp(`^FOR VALUES FROM \\('${y.start} 00:00:00[^)]*'\\) TO \\('${y.end} 00:00:00[^)]*'\\)$`));
      expect((await constraintDefs(db, 'bymonth', 'p')).map((c) => c.def)).toEqual(['PRIMARY KEY (id, d)']);
      expect((await constraintDefs(db, 'byquarter', 'p')).map((c) => c.def)).toEqual(['PRIMARY KEY (id, ts)']);
      expect((await constraintDefs(db, 'byyear', 'p')).map((c) => c.def)).toEqual(['PRIMARY KEY (id, tz)']);
    }
    // Today's row has a home.
    await env.queryIn('apply_t1', `INSERT INTO mgttest.bymonth (id, d) VALUES (1, current_date)`);
    await env.queryIn('apply_t1', `DELETE FROM mgttest.bymonth`);
  });

  it('creates LIST partitions with RANGE subpartitions named <table>_<value>_pYYYYMMDD', async () => {
    const m = period('month');
    const y = period('year');
    for (const db of TARGETS) {
      expect(await partKey(db, 'listrange')).toBe('LIST (kind)');
      expect(await partitions(db, 'listrange')).toEqual([
        { name: 'listrange_a', kind: 'r', bound: "FOR VALUES IN ('A')" },
        { name: 'listrange_x', kind: 'p', bound: "FOR VALUES IN ('X')" },
        { name: 'listrange_y', kind: 'p', bound: "FOR VALUES IN ('Y')" },
      ]);
      expect(await partKey(db, 'listrange_x')).toBe('RANGE (d)');
      expect(await partitions(db, 'listrange_x')).toEqual([
        { name: `listrange_x_p${m.tag}`, kind: 'r', bound: `FOR VALUES FROM ('${m.start}') TO ('${m.end}')` },
      ]);
      expect(await partitions(db, 'listrange_y')).toEqual([
        { name: `listrange_y_p${y.tag}`, kind: 'r', bound: `FOR VALUES FROM ('${y.start}') TO ('${y.end}')` },
      ]);
      expect((await constraintDefs(db, 'listrange', 'p')).map((c) => c.def)).toEqual(['PRIMARY KEY (id, kind, d)']);
    }
  });

  it('adds columns to tables of earlier scripts (ALTER TABLE ADD COLUMN), also to a partitioned one', async () => {
    for (const db of TARGETS) {
      const cols = await columns(db, 'bymonth');
      expect(cols.map((c) => `${c.name} ${c.type}${c.notnull ? ' not null' : ''}`)).toEqual(['id bigint not null', 'd date not null', 'qty smallint']);
      // The partition got the column as well.
      expect((await columns(db, `bymonth_p${period('month').tag}`)).map((c) => c.name)).toEqual(['id', 'd', 'qty']);
    }
  });

  it('creates foreign keys: composite in keyorder, ON DELETE CASCADE / SET NULL, NOT VALID', async () => {
    for (const db of TARGETS) {
      expect(await constraintDefs(db, 'accounts', 'p')).toEqual([{ name: 'accounts_pkey', def: 'PRIMARY KEY (region, no)', validated: true }]);
      expect(await constraintDefs(db, 'invoices', 'f')).toEqual([{
        name: 'invoices_accounts_fkey',
        def: 'FOREIGN KEY (acc_region, acc_no) REFERENCES mgttest.accounts(region, no) ON DELETE CASCADE',
        validated: true,
      }]);
      expect(await constraintDefs(db, 'notes', 'f')).toEqual([{
        name: 'notes_kinds_fkey', def: 'FOREIGN KEY (kind_id) REFERENCES mgttest.kinds(id) ON DELETE SET NULL', validated: true,
      }]);
      expect(await constraintDefs(db, 'audit', 'f')).toEqual([{
        name: 'audit_kinds_fkey', def: 'FOREIGN KEY (kind_id) REFERENCES mgttest.kinds(id) ON DELETE RESTRICT NOT VALID', validated: false,
      }]);
    }
    // The rules act: CASCADE deletes invoices, SET NULL clears notes.
    const db = 'apply_t1';
    await env.queryIn(db, `INSERT INTO mgttest.accounts VALUES ('eu', 1)`);
    await env.queryIn(db, `INSERT INTO mgttest.invoices (acc_region, acc_no) VALUES ('eu', 1)`);
    await expect(env.queryIn(db, `INSERT INTO mgttest.invoices (acc_region, acc_no) VALUES ('eu', 2)`)).rejects.toMatchObject({ code: '23503' });
    const [{ id: kindId }] = await env.queryIn<{ id: string }>(db, `SELECT min(id)::text AS id FROM mgttest.kinds`) as [{ id: string }];
    await env.queryIn(db, `INSERT INTO mgttest.notes (kind_id) VALUES ($1)`, [kindId]);
    await env.queryIn(db, `DELETE FROM mgttest.accounts`);
    expect(await env.queryIn(db, `SELECT count(*)::int AS n FROM mgttest.invoices`)).toEqual([{ n: 0 }]);
    await env.queryIn(db, `DELETE FROM mgttest.kinds WHERE id = $1`, [kindId]);
    expect(await env.queryIn(db, `SELECT kind_id FROM mgttest.notes`)).toEqual([{ kind_id: null }]);
  });

  it('runs the script_procs CALLs in order in every target, after the script\'s tables exist', async () => {
    for (const db of TARGETS) {
      expect(await env.queryIn(db, 'SELECT label FROM mgttest.steps ORDER BY id')).toEqual([{ label: 'first' }, { label: 'second' }]);
    }
    // seed(3) ran once per target (apply_t1 lost one row to the foreign key test above).
    expect(await env.queryIn(TPL, `SELECT count(*)::int AS n FROM mgttest.kinds WHERE note LIKE 'seed %'`)).toEqual([{ n: 3 }]);
    expect(await env.queryIn('apply_t2', `SELECT count(*)::int AS n FROM mgttest.kinds WHERE note LIKE 'seed %'`)).toEqual([{ n: 3 }]);
  });

  it('logs every statement of every script with the dbname of its target, the template first', async () => {
    const [{ run_id: runId }] = await admin<{ run_id: string }>('SELECT run_id FROM admmgt.runs WHERE operation = \'apply\'') as [{ run_id: string }];
    for (const db of TARGETS) {
      for (const id of [1, 2, 3, 4]) {
        const logged = await admin<{ commstat: string }>(
          `SELECT commstat FROM admmgt.script_log WHERE scriptid = $1 AND dbname = $2 AND outcome = 'ok' AND run_id = $3 ORDER BY id`,
          [id, db, runId]);
        const [{ batch }] = await admin<{ batch: string[] }>('SELECT admmgt.script_batch($1) AS batch', [id]) as [{ batch: string[] }];
        expect(logged.map((r) => r.commstat)).toEqual(batch);
      }
    }
    // What was logged is what ran: each CREATE TABLE in the log names a table the tenant has.
    const created = await admin<{ t: string }>(
      `SELECT DISTINCT substring(commstat FROM '^CREATE TABLE mgttest\\.(\\w+)') AS t FROM admmgt.script_log
        WHERE dbname = 'apply_t2' AND commstat LIKE 'CREATE TABLE mgttest.%'`);
    const have = (await tables('apply_t2')).map((t) => t.split(':')[0]);
    expect(created.map((r) => r.t).sort()).toEqual(have);
    // The template's statements come before any tenant's.
    const order = await admin<{ dbname: string }>(
      `SELECT dbname FROM admmgt.script_log WHERE operation = 'apply' GROUP BY dbname ORDER BY min(id)`);
    expect(order.map((r) => r.dbname)).toEqual(TARGETS);
    expect(await admin(`SELECT DISTINCT outcome FROM admmgt.script_log`)).toEqual([{ outcome: 'ok' }]);
  });

  it('marks each script and its rows applied (status 2) once every target has it', async () => {
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 2, 4: 2 });
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.scripts WHERE applied_at IS NULL OR last_error IS NOT NULL`)).toEqual([{ n: 0 }]);
    for (const t of ['script_tables', 'script_table_columns', 'script_table_fkeys', 'script_procs']) {
      expect(await admin(`SELECT DISTINCT status FROM admmgt.${t}`)).toEqual([{ status: 2 }]);
    }
  });

  it('says there is nothing to do when every target is current, and starts no run', async () => {
    env.notices.length = 0;
    const before = await runCount();
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
    expect(env.notices.join('\n')).toMatch(/nothing to do.*at version 4/);
    expect(await runCount()).toBe(before);
    expect(await versions()).toEqual({ apply_tpl: 4, apply_t1: 4, apply_t2: 4 });
  });

  it('touches no tenant when there is nothing to do, not even one whose database is gone', async () => {
    // A registered, current tenant without a database: any connection to it would fail the call.
    await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion) VALUES ('apply_ghost', 2, 4)`);
    try {
      await env.admin.query('CALL admmgt.applyScripts()');
      expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE dbname = 'apply_ghost'`)).toEqual([{ n: 0 }]);
    } finally {
      await admin(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'apply_ghost'`);
    }
  });

  it('refuses a CALL inside a transaction block (SQLSTATE 25001) and touches nothing', async () => {
    await addScript({ id: 5, description: 'never in a block', tables: [{ schema: S, name: 'inblock', columns: [{ name: 'id', type: 'int' }] }] });
    const before = await runCount();
    // As in psql: BEGIN, then the CALL a moment later.
    await env.admin.query('BEGIN; SELECT pg_sleep(1.1)');
    const err = await adminError('CALL admmgt.applyScripts()');
    await env.admin.query('ROLLBACK');
    expect(err.code).toBe('25001');
    expect(err.message).toMatch(/applyScripts cannot run inside a transaction block/);
    expect(await runCount()).toBe(before);
    expect(await hasTable(TPL, 'inblock')).toBe(false);
  });

  it('runs a CALL sent with the extended query protocol (bound parameters), which is no transaction block', async () => {
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => $1)', [2]);
    expect(await hasTable(TPL, 'inblock')).toBe(true);
    expect(await versions()).toEqual({ apply_tpl: 5, apply_t1: 5, apply_t2: 5 });
  });
});

describe('applyScripts: the template is the canary', () => {
  beforeAll(async () => {
    await fresh(['apply_c1', 'apply_c2']);
    await addScript({ id: 1, description: 'fine', tables: [{ schema: S, name: 'can1', columns: [{ name: 'id', type: 'int' }] }] });
    await addScript({
      id: 2, description: 'calls a procedure nobody has',
      tables: [{ schema: S, name: 'can2', columns: [{ name: 'id', type: 'int' }] }],
      calls: [`call ${S}.nope()`],
    });
    await addScript({ id: 3, description: 'waits behind 2', tables: [{ schema: S, name: 'can3', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
  });

  it('marks a script that fails on the template failed (status 3) with last_error; later scripts stay ready', async () => {
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 3, 3: 1 });
    const [s2] = await admin<{ last_error: string }>('SELECT last_error FROM admmgt.scripts WHERE id = 2');
    expect(s2!.last_error).toMatch(/procedure mgttest\.nope\(\) does not exist \(SQLSTATE 42883\) at: call mgttest\.nope\(\)/);
    expect(await admin('SELECT operation, scriptid, dbname, sqlstate, statement FROM admmgt.failures')).toEqual([
      { operation: 'apply', scriptid: 2, dbname: TPL, sqlstate: '42883', statement: 'call mgttest.nope()' },
    ]);
  });

  it('leaves the template at the last good script with none of the failed script\'s objects', async () => {
    expect(await tables(TPL)).toEqual(['can1:r']);
    expect(await ledger(TPL)).toEqual([1]);
    expect((await versions())[TPL]).toBe(1);
  });

  it('touches no tenant with the failed script or the ones after it', async () => {
    for (const db of ['apply_c1', 'apply_c2']) {
      expect(await tables(db)).toEqual(['can1:r']);
      expect(await ledger(db)).toEqual([1]);
    }
    expect(await versions()).toEqual({ [TPL]: 1, apply_c1: 1, apply_c2: 1 });
    expect(await admin(`SELECT DISTINCT dbname FROM admmgt.script_log WHERE scriptid IN (2, 3) ORDER BY 1`)).toEqual([{ dbname: TPL }]);
  });

  it('on the next run says why the ready scripts wait and does nothing', async () => {
    env.notices.length = 0;
    const before = await runCount();
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(env.notices.join('\n')).toMatch(/script 2 has status 3 \(failed\), so the ready scripts after it wait/);
    expect(env.notices.join('\n')).toMatch(/nothing to do/);
    expect(await runCount()).toBe(before);
    expect(await hasTable(TPL, 'can3')).toBe(false);
  });

  it('applies the repaired script and the waiting one once the failed one is set ready again', async () => {
    await env.admin.query(`DELETE FROM admmgt.script_procs WHERE scriptid = 2`);
    await env.admin.query(`UPDATE admmgt.scripts SET status = 1 WHERE id = 2`);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 2 });
    expect(await admin('SELECT last_error FROM admmgt.scripts WHERE id = 2')).toEqual([{ last_error: null }]);
    for (const db of [TPL, 'apply_c1', 'apply_c2']) {
      expect(await tables(db)).toEqual(['can1:r', 'can2:r', 'can3:r']);
      expect(await ledger(db)).toEqual([1, 2, 3]);
    }
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });
});

describe('applyScripts: a failing tenant fails alone and atomically; a rerun finishes only it', () => {
  const TENANTS = ['apply_i1', 'apply_i2', 'apply_i3'];

  const isoScript: ScriptSpec = {
    id: 1,
    description: 'three steps; the second collides in apply_i2',
    tables: [
      { schema: S, name: 'iso_a', columns: [{ name: 'id', type: 'bigint', identity: true, primaryKey: true }, { name: 'label', type: 'text' }] },
      { schema: S, name: 'iso', columns: [{ name: 'id', type: 'int', primaryKey: true }] },
    ],
    calls: [`call ${S}.bump()`],
  };

  beforeAll(async () => {
    await fresh(TENANTS, TEMPLATE_PROCS);
    await env.queryIn('apply_i2', `CREATE TABLE mgttest.iso (something text)`);
    await addScript(isoScript);
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
  });

  it('brings the other tenants to the new version and keeps the failing one at the old one', async () => {
    expect(await versions()).toEqual({ [TPL]: 1, apply_i1: 1, apply_i2: 0, apply_i3: 1 });
    for (const db of [TPL, 'apply_i1', 'apply_i3']) {
      expect(await tables(db)).toEqual(['iso:r', 'iso_a:r']);
      expect(await env.queryIn(db, 'SELECT label FROM mgttest.iso_a')).toEqual([{ label: 'bumped' }]);
      expect(await ledger(db)).toEqual([1]);
    }
    // One run: the template and three tenants, one of them failed.
    expect(await admin(`SELECT operation, targets, failed FROM admmgt.runs WHERE operation = 'apply'`)).toEqual([{ operation: 'apply', targets: 4, failed: 1 }]);
  });

  it('leaves none of the script\'s objects in the failing tenant: the statements before the error are rolled back', async () => {
    expect(await tables('apply_i2')).toEqual(['iso:r']);
    expect((await columns('apply_i2', 'iso')).map((c) => c.name)).toEqual(['something']);
    expect(await ledger('apply_i2')).toEqual([]);
    expect(await env.queryIn('apply_i2', `SELECT to_regclass('admmgt.applied_scripts') AS t`)).toEqual([{ t: null }]);
  });

  it('records the tenant\'s error (sqlstate, message, statement) in admmgt.failures and script_log', async () => {
    const failures = await admin('SELECT operation, scriptid, dbname, sqlstate, message, statement FROM admmgt.failures');
    expect(failures).toEqual([{
      operation: 'apply', scriptid: 1, dbname: 'apply_i2', sqlstate: '42P07',
      message: 'relation "iso" already exists',
      statement: expect.stringMatching(/^CREATE TABLE mgttest\.iso \(/),
    }]);
    const logged = await admin(`SELECT dbname, outcome, sqlstate, commstat FROM admmgt.script_log WHERE outcome <> 'ok'`);
    expect(logged).toEqual([{ dbname: 'apply_i2', outcome: 'error', sqlstate: '42P07', commstat: failures[0]!.statement }]);
    expect(env.notices.join('\n')).toMatch(/WARNING: admmgt apply: apply_i2 failed: relation "iso" already exists/);
  });

  it('keeps the script ready (status 1) while a tenant lacks it', async () => {
    expect(await scriptStatus()).toEqual({ 1: 1 });
    expect(await admin('SELECT DISTINCT status FROM admmgt.script_tables')).toEqual([{ status: 1 }]);
  });

  it('after the conflict is removed, a rerun applies the script to that tenant only, once', async () => {
    await env.queryIn('apply_i2', 'DROP TABLE mgttest.iso');
    const [{ last }] = await admin<{ last: string }>('SELECT max(id)::text AS last FROM admmgt.script_log') as [{ last: string }];
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
    expect(await versions()).toEqual({ [TPL]: 1, apply_i1: 1, apply_i2: 1, apply_i3: 1 });
    expect(await admin(`SELECT DISTINCT dbname, outcome FROM admmgt.script_log WHERE id > $1`, [last]))
      .toEqual([{ dbname: 'apply_i2', outcome: 'ok' }]);
    for (const db of [TPL, ...TENANTS]) {
      expect(await tables(db)).toEqual(['iso:r', 'iso_a:r']);
      expect(await ledger(db)).toEqual([1]);
      // bump() ran exactly once everywhere.
      expect(await env.queryIn(db, 'SELECT count(*)::int AS n FROM mgttest.iso_a')).toEqual([{ n: 1 }]);
    }
    expect(await scriptStatus()).toEqual({ 1: 2 });
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await admin(`SELECT ok FROM admmgt.target_results WHERE dbname = 'apply_i2' AND operation = 'apply'`)).toEqual([{ ok: true }]);
  });

  it('trusts the tenant-side ledger: a tenant set back in the registry is recognized as already applied', async () => {
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET scriptversion = 0 WHERE dbname = 'apply_i1'`);
    const [{ last }] = await admin<{ last: string }>('SELECT max(id)::text AS last FROM admmgt.script_log') as [{ last: string }];
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(env.notices.filter((n) => n.startsWith('WARNING'))).toEqual([]);
    expect(await admin(`SELECT scriptid, dbname, outcome, sqlstate, commstat FROM admmgt.script_log WHERE id > $1`, [last])).toEqual([
      { scriptid: 1, dbname: 'apply_i1', outcome: 'already applied', sqlstate: null, commstat: 'INSERT INTO admmgt.applied_scripts (scriptid) VALUES (1)' },
    ]);
    expect((await versions()).apply_i1).toBe(1);
    expect(await env.queryIn('apply_i1', 'SELECT count(*)::int AS n FROM mgttest.iso_a')).toEqual([{ n: 1 }]);
    expect(await ledger('apply_i1')).toEqual([1]);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });
  it('stops a tenant at the last script that committed when a later one fails there, and tries nothing after it', async () => {
    await env.queryIn('apply_i3', `CREATE TABLE mgttest.iso3 (x int)`);
    await addScript({ id: 2, description: 'fine everywhere', tables: [{ schema: S, name: 'iso2', columns: [{ name: 'id', type: 'int' }] }] });
    await addScript({ id: 3, description: 'collides in apply_i3', tables: [{ schema: S, name: 'iso3', columns: [{ name: 'id', type: 'int' }] }] });
    await addScript({ id: 4, description: 'after the collision', tables: [{ schema: S, name: 'iso4', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 2)');
    expect(await versions()).toEqual({ [TPL]: 4, apply_i1: 4, apply_i2: 4, apply_i3: 2 });
    expect(await ledger('apply_i3')).toEqual([1, 2]);
    expect(await tables('apply_i3')).toEqual(['iso:r', 'iso2:r', 'iso3:r', 'iso_a:r']);
    expect((await columns('apply_i3', 'iso3')).map((c) => c.name)).toEqual(['x']);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE dbname = 'apply_i3' AND scriptid = 4`)).toEqual([{ n: 0 }]);
    expect(await admin('SELECT scriptid, dbname, sqlstate FROM admmgt.failures')).toEqual([{ scriptid: 3, dbname: 'apply_i3', sqlstate: '42P07' }]);
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 1, 4: 1 });
    for (const db of [TPL, 'apply_i1', 'apply_i2']) expect(await ledger(db)).toEqual([1, 2, 3, 4]);
  });
});

describe('applyScripts: a registered tenant whose database is missing', () => {
  beforeAll(async () => {
    await fresh(['apply_g1']);
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion) VALUES ('apply_ghost', 2, 0)`);
    await addScript({ id: 1, description: 'g', tables: [{ schema: S, name: 'g1', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
  });

  it('fails that tenant alone with a connection error and keeps the script ready', async () => {
    expect(await versions()).toEqual({ [TPL]: 1, apply_g1: 1, apply_ghost: 0 });
    const [f] = await admin<{ dbname: string; sqlstate: string; message: string; detail: string; statement: string | null }>(
      'SELECT dbname, sqlstate, message, detail, statement FROM admmgt.failures');
    expect(f).toMatchObject({ dbname: 'apply_ghost', statement: null });
    expect(f!.sqlstate).toMatch(/^08/);
    expect(f!.message).toMatch(/^server local, database apply_ghost: could not establish connection: .*database "apply_ghost" does not exist/);
    expect(f!.detail).toMatch(/database "apply_ghost" does not exist/);
    expect(await admin(`SELECT commstat, outcome FROM admmgt.script_log WHERE dbname = 'apply_ghost'`)).toEqual([{ commstat: 'connect', outcome: 'error' }]);
    expect(await scriptStatus()).toEqual({ 1: 1 });
    expect(await env.databases()).not.toContain('apply_ghost');
  });

  it('no longer holds the script back once the tenant is marked deleted', async () => {
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET deleted = true, deletedon = now() WHERE dbname = 'apply_ghost'`);
    env.notices.length = 0;
    const before = await runCount();
    await env.admin.query('CALL admmgt.applyScripts()');
    // Nothing left to run: the call says so, and the script stays ready until a run marks it.
    expect(env.notices.join('\n')).toMatch(/nothing to do/);
    expect(await runCount()).toBe(before);
    await addScript({ id: 2, description: 'g2', tables: [{ schema: S, name: 'g2', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2 });
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE dbname = 'apply_ghost' AND scriptid = 2`)).toEqual([{ n: 0 }]);
  });
});

describe('applyScripts: a script added below the template\'s version', () => {
  beforeAll(async () => {
    await fresh(['apply_o1']);
    for (const id of [1, 3]) {
      await addScript({ id, description: `o${id}`, tables: [{ schema: S, name: `o${id}`, columns: [{ name: 'id', type: 'int' }] }] });
    }
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 3, apply_o1: 3 });
  });

  it('is refused, naming the script, instead of being marked applied without running anywhere', async () => {
    await addScript({ id: 2, description: 'late', tables: [{ schema: S, name: 'o2', columns: [{ name: 'id', type: 'int' }] }] });
    await addScript({ id: 4, description: 'next', tables: [{ schema: S, name: 'o4', columns: [{ name: 'id', type: 'int' }] }] });
    const before = await runCount();
    const err = await adminError('CALL admmgt.applyScripts()');
    expect(err.code).toBe('55000');
    expect(err.message).toBe('admmgt: admmgt.scripts id 2 is ready, but the template is already at version 3 and never ran it');
    expect(err.hint).toMatch(/id above 3/);
    expect((await adminError('SELECT * FROM admmgt.plan_scripts()')).code).toBe('55000');
    expect(await runCount()).toBe(before);
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 1, 3: 2, 4: 1 });
    for (const db of [TPL, 'apply_o1']) {
      expect(await tables(db)).toEqual(['o1:r', 'o3:r']);
      expect(await ledger(db)).toEqual([1, 3]);
    }
  });

  it('goes on once the late script is given an id above the template\'s version', async () => {
    await deleteScript(2);
    await addScript({ id: 5, description: 'late, renumbered', tables: [{ schema: S, name: 'o2', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 3: 2, 4: 2, 5: 2 });
    for (const db of [TPL, 'apply_o1']) {
      expect(await tables(db)).toEqual(['o1:r', 'o2:r', 'o3:r', 'o4:r']);
      expect(await ledger(db)).toEqual([1, 3, 4, 5]);
    }
  });
});

describe('applyScripts: one connection per target per run', () => {
  it('opens one connection into a tenant for all the scripts it takes in a run', async () => {
    await fresh(['apply_c1']);
    for (const id of [1, 2, 3]) {
      await addScript({ id, description: `c${id}`, tables: [{ schema: S, name: `c${id}`, columns: [{ name: 'id', type: 'int' }] }] });
    }
    const sessions = async (): Promise<number> => {
      await env.admin.query('SELECT pg_stat_clear_snapshot()');
      const [row] = await admin<{ n: string }>(`SELECT sessions::text AS n FROM pg_stat_database WHERE datname = 'apply_c1'`);
      return Number(row?.n ?? 0);
    };
    const settled = async (): Promise<number> => {
      // A session is counted when it ends: wait until the count stops moving.
      let last = await sessions();
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const now = await sessions();
        if (now === last) return now;
        last = now;
      }
      return last;
    };
    const before = await settled();
    await env.admin.query('CALL admmgt.applyScripts()');
    // The run's connection has been closed; its backend reports the session as it exits.
    for (let i = 0; i < 80 && (await sessions()) === before; i++) await new Promise((r) => setTimeout(r, 50));
    const after = await settled();
    expect(after - before).toBe(1);
    expect(await ledger('apply_c1')).toEqual([1, 2, 3]);
  });
});

describe('applyScripts: a tenant whose table is locked', () => {
  it('gives up after admmgt.lock_timeout with 55P03, leaves the tenant as it was, and a rerun finishes it', async () => {
    await fresh(['apply_l1', 'apply_l2']);
    await addScript({ id: 1, description: 'l1', tables: [{ schema: S, name: 'busy', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    await addScript({ id: 2, description: 'l2', addColumns: [{ schema: S, table: 'busy', column: { name: 'v', type: 'text' } }] });
    const holder = new pg.Client({ connectionString: env.urlFor('apply_l2') });
    await holder.connect();
    try {
      await holder.query(`BEGIN; LOCK TABLE ${S}.busy IN ACCESS SHARE MODE`);
      await env.admin.query(`SET admmgt.lock_timeout = '200ms'`);
      await env.admin.query('CALL admmgt.applyScripts()');
      expect(await versions()).toEqual({ [TPL]: 2, apply_l1: 2, apply_l2: 1 });
      expect(await admin('SELECT dbname, sqlstate FROM admmgt.failures')).toEqual([{ dbname: 'apply_l2', sqlstate: '55P03' }]);
      expect((await columns('apply_l2', 'busy')).map((c) => c.name)).toEqual(['id']);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await env.admin.query('RESET admmgt.lock_timeout');
    }
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 2, apply_l1: 2, apply_l2: 2 });
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });
});

describe('applyScripts: a script a lagging tenant needs is no longer ready', () => {
  it('stops the tenant before that script, says so, and never skips it', async () => {
    await fresh(['apply_g1']);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = 'apply_g1'`);
    for (const id of [1, 2, 3]) {
      await addScript({ id, description: `g${id}`, tables: [{ schema: S, name: `g${id}`, columns: [{ name: 'id', type: 'int' }] }] });
    }
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 3, apply_g1: 0 });
    // Script 2 is taken back to be edited while apply_g1 still needs it.
    await env.admin.query(`UPDATE admmgt.scripts SET status = 0 WHERE id = 2`);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = true WHERE dbname = 'apply_g1'`);
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 3, apply_g1: 1 });
    expect(await ledger('apply_g1')).toEqual([1]);
    expect(env.notices.join('\n')).toMatch(/WARNING: admmgt apply: script 2 has status 0 but tenants below it still need it/);
    // Ready again: the tenant takes 2, then 3.
    await env.admin.query(`UPDATE admmgt.scripts SET status = 1 WHERE id = 2`);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 3, apply_g1: 3 });
    expect(await ledger('apply_g1')).toEqual([1, 2, 3]);
  });
});

describe('applyScripts: a tenant with updateflag = false', () => {
  beforeAll(async () => {
    await fresh(['apply_u1', 'apply_u2']);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = 'apply_u2'`);
    await addScript({ id: 1, description: 'u one', tables: [{ schema: S, name: 'u1', columns: [{ name: 'id', type: 'int' }] }] });
    await addScript({
      id: 2, description: 'u two', tables: [{ schema: S, name: 'u2', columns: [{ name: 'id', type: 'int' }] }],
      addColumns: [{ schema: S, table: 'u1', column: { name: 'v', type: 'text' } }],
    });
    await env.admin.query('CALL admmgt.applyScripts()');
  });

  it('is skipped and does not hold the scripts back (they reach status 2)', async () => {
    expect(await versions()).toEqual({ [TPL]: 2, apply_u1: 2, apply_u2: 0 });
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2 });
    expect(await tables('apply_u2')).toEqual([]);
    expect(await ledger('apply_u2')).toEqual([]);
    expect(await tables('apply_u1')).toEqual(['u1:r', 'u2:r']);
  });

  it('set back to true, is brought up by the next run through every script in order', async () => {
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = true WHERE dbname = 'apply_u2'`);
    const [{ last }] = await admin<{ last: string }>('SELECT max(id)::text AS last FROM admmgt.script_log') as [{ last: string }];
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 2, apply_u1: 2, apply_u2: 2 });
    expect(await tables('apply_u2')).toEqual(['u1:r', 'u2:r']);
    expect((await columns('apply_u2', 'u1')).map((c) => c.name)).toEqual(['id', 'v']);
    expect(await ledger('apply_u2')).toEqual([1, 2]);
    const log = await admin<{ scriptid: number; dbname: string }>(
      `SELECT scriptid, dbname FROM admmgt.script_log WHERE id > $1 ORDER BY id`, [last]);
    expect(new Set(log.map((r) => r.dbname))).toEqual(new Set(['apply_u2']));
    const order = log.map((r) => r.scriptid);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(new Set(order)).toEqual(new Set([1, 2]));
  });
});

describe('plan_scripts: statements per target, nothing executed', () => {
  beforeAll(async () => {
    await fresh(['apply_p1', 'apply_p2']);
    await addScript({ id: 1, description: 'p one', tables: [{ schema: S, name: 'p1', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = 'apply_p2'`);
    await addScript({
      id: 2, description: 'p two',
      tables: [{ schema: S, name: 'planned', columns: [{ name: 'id', type: 'int', primaryKey: true }], partitions: [{ column: 'id', type: 'list', value: '1' }] }],
      calls: [`call ${S}.whatever()`],
    });
  });

  it('lists each target with the statements it would run, the template first', async () => {
    const before = await runCount();
    const plan = await admin<{ dbname: string; scriptid: number; seq: number; stmt: string }>('SELECT * FROM admmgt.plan_scripts()');
    expect([...new Set(plan.map((p) => `${p.dbname}:${p.scriptid}`))]).toEqual([`${TPL}:2`, 'apply_p1:2']);
    const [{ batch }] = await admin<{ batch: string[] }>('SELECT admmgt.script_batch(2) AS batch') as [{ batch: string[] }];
    for (const db of [TPL, 'apply_p1']) {
      const rows = plan.filter((p) => p.dbname === db);
      expect(rows.map((p) => p.seq)).toEqual(batch.map((_, i) => i + 1));
      expect(rows.map((p) => p.stmt)).toEqual(batch);
    }
    expect(plan.some((p) => p.stmt.startsWith('CREATE TABLE mgttest.planned_1 PARTITION OF mgttest.planned'))).toBe(true);
    expect(plan.some((p) => p.stmt === 'call mgttest.whatever()')).toBe(true);
    // Nothing ran: no table, no run, no log, versions unchanged.
    for (const db of [TPL, 'apply_p1']) {
      expect(await hasTable(db, 'planned')).toBe(false);
      expect(await ledger(db)).toEqual([1]);
    }
    expect(await runCount()).toBe(before);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE scriptid = 2`)).toEqual([{ n: 0 }]);
    expect(await versions()).toEqual({ [TPL]: 1, apply_p1: 1, apply_p2: 1 });
  });

  it('is empty when nothing is ready', async () => {
    await env.admin.query(`UPDATE admmgt.scripts SET status = 0 WHERE id = 2`);
    expect(await admin('SELECT * FROM admmgt.plan_scripts()')).toEqual([]);
    await env.admin.query(`UPDATE admmgt.scripts SET status = 1 WHERE id = 2`);
  });
});

describe('applyScripts: bad script rows are refused before any target is touched', () => {
  beforeAll(async () => {
    await fresh(['apply_b1']);
  });

  type Case = { what: string; spec: ScriptSpec; row: string; code: string; message: RegExp; patch?: string };
  const base = (extra: Partial<ScriptSpec>): ScriptSpec => ({ id: 2, description: 'bad', ...extra });
  const table = (columns: ColumnSpec[], partitions?: PartitionSpec[]): TableSpec => ({ schema: S, name: 'bad_t', columns, partitions });
  const cases: Case[] = [
    { what: 'a column name with a space', spec: base({ tables: [table([{ name: 'bad name', type: 'int' }])] }),
      row: 'script_table_columns', code: '42602', message: /invalid column name 'bad name'/ },
    { what: 'a data type with a second statement', spec: base({ tables: [table([{ name: 'c', type: 'int; drop table x' }])] }),
      row: 'script_table_columns', code: '22023', message: /invalid data type 'int; drop table x'/ },
    { what: 'a default that closes its statement', spec: base({ tables: [table([{ name: 'c', type: 'int', default: '0); drop table x; --' }])] }),
      row: 'script_table_columns', code: '42601', message: /invalid default '0\); drop table x; --'/ },
    { what: 'an unknown partition type', spec: base({ tables: [table([{ name: 'c', type: 'int' }], [{ column: 'c', type: 'hash' as 'list', value: '4' }])] }),
      row: 'script_table_partitions', code: '22023', message: /unknown partition type 'hash'/ },
    { what: 'an unknown range interval', spec: base({ tables: [table([{ name: 'c', type: 'date' }], [{ column: 'c', type: 'range', value: 'fortnight' }])] }),
      row: 'script_table_partitions', code: '22023', message: /unknown range interval 'fortnight'/ },
    { what: 'a foreign key to a column no script defines',
      spec: base({ tables: [table([{ name: 'c', type: 'int' }])], foreignKeys: [{ schema: S, child: 'bad_t', parent: 'good', columns: [['c', 'nosuch']] }] }),
      row: 'script_table_fkeys', code: '42703', message: /references mgttest\.bad_t \(c\) -> mgttest\.good \(nosuch\), which scripts up to 2 do not define/ },
    { what: 'a call with a second statement', spec: base({ calls: [`call ${S}.p(); drop table x`] }),
      row: 'script_procs', code: '42601', message: /invalid call/ },
    // E'\'' is a whole string to PostgreSQL, so a scanner that knows only '' would let the ; through.
    { what: "a call that hides a statement behind E'\\''", spec: base({ calls: [`call ${S}.p(E'\\''); drop table x; --')`] }),
      row: 'script_procs', code: '42601', message: /it contains a backslash/ },
    { what: "a default that hides a statement behind E'\\''", spec: base({ tables: [table([{ name: 'c', type: 'text', default: "E'\\'' ; drop table x ; --'" }])] }),
      row: 'script_table_columns', code: '42601', message: /it contains a backslash/ },
    { what: 'a data type that carries a constraint', spec: base({ tables: [table([{ name: 'c', type: 'int references mgttest.good' }])] }),
      row: 'script_table_columns', code: '22023', message: /invalid data type 'int references mgttest.good'/ },
    { what: 'a table in a system schema', spec: base({ tables: [{ schema: 'pg_catalog', name: 'bad_t', columns: [{ name: 'c', type: 'int' }] }] }),
      row: 'script_tables', code: '42939', message: /names the reserved schema pg_catalog/ },
  ];

  it.each(cases)('refuses $what, naming the row, and changes nothing', async ({ spec, row, code, message }) => {
    // Script 1 is fine and ready: it must not run either, because script 2 is refused first.
    await addScript({ id: 1, description: 'good', tables: [{ schema: S, name: 'good', columns: [{ name: 'id', type: 'int', primaryKey: true }] }] });
    await addScript(spec);
    const [{ ids }] = await admin<{ ids: string[] }>(
      `SELECT array_agg(id::text ORDER BY id) AS ids FROM admmgt.${row}
        WHERE ${row === 'script_table_partitions' ? 'tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = 2)' : 'scriptid = 2'}`) as [{ ids: string[] }];
    const before = await runCount();
    try {
      const err = await adminError('CALL admmgt.applyScripts()');
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
      expect(err.message).toContain(`admmgt.${row} id ${ids[0]}`);
      expect(err.hint).toBeTruthy();
      expect(await tables(TPL)).toEqual([]);
      expect(await tables('apply_b1')).toEqual([]);
      expect(await ledger(TPL)).toEqual([]);
      expect(await runCount()).toBe(before);
      expect(await versions()).toEqual({ [TPL]: null, apply_b1: 0 });
      expect(await scriptStatus()).toEqual({ 1: 1, 2: 1 });
      // plan_scripts refuses it the same way.
      const planErr = await adminError('SELECT * FROM admmgt.plan_scripts()');
      expect(planErr.message).toContain(`admmgt.${row} id ${ids[0]}`);
    } finally {
      await deleteScript(2);
      await deleteScript(1);
    }
  });

  it('applies the good script once the bad one is gone', async () => {
    await addScript({ id: 1, description: 'good', tables: [{ schema: S, name: 'good', columns: [{ name: 'id', type: 'int', primaryKey: true }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await tables(TPL)).toEqual(['good:r']);
    expect(await tables('apply_b1')).toEqual(['good:r']);
    expect(await versions()).toEqual({ [TPL]: 1, apply_b1: 1 });
  });
});
