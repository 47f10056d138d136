// Changes to what earlier scripts made, applied by CALL admmgt.applyScripts() to real databases:
// column changes (script_column_changes), table renames and drops (script_table_changes) and
// constraints (script_constraints), asserted on the catalogs of the template, of tenants created
// before the scripts and of tenants created after each one; maintenance and retention of renamed
// and dropped tables; the exact statements and transaction modes render_steps gives them; bad rows
// refused before any target is touched. Every database of this file starts with applychg_.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lit, sql } from '../src/sql.js';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applychg_tpl';
const { admin, adminError, fresh, runCount, tables, ledger, columns } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applychg');
});
afterAll(async () => {
  await env?.close();
});

interface Con { name: string; type: string; def: string; validated: boolean }

/** The constraints of a table other than its NOT NULL ones (PostgreSQL 18 lists those too). */
async function constraints(db: string, table: string): Promise<Con[]> {
  return env.queryIn<Con>(db,
    `SELECT conname AS name, contype::text AS type, pg_get_constraintdef(oid) AS def, convalidated AS validated
       FROM pg_constraint WHERE conrelid = $1::regclass AND contype <> 'n' ORDER BY conname`, [`${S}.${table}`]);
}

/** The direct partitions of a table: name -> bound. */
const bounds = (db: string, table: string) => env.partitionBounds(db, `${S}.${table}`);

/** Drop every row of the scripts from `from` on, in every script table. */
async function deleteScriptsFrom(from: number): Promise<void> {
  await env.admin.query(`BEGIN;
    DELETE FROM admmgt.script_table_partitions WHERE tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid >= ${from});
    DELETE FROM admmgt.script_table_columns WHERE scriptid >= ${from} OR tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid >= ${from});
    DELETE FROM admmgt.script_table_fkeys WHERE scriptid >= ${from};
    DELETE FROM admmgt.script_procs WHERE scriptid >= ${from};
    DELETE FROM admmgt.script_column_changes WHERE scriptid >= ${from};
    DELETE FROM admmgt.script_table_changes WHERE scriptid >= ${from};
    DELETE FROM admmgt.script_constraints WHERE scriptid >= ${from};
    DELETE FROM admmgt.script_tables WHERE scriptid >= ${from};
    DELETE FROM admmgt.scripts WHERE id >= ${from};
    COMMIT;`);
}

const T1 = 'applychg_t1'; // created before every script
const LAG = 'applychg_lag'; // created before every script, kept at script 1 (updateflag = false)
const T2 = 'applychg_t2'; // created after script 1
const T3 = 'applychg_t3'; // created after script 2
const T4 = 'applychg_t4'; // created after script 3

const script1: ScriptSpec = {
  id: 1,
  description: 'tables that the later scripts change',
  tables: [
    {
      schema: S, name: 'accounts',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'code', type: 'varchar(10)' },
        { name: 'amount', type: 'integer' },
        { name: 'note', type: 'text' },
        { name: 'memo', type: 'text' },
        { name: 'legacy', type: 'text' },
        { name: 'req', type: 'text', nullable: false, default: "''" },
      ],
    },
    {
      schema: S, name: 'payments',
      columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'account_id', type: 'bigint' }],
    },
    {
      schema: S, name: 'orders',
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'd', type: 'date', nullable: false }, { name: 'note', type: 'text' }],
      partitions: [{ column: 'd', type: 'range', value: 'month' }],
    },
    {
      schema: S, name: 'events', defaultPartition: true, lifecycle: { at: 'current_date-100' },
      columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'at', type: 'date', nullable: false }],
      partitions: [{ column: 'at', type: 'range', value: 'month' }],
    },
    { schema: S, name: 'scratch', columns: [{ name: 'id', type: 'int' }] },
    {
      schema: S, name: 'gone', lifecycle: { d: 'current_date-100' },
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'd', type: 'date', nullable: false }],
      partitions: [{ column: 'd', type: 'range', value: 'month' }],
    },
  ],
  foreignKeys: [{ schema: S, child: 'payments', parent: 'accounts', columns: [['account_id', 'id']], notValid: true }],
};

