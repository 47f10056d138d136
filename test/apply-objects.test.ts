// CALL admmgt.applyScripts() against real template and tenant databases: what each script leaves in
// the catalogs of every target (column kinds, LIST and RANGE partitions, added columns, foreign keys,
// procedure calls), what admmgt logs and records, and when a call does nothing or is refused.
// Every database of this file starts with applyobj_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S, TEMPLATE_PROCS } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applyobj_tpl';
const { admin, adminError, fresh, scriptStatus, runCount, tables, hasTable, ledger, columns } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applyobj');
});
afterAll(async () => {
  await env?.close();
});

/** Direct partitions of a table with their bounds. */
const partitions = (db: string, parent: string) => env.partitions(db, `mgttest.${parent}`);

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

describe('applyScripts: what a script leaves in the template and every tenant', () => {
  const TENANTS = ['applyobj_t1', 'applyobj_t2'];
  const TARGETS = [TPL, ...TENANTS];

  beforeAll(async () => {
    today = (await admin<{ d: string }>(`SELECT current_date::text AS d`))[0]!.d;
    await fresh(TENANTS, TEMPLATE_PROCS);
    await env.addScript(tablesScript);
    await env.addScript(addColumnScript);
    // The composite key is written by hand with keyorder 2 before keyorder 1: keyorder decides.
    await env.addScript(fkScript);
    await env.admin.query(`INSERT INTO admmgt.script_table_fkeys
        (scriptid, schemaname, childtablename, childcolumnname, parenttablename, parentcolumnname, keyorder, delrule, status)
      VALUES (3, 'mgttest', 'invoices', 'acc_no', 'accounts', 'no', 2, 'cascade', 1),
             (3, 'MgtTest', 'Invoices', 'acc_region', 'Accounts', 'region', 1, 'CASCADE', 1)`);
    await env.addScript(callScript);
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 1)');
  });

  it('brings the template and every tenant to the last script, in the registry and in the ledger', async () => {
    expect(await env.versions()).toEqual({ applyobj_tpl: 4, applyobj_t1: 4, applyobj_t2: 4 });
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
    const [row] = await env.queryIn<{ amount: string; tags: string[]; flag: boolean; extra: string; due_ok: boolean }>('applyobj_t2',
      `INSERT INTO mgttest.kinds DEFAULT VALUES RETURNING amount, tags, flag, extra, due = current_date + 30 AS due_ok`);
    expect(row).toEqual({ amount: '0.00', tags: ['new'], flag: true, extra: 'x', due_ok: true });
    await env.queryIn('applyobj_t2', `DELETE FROM mgttest.kinds WHERE note IS NULL`);
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
    await env.queryIn('applyobj_t1', `INSERT INTO mgttest.bylist (region) VALUES ('AP-x'), ('eu')`);
    expect(await env.queryIn('applyobj_t1', `SELECT tableoid::regclass::text AS t FROM mgttest.bylist ORDER BY 1`))
      .toEqual([{ t: 'mgttest.bylist_ap_x' }, { t: 'mgttest.bylist_eu' }]);
    await expect(env.queryIn('applyobj_t1', `INSERT INTO mgttest.bylist (region) VALUES ('cn')`)).rejects.toMatchObject({ code: '23514' });
    await env.queryIn('applyobj_t1', `DELETE FROM mgttest.bylist`);
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
    await env.queryIn('applyobj_t1', `INSERT INTO mgttest.bymonth (id, d) VALUES (1, current_date)`);
    await env.queryIn('applyobj_t1', `DELETE FROM mgttest.bymonth`);
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
    const db = 'applyobj_t1';
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
    // seed(3) ran once per target (applyobj_t1 lost one row to the foreign key test above).
    expect(await env.queryIn(TPL, `SELECT count(*)::int AS n FROM mgttest.kinds WHERE note LIKE 'seed %'`)).toEqual([{ n: 3 }]);
    expect(await env.queryIn('applyobj_t2', `SELECT count(*)::int AS n FROM mgttest.kinds WHERE note LIKE 'seed %'`)).toEqual([{ n: 3 }]);
  });

  it('logs every statement of every script with the dbname of its target, one row per target and script, the template first', async () => {
    const [{ run_id: runId }] = await admin<{ run_id: string }>('SELECT run_id FROM admmgt.runs WHERE operation = \'apply\'') as [{ run_id: string }];
    for (const db of TARGETS) {
      for (const id of [1, 2, 3, 4]) {
        const logged = await admin<{ commstat: string }>(
          `SELECT commstat FROM admmgt.script_log WHERE scriptid = $1 AND dbname = $2 AND outcome = 'ok' AND run_id = $3 ORDER BY id`,
          [id, db, runId]);
        const [{ batch }] = await admin<{ batch: string[] }>('SELECT admmgt.script_batch($1) AS batch', [id]) as [{ batch: string[] }];
        // One row: the batch's statements in the order they ran, as the executor joined them.
        expect(logged.map((r) => r.commstat)).toEqual([batch.join(';\n')]);
      }
    }
    // What was logged is what ran: each CREATE TABLE in the log names a table the tenant has.
    const created = await admin<{ t: string }>(
      `SELECT DISTINCT m[1] AS t FROM admmgt.script_log, regexp_matches(commstat, '(?:^|;\n)CREATE TABLE mgttest\\.(\\w+)', 'g') AS m
        WHERE dbname = 'applyobj_t2'`);
    const have = (await tables('applyobj_t2')).map((t) => t.split(':')[0]);
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
    expect(await env.versions()).toEqual({ applyobj_tpl: 4, applyobj_t1: 4, applyobj_t2: 4 });
  });

  it('touches no tenant when there is nothing to do, not even one whose database is gone', async () => {
    // A registered, current tenant without a database: any connection to it would fail the call.
    await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion) VALUES ('applyobj_ghost', 2, 4)`);
    try {
      await env.admin.query('CALL admmgt.applyScripts()');
      expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE dbname = 'applyobj_ghost'`)).toEqual([{ n: 0 }]);
    } finally {
      await admin(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'applyobj_ghost'`);
    }
  });

  it('refuses a CALL inside a transaction block (SQLSTATE 25001) and touches nothing', async () => {
    await env.addScript({ id: 5, description: 'never in a block', tables: [{ schema: S, name: 'inblock', columns: [{ name: 'id', type: 'int' }] }] });
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
    expect(await env.versions()).toEqual({ applyobj_tpl: 5, applyobj_t1: 5, applyobj_t2: 5 });
  });
});