const script2: ScriptSpec = {
  id: 2,
  description: 'column changes, renames, drops and constraints',
  columnChanges: [
    { schema: S, table: 'accounts', column: 'amount', action: 'type', type: 'bigint', using: 'amount::bigint * 100' },
    { schema: S, table: 'accounts', column: 'code', action: 'set_not_null' },
    { schema: S, table: 'accounts', column: 'note', action: 'set_default', default: "'none'" },
    { schema: S, table: 'accounts', column: 'memo', action: 'rename', newName: 'remark' },
    { schema: S, table: 'accounts', column: 'legacy', action: 'drop', confirm: true },
    { schema: S, table: 'accounts', column: 'req', action: 'drop_not_null' },
    { schema: S, table: 'events', column: 'at', action: 'rename', newName: 'happened_at' },
  ],
  tableChanges: [
    { schema: S, table: 'orders', action: 'rename', newName: 'sales' },
    { schema: S, table: 'events', action: 'rename', newName: 'happenings' },
    { schema: S, table: 'scratch', action: 'drop', confirm: true },
    { schema: S, table: 'gone', action: 'drop', confirm: true },
  ],
  constraints: [
    { schema: S, table: 'accounts', name: 'accounts_code_key', kind: 'unique', columns: ['code'] },
    { schema: S, table: 'accounts', name: 'accounts_amount_check', kind: 'check', check: 'amount >= 0', notValid: true },
    // Constraints come after the table changes of their script: the table is sales by then.
    { schema: S, table: 'sales', name: 'sales_d_check', kind: 'check', check: "d >= '2000-01-01'" },
  ],
};

const script3: ScriptSpec = {
  id: 3,
  description: 'validations, a default dropped, a foreign key on a renamed column',
  columnChanges: [{ schema: S, table: 'accounts', column: 'note', action: 'drop_default' }],
  constraints: [
    { schema: S, table: 'accounts', name: 'accounts_amount_check', kind: 'validate' },
    { schema: S, table: 'payments', name: 'payments_accounts_fkey', kind: 'validate' },
  ],
  tables: [{ schema: S, name: 'remarks', columns: [{ name: 'remark', type: 'text', primaryKey: true }] }],
  // remark is what script 2 renamed memo to: the foreign key check knows it by that name.
  foreignKeys: [{ schema: S, child: 'accounts', parent: 'remarks', columns: [['remark', 'remark']], notValid: true }],
};

async function apply(spec: ScriptSpec): Promise<void> {
  await env.addScript(spec);
  await env.admin.query('CALL admmgt.applyScripts()');
  expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
}

async function newTenant(name: string): Promise<void> {
  await env.waitIdle(TPL);
  await env.makeTenants([name]);
}

/** YYYYMMDD of the first day of the server's current month: the partition every RANGE table is created with. */
let month = '';

describe('applyScripts: column and table changes and constraints in the template and every tenant', () => {
  beforeAll(async () => {
    month = (await admin<{ m: string }>(`SELECT to_char(date_trunc('month', current_date), 'YYYYMMDD') AS m`))[0]!.m;
    await fresh([T1, LAG]);
    await apply(script1);
    for (const db of [T1, LAG]) {
      await env.queryIn(db, `
        INSERT INTO ${S}.accounts (code, amount, memo, legacy, req) VALUES ('a1', 5, 'm1', 'l1', 'r1'), ('a2', 7, 'm2', 'l2', 'r2');
        INSERT INTO ${S}.payments (account_id) SELECT id FROM ${S}.accounts;
        INSERT INTO ${S}.orders (id, d) VALUES (1, current_date);`);
    }
    await admin(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = $1`, [LAG]);
    await newTenant(T2);
  });

  it('script 1: a foreign key made NOT VALID, for script 3 to validate', async () => {
    for (const db of [TPL, T1, LAG, T2]) {
      expect(await constraints(db, 'payments')).toEqual([
        { name: 'payments_accounts_fkey', type: 'f', def: 'FOREIGN KEY (account_id) REFERENCES mgttest.accounts(id) NOT VALID', validated: false },
        { name: 'payments_pkey', type: 'p', def: 'PRIMARY KEY (id)', validated: true },
      ]);
    }
  });

  it('script 2: changes the type with USING, sets and drops NOT NULL, sets a default, renames and drops columns', async () => {
    await apply(script2);
    await newTenant(T3);
    expect(await env.versions()).toEqual({ [TPL]: 2, [T1]: 2, [LAG]: 1, [T2]: 2, [T3]: 2 });
    for (const db of [TPL, T1, T2, T3]) {
      expect(await ledger(db)).toEqual([1, 2]);
      expect((await columns(db, 'accounts')).map(({ name, type, notnull, def }) => ({ name, type, notnull, def }))).toEqual([
        { name: 'id', type: 'bigint', notnull: true, def: null },
        { name: 'code', type: 'character varying(10)', notnull: true, def: null },
        { name: 'amount', type: 'bigint', notnull: false, def: null },
        { name: 'note', type: 'text', notnull: false, def: "'none'::text" },
        { name: 'remark', type: 'text', notnull: false, def: null },
        { name: 'req', type: 'text', notnull: false, def: "''::text" },
      ]);
      // The dropped column is gone for good (attisdropped), not renamed away.
      const dropped = await env.queryIn(db, `SELECT count(*)::int AS n FROM pg_attribute
        WHERE attrelid = '${S}.accounts'::regclass AND attisdropped`);
      expect(dropped).toEqual([{ n: 1 }]);
      // The CHECK that set_not_null used is dropped again; the column's own NOT NULL stays.
      const checks = await env.queryIn(db, `SELECT conname FROM pg_constraint WHERE conname LIKE '%nn_check'`);
      expect(checks).toEqual([]);
    }
    // The USING expression converted the rows a tenant had; renamed columns keep their data.
    expect(await env.queryIn(T1, `SELECT code, amount::int, remark, req FROM ${S}.accounts ORDER BY id`)).toEqual([
      { code: 'a1', amount: 500, remark: 'm1', req: 'r1' },
      { code: 'a2', amount: 700, remark: 'm2', req: 'r2' },
    ]);
    // NOT NULL and the new default act; NOT NULL on req is gone.
    await expect(env.queryIn(T2, `INSERT INTO ${S}.accounts (code) VALUES (NULL)`)).rejects.toMatchObject({ code: '23502' });
    expect(await env.queryIn(T2, `INSERT INTO ${S}.accounts (code, req) VALUES ('x', NULL) RETURNING note`)).toEqual([{ note: 'none' }]);
    await env.queryIn(T2, `DELETE FROM ${S}.accounts`);
    // The tenant kept at script 1 has the columns as they were.
    expect((await columns(LAG, 'accounts')).map((c) => c.name)).toEqual(['id', 'code', 'amount', 'note', 'memo', 'legacy', 'req']);
  });

  it('script 2: renames partitioned tables (their partitions keep their names) and drops tables', async () => {
    for (const db of [TPL, T1, T2, T3]) {
      expect(await tables(db)).toEqual([
        'accounts:r', `events_default:r`, `events_p${month}:r`, 'happenings:p', `orders_p${month}:r`, 'payments:r', 'sales:p',
      ]);
      expect(Object.keys(await bounds(db, 'sales'))).toEqual([`orders_p${month}`]);
      expect(Object.keys(await bounds(db, 'happenings'))).toEqual(['events_default', `events_p${month}`]);
      expect(await env.queryIn(db, `SELECT pg_get_partkeydef('${S}.happenings'::regclass) AS k`)).toEqual([{ k: 'RANGE (happened_at)' }]);
    }
    expect(await env.queryIn(T1, `SELECT id, tableoid::regclass::text AS part FROM ${S}.sales`)).toEqual([{ id: '1', part: `${S}.orders_p${month}` }]);
    expect(await tables(LAG)).toEqual([
      'accounts:r', 'events:p', 'events_default:r', `events_p${month}:r`, 'gone:p', `gone_p${month}:r`, 'orders:p', `orders_p${month}:r`,
      'payments:r', 'scratch:r',
    ]);
  });

  it('script 2: adds UNIQUE and CHECK constraints, one NOT VALID, one on the table by its new name', async () => {
    for (const db of [TPL, T1, T2, T3]) {
      expect(await constraints(db, 'accounts')).toEqual([
        { name: 'accounts_amount_check', type: 'c', def: 'CHECK ((amount >= 0)) NOT VALID', validated: false },
        { name: 'accounts_code_key', type: 'u', def: 'UNIQUE (code)', validated: true },
        { name: 'accounts_pkey', type: 'p', def: 'PRIMARY KEY (id)', validated: true },
      ]);
      expect((await constraints(db, 'sales')).filter((c) => c.type === 'c')).toEqual([
        { name: 'sales_d_check', type: 'c', def: "CHECK ((d >= '2000-01-01'::date))", validated: true },
      ]);
    }
    await expect(env.queryIn(T1, `INSERT INTO ${S}.accounts (code) VALUES ('a1')`)).rejects.toMatchObject({ code: '23505' });
    await expect(env.queryIn(T1, `INSERT INTO ${S}.accounts (code, amount) VALUES ('neg', -1)`)).rejects.toMatchObject({ code: '23514' });
  });

  it('script 3: validates a CHECK and a foreign key added NOT VALID, drops a default, checks a foreign key by a renamed column', async () => {
    await apply(script3);
    await newTenant(T4);
    expect(await env.versions()).toEqual({ [TPL]: 3, [T1]: 3, [LAG]: 1, [T2]: 3, [T3]: 3, [T4]: 3 });
    for (const db of [TPL, T1, T2, T3, T4]) {
      expect(await ledger(db)).toEqual([1, 2, 3]);
      const byName = Object.fromEntries((await constraints(db, 'accounts')).map((c) => [c.name, c]));
      expect(byName.accounts_amount_check).toMatchObject({ def: 'CHECK ((amount >= 0))', validated: true });
      expect(byName.accounts_remarks_fkey).toMatchObject({
        def: 'FOREIGN KEY (remark) REFERENCES mgttest.remarks(remark) NOT VALID', validated: false,
      });
      expect((await constraints(db, 'payments')).find((c) => c.type === 'f')).toMatchObject({
        name: 'payments_accounts_fkey', def: 'FOREIGN KEY (account_id) REFERENCES mgttest.accounts(id)', validated: true,
      });
      expect((await columns(db, 'accounts')).find((c) => c.name === 'note')).toMatchObject({ def: null });
    }
  });

  it('render_steps: the exact statements, transaction modes and rows of script 2', async () => {
    const ids = async (table: string) => (await admin<{ id: string }>(`SELECT id::text FROM admmgt.${table} WHERE scriptid = 2 ORDER BY id`)).map((r) => r.id);
    const [cc, tc, k] = [await ids('script_column_changes'), await ids('script_table_changes'), await ids('script_constraints')];
    const src = (table: string, list: string[], i: number) => `admmgt.${table} id ${list[i]}`;
    const c = (i: number) => src('script_column_changes', cc, i);
    const t = (i: number) => src('script_table_changes', tc, i);
    const q = (i: number) => src('script_constraints', k, i);
    const steps = await admin('SELECT seq, stmt, txmode, source, destructive FROM admmgt.render_steps(2) ORDER BY seq');
    expect(steps.map(({ seq: _seq, ...s }) => s)).toEqual([
      { stmt: 'ALTER TABLE mgttest.accounts ALTER COLUMN amount TYPE bigint USING (amount::bigint * 100)', txmode: 'script', source: c(0), destructive: false },
      { stmt: 'ALTER TABLE mgttest.accounts ADD CONSTRAINT accounts_code_nn_check CHECK (code IS NOT NULL) NOT VALID', txmode: 'script', source: c(1), destructive: false },
      { stmt: 'ALTER TABLE mgttest.accounts VALIDATE CONSTRAINT accounts_code_nn_check', txmode: 'alone', source: c(1), destructive: false },
      { stmt: 'ALTER TABLE mgttest.accounts ALTER COLUMN code SET NOT NULL', txmode: 'alone', source: c(1), destructive: false },
      { stmt: 'ALTER TABLE mgttest.accounts DROP CONSTRAINT accounts_code_nn_check', txmode: 'script', source: c(1), destructive: false },
      { stmt: "ALTER TABLE mgttest.accounts ALTER COLUMN note SET DEFAULT ('none')", txmode: 'script', source: c(2), destructive: false },
      { stmt: 'ALTER TABLE mgttest.accounts RENAME COLUMN memo TO remark', txmode: 'script', source: c(3), destructive: false },
      { stmt: 'ALTER TABLE mgttest.accounts DROP COLUMN legacy', txmode: 'script', source: c(4), destructive: true },
      { stmt: 'ALTER TABLE mgttest.accounts ALTER COLUMN req DROP NOT NULL', txmode: 'script', source: c(5), destructive: false },
      { stmt: 'ALTER TABLE mgttest.events RENAME COLUMN at TO happened_at', txmode: 'script', source: c(6), destructive: false },
      { stmt: 'ALTER TABLE mgttest.orders RENAME TO sales', txmode: 'script', source: t(0), destructive: false },
      { stmt: 'ALTER TABLE mgttest.events RENAME TO happenings', txmode: 'script', source: t(1), destructive: false },
      { stmt: 'DROP TABLE mgttest.scratch', txmode: 'script', source: t(2), destructive: true },
      { stmt: 'DROP TABLE mgttest.gone', txmode: 'script', source: t(3), destructive: true },
      { stmt: 'ALTER TABLE mgttest.accounts ADD CONSTRAINT accounts_code_key UNIQUE (code)', txmode: 'script', source: q(0), destructive: false },
      { stmt: 'ALTER TABLE mgttest.accounts ADD CONSTRAINT accounts_amount_check CHECK (amount >= 0) NOT VALID', txmode: 'script', source: q(1), destructive: false },
      { stmt: "ALTER TABLE mgttest.sales ADD CONSTRAINT sales_d_check CHECK (d >= '2000-01-01')", txmode: 'script', source: q(2), destructive: false },
    ]);
    const validate = await admin('SELECT stmt, txmode FROM admmgt.render_steps(3) WHERE stmt LIKE \'%VALIDATE%\' ORDER BY seq');
    expect(validate).toEqual([
      { stmt: 'ALTER TABLE mgttest.accounts VALIDATE CONSTRAINT accounts_amount_check', txmode: 'alone' },
      { stmt: 'ALTER TABLE mgttest.payments VALIDATE CONSTRAINT payments_accounts_fkey', txmode: 'alone' },
    ]);
  });

  it('maintenance names renamed tables as each target has them and leaves dropped ones alone; rows move out of a renamed DEFAULT partition', async () => {
    // Rows of April 2031 wait in the DEFAULT partition, under the key column's name of each target.
    await env.queryIn(T1, `INSERT INTO ${S}.happenings (happened_at) VALUES ('2031-04-02')`);
    await env.queryIn(LAG, `INSERT INTO ${S}.events (at) VALUES ('2031-04-02')`);
    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 40, p_asof => '2031-03-10')`);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    const months = [`${month}`, '20310301', '20310401'];
    for (const db of [TPL, T1, T2, T3, T4]) {
      expect(Object.keys(await bounds(db, 'sales'))).toEqual(months.map((m) => `orders_p${m}`));
      expect(await bounds(db, 'happenings')).toMatchObject({
        events_default: 'DEFAULT', events_p20310401: "FOR VALUES FROM ('2031-04-01') TO ('2031-05-01')",
      });
      expect(Object.keys(await bounds(db, 'happenings'))).toEqual(['events_default', ...months.map((m) => `events_p${m}`)]);
      expect(await env.queryIn(db, `SELECT to_regclass('${S}.gone') AS t, to_regclass('${S}.gone_p20310301') AS p`)).toEqual([{ t: null, p: null }]);
    }
    for (const parent of ['orders', 'events', 'gone']) {
      expect(Object.keys(await bounds(LAG, parent))).toEqual(
        [...(parent === 'events' ? ['events_default'] : []), ...months.map((m) => `${parent}_p${m}`)]);
    }
    expect(await env.queryIn(T1, `SELECT tableoid::regclass::text AS part FROM ${S}.happenings`)).toEqual([{ part: `${S}.events_p20310401` }]);
    expect(await env.queryIn(LAG, `SELECT tableoid::regclass::text AS part FROM ${S}.events`)).toEqual([{ part: `${S}.events_p20310401` }]);
    const moved = await admin<{ dbname: string; commstat: string }>(
      `SELECT dbname, commstat FROM admmgt.script_log WHERE operation = 'maintain' AND commstat LIKE 'moved%' ORDER BY dbname`);
    expect(moved).toEqual([LAG, T1].sort().map((dbname) => ({ dbname, commstat: `moved 1 rows from the default partition into ${S}.events_p20310401` })));
  });

  it('retention drops the expired partitions of a renamed table (by its renamed key) and of a dropped one only where it still exists', async () => {
    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 0, p_asof => '2020-01-15')`);
    for (const db of [TPL, T1, LAG]) {
      expect(await env.queryIn(db, `SELECT to_regclass('${S}.events_p20200101') IS NOT NULL AS ok`)).toEqual([{ ok: true }]);
    }
    await env.admin.query(`CALL admmgt.applyLifecycle(p_asof => '2021-01-01')`);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    for (const db of [TPL, T1, T2, T3, T4]) {
      expect(Object.keys(await bounds(db, 'happenings'))).not.toContain('events_p20200101');
      // No retention policy on orders: its old partition stays.
      expect(Object.keys(await bounds(db, 'sales'))).toContain('orders_p20200101');
    }
    expect(Object.keys(await bounds(LAG, 'events'))).not.toContain('events_p20200101');
    expect(Object.keys(await bounds(LAG, 'gone'))).not.toContain('gone_p20200101');
    const log = (await admin<{ line: string }>(
      `SELECT dbname || ' ' || commstat AS line FROM admmgt.script_log WHERE operation = 'lifecycle' AND commstat LIKE 'drop %'`)).map((r) => r.line).sort();
    expect(log).toEqual([
      `${LAG} drop ${S}.events_p20200101: 0 rows`,
      `${LAG} drop ${S}.gone_p20200101: 0 rows`,
      ...[TPL, T1, T2, T3, T4].sort().map((db) => `${db} drop ${S}.events_p20200101: 0 rows`),
    ].sort());
  });
});

describe('set_not_null: the statements it renders, run on a real table', () => {
  const DB = 'applychg_scan';
  let client: pg.Client;
  const messages: string[] = [];

  beforeAll(async () => {
    await env.admin.query(`CREATE DATABASE ${DB}`);
    client = new pg.Client({ connectionString: env.urlFor(DB) });
    client.on('notice', (n) => messages.push(n.message ?? ''));
    await client.connect();
    await client.query(`CREATE SCHEMA ${S}; CREATE TABLE ${S}.accounts (id int, code text);
      INSERT INTO ${S}.accounts SELECT g, 'c' || g FROM generate_series(1, 1000) g`);
  });
  afterAll(async () => {
    await client?.end();
    await env.admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  });

  it('validates while holding only SHARE UPDATE EXCLUSIVE, and SET NOT NULL trusts the valid CHECK instead of scanning', async () => {
    const steps = (await admin<{ stmt: string }>(
      `SELECT stmt FROM admmgt.render_steps(2) WHERE stmt LIKE '%code%' AND source LIKE 'admmgt.script_column_changes %' ORDER BY seq`)).map((r) => r.stmt);
    expect(steps).toHaveLength(4);
    const [add, validate, setNotNull, drop] = steps as [string, string, string, string];
    await client.query(add);
    await client.query('BEGIN');
    await client.query(validate);
    const locks = await client.query(`SELECT mode FROM pg_locks WHERE relation = '${S}.accounts'::regclass AND pid = pg_backend_pid() ORDER BY mode`);
    expect(locks.rows).toEqual([{ mode: 'ShareUpdateExclusiveLock' }]);
    await client.query('COMMIT');
    await client.query('BEGIN');
    await client.query('SET LOCAL client_min_messages = debug1');
    messages.length = 0;
    await client.query(setNotNull);
    expect(messages.join('\n')).toMatch(/existing constraints on column "accounts\.code" are sufficient to prove that it does not contain nulls/);
    expect(messages.join('\n')).not.toMatch(/verifying table/);
    await client.query(drop);
    await client.query('COMMIT');
    const cols = await client.query(`SELECT attnotnull FROM pg_attribute WHERE attrelid = '${S}.accounts'::regclass AND attname = 'code'`);
    expect(cols.rows).toEqual([{ attnotnull: true }]);
    const cons = await client.query(`SELECT conname FROM pg_constraint WHERE conrelid = '${S}.accounts'::regclass AND contype = 'c'`);
    expect(cons.rows).toEqual([]);
  });
});

describe('applyScripts: bad change rows are refused before any target is touched, naming the row', () => {
  const R1 = 'applychg_r1';
  const base: ScriptSpec = {
    id: 1, description: 'a table to change',
    tables: [{ schema: S, name: 'acc', columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'code', type: 'text' }, { name: 'note', type: 'text' }] }],
  };
  let catalogBefore: unknown;

  const catalog = async () => Promise.all([TPL, R1].map(async (db) => ({
    tables: await tables(db), columns: await columns(db, 'acc'), constraints: await constraints(db, 'acc'), ledger: await ledger(db),
  })));

  beforeAll(async () => {
    await fresh([R1]);
    await apply(base);
    catalogBefore = await catalog();
  });

  const colChange = (column: string, action: string, newvalue: string | null, usingexpr: string | null = null, confirm = false) =>
    sql`INSERT INTO admmgt.script_column_changes (scriptid, schemaname, tablename, columnname, action, newvalue, usingexpr, confirm)
        VALUES (2, ${lit(S)}, 'acc', ${lit(column)}, ${lit(action)}, ${lit(newvalue)}, ${lit(usingexpr)}, ${lit(confirm)})`.text;
  const tableChange = (action: string, newname: string | null, schema = S) =>
    sql`INSERT INTO admmgt.script_table_changes (scriptid, schemaname, tablename, action, newname)
        VALUES (2, ${lit(schema)}, 'acc', ${lit(action)}, ${lit(newname)})`.text;
  const constraint = (name: string, kind: string, columns: string | null, checkexpr: string | null, novalidate = 0) =>
    sql`INSERT INTO admmgt.script_constraints (scriptid, schemaname, tablename, constraintname, kind, columns, checkexpr, novalidate)
        VALUES (2, ${lit(S)}, 'acc', ${lit(name)}, ${lit(kind)}, ${lit(columns)}, ${lit(checkexpr)}, ${lit(novalidate)})`.text;

  type Case = { what: string; rows?: string; specs?: ScriptSpec[]; table: string; code: string; message: RegExp };
  const cases: Case[] = [
    { what: 'a column drop without confirm', rows: colChange('code', 'drop', null), table: 'script_column_changes',
      code: '55000', message: /drops column mgttest\.acc\.code, but its confirm is not true/ },
    { what: 'a table drop without confirm', rows: tableChange('drop', null), table: 'script_table_changes',
      code: '55000', message: /drops table mgttest\.acc, but its confirm is not true/ },
    { what: 'a type change without newvalue', rows: colChange('code', 'type', null), table: 'script_column_changes',
      code: '23502', message: /newvalue \(the new data type\) is missing/ },
    { what: 'a default without newvalue', rows: colChange('code', 'set_default', '  '), table: 'script_column_changes',
      code: '23502', message: /newvalue \(the default expression\) is missing/ },
    { what: 'a column rename without newvalue', rows: colChange('code', 'rename', null), table: 'script_column_changes',
      code: '23502', message: /newvalue \(the new column name\) is missing/ },
    { what: 'a table rename without newname', rows: tableChange('rename', null), table: 'script_table_changes',
      code: '23502', message: /newname is missing/ },
    { what: 'a USING expression with a ;', rows: colChange('code', 'type', 'int', 'code::int; DROP TABLE mgttest.acc'), table: 'script_column_changes',
      code: '42601', message: /invalid USING expression .* the character ';' outside a string/ },
    { what: 'a default that adds a clause', rows: colChange('code', 'set_default', "'x', DROP COLUMN note"), table: 'script_column_changes',
      code: '42601', message: /invalid default .* a comma outside parentheses/ },
    { what: 'a CHECK expression that closes its statement', rows: constraint('acc_c', 'check', null, 'true); DROP TABLE mgttest.acc; --'), table: 'script_constraints',
      code: '42601', message: /invalid CHECK expression/ },
    { what: 'UNIQUE NOT VALID', rows: constraint('acc_code_key', 'unique', 'code', null, 1), table: 'script_constraints',
      code: '0A000', message: /asks for UNIQUE NOT VALID, which PostgreSQL does not have/ },
    { what: 'a new column name that is no identifier', rows: colChange('code', 'rename', 'bad name'), table: 'script_column_changes',
      code: '42602', message: /invalid new column name 'bad name'/ },
    { what: 'a new table name that is no identifier', rows: tableChange('rename', 'acc"; DROP TABLE x; --'), table: 'script_table_changes',
      code: '42602', message: /invalid new table name/ },
    { what: 'a UNIQUE column list with a quoted name', rows: constraint('acc_code_key', 'unique', 'code, "Note"', null), table: 'script_constraints',
      code: '42602', message: /invalid column name '"Note"'/ },
    { what: 'a constraint name that is no identifier', rows: constraint('acc-code', 'check', null, 'true'), table: 'script_constraints',
      code: '42602', message: /invalid constraint name 'acc-code'/ },
    { what: 'a type that carries a constraint', rows: colChange('code', 'type', 'text primary key'), table: 'script_column_changes',
      code: '22023', message: /invalid data type 'text primary key'/ },
    { what: 'a newvalue the action would ignore', rows: colChange('code', 'drop_not_null', 'x'), table: 'script_column_changes',
      code: '22023', message: /sets newvalue, which action drop_not_null does not use/ },
    { what: 'a USING expression without a type change', rows: colChange('code', 'set_default', "'x'", 'code'), table: 'script_column_changes',
      code: '22023', message: /sets usingexpr, which action set_default does not use/ },
    { what: 'a table change in a system schema', rows: tableChange('rename', 'x', 'pg_catalog'), table: 'script_table_changes',
      code: '42939', message: /names the reserved schema pg_catalog/ },
    { what: 'a foreign key on a column by the name a rename took away', table: 'script_table_fkeys', code: '42703',
      message: /references mgttest\.child \(acc_code\) -> mgttest\.acc \(code\), which scripts up to 2 do not define/,
      specs: [{
        id: 2, description: 'rename, then a foreign key by the old name',
        columnChanges: [{ schema: S, table: 'acc', column: 'code', action: 'rename', newName: 'kode' }],
        tables: [{ schema: S, name: 'child', columns: [{ name: 'id', type: 'int' }, { name: 'acc_code', type: 'text' }] }],
        foreignKeys: [{ schema: S, child: 'child', parent: 'acc', columns: [['acc_code', 'code']] }],
      }] },
    { what: 'a column added to a table an earlier script drops', table: 'script_table_columns', code: '42P01',
      message: /adds a column to mgttest\.acc, which a script before 3 drops/,
      specs: [
        { id: 2, description: 'drop', tableChanges: [{ schema: S, table: 'acc', action: 'drop', confirm: true }] },
        { id: 3, description: 'add a column to it', addColumns: [{ schema: S, table: 'acc', column: { name: 'extra', type: 'int' } }] },
      ] },
  ];

  it.each(cases)('refuses $what and changes nothing', async ({ rows, specs, table, code, message }) => {
    if (rows) {
      await env.admin.query(`BEGIN; INSERT INTO admmgt.scripts (id, description, status) VALUES (2, 'bad', 1); ${rows}; COMMIT`);
    }
    for (const s of specs ?? []) await env.addScript(s);
    const [{ id }] = await admin<{ id: string }>(`SELECT min(id)::text AS id FROM admmgt.${table} WHERE scriptid >= 2`) as [{ id: string }];
    const before = await runCount();
    try {
      const err = await adminError('CALL admmgt.applyScripts()');
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
      expect(err.message).toContain(`admmgt.${table} id ${id}`);
      expect(err.hint).toBeTruthy();
      expect(await runCount()).toBe(before);
      expect(await env.versions()).toEqual({ [TPL]: 1, [R1]: 1 });
      expect(await catalog()).toEqual(catalogBefore);
      expect((await adminError('SELECT * FROM admmgt.plan_scripts()')).message).toContain(`admmgt.${table} id ${id}`);
    } finally {
      await deleteScriptsFrom(2);
    }
  });

  it('applies a confirmed drop once the row says confirm = true', async () => {
    await env.admin.query(`BEGIN; INSERT INTO admmgt.scripts (id, description, status) VALUES (2, 'drop confirmed', 1);
      ${colChange('note', 'drop', null, null, true)}; COMMIT`);
    await env.admin.query('CALL admmgt.applyScripts()');
    for (const db of [TPL, R1]) expect((await columns(db, 'acc')).map((c) => c.name)).toEqual(['id', 'code']);
  });
});
