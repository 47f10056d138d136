// Drift detection in a steady fleet: detectDrift keeps each target's fingerprint with its catalog
// stamp and, next time, sends the stamp query alone; only a target whose stamp moved is
// fingerprinted again. These tests prove that every kind of change drift reports moves the stamp
// (else the change would go unseen), and that the period partitions maintenance makes do not.
// Every database of this file starts with dstamp_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'dstamp_tpl';
const { admin, fresh } = applyHelpers(() => env, TPL);

const script1: ScriptSpec = {
  id: 1,
  description: 'orders with an index, a trigger (and its function) and a view; events partitioned by month',
  tables: [
    { schema: S, name: 'orders', columns: [{ name: 'id', type: 'int', primaryKey: true }, { name: 'name', type: 'text' }, { name: 'note', type: 'text', default: "'none'" }] },
    { schema: S, name: 'events', columns: [{ name: 'id', type: 'int' }, { name: 'created', type: 'date', nullable: false }],
      partitions: [{ column: 'created', type: 'range', value: 'month' }] },
  ],
  indexes: [{ schema: S, table: 'orders', name: 'orders_name_idx', columns: ['name'] }],
  triggers: [{ schema: S, table: 'orders', name: 'orders_audit', function: 'orders_audit_fn', functionBody: 'BEGIN RETURN NEW; END' }],
  views: [{ schema: S, name: 'orders_v', query: 'SELECT id, name FROM mgttest.orders' }],
};

// One tenant per kind of change, with the drift row it must give: [tenant suffix, DDL, "kind object"].
const CHANGES: Array<[string, string, string]> = [
  ['index', 'DROP INDEX mgttest.orders_name_idx', 'missing index mgttest.orders_name_idx'],
  ['column', 'ALTER TABLE mgttest.orders DROP COLUMN note', 'missing column mgttest.orders.note'],
  ['trigger', 'DROP TRIGGER orders_audit ON mgttest.orders', 'missing trigger mgttest.orders.orders_audit'],
  ['disabled', 'ALTER TABLE mgttest.orders DISABLE TRIGGER orders_audit', 'different trigger mgttest.orders.orders_audit'],
  ['default', `ALTER TABLE mgttest.orders ALTER COLUMN note SET DEFAULT 'other'`, 'different column mgttest.orders.note'],
  ['type', 'ALTER TABLE mgttest.orders ALTER COLUMN note TYPE varchar(20)', 'different column mgttest.orders.note'],
  ['notnull', 'ALTER TABLE mgttest.orders ALTER COLUMN name SET NOT NULL', 'different column mgttest.orders.name'],
  ['view', 'CREATE OR REPLACE VIEW mgttest.orders_v AS SELECT id, name FROM mgttest.orders WHERE id > 0', 'different view mgttest.orders_v'],
  ['body', `CREATE OR REPLACE FUNCTION mgttest.orders_audit_fn() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN NEW.name := upper(NEW.name); RETURN NEW; END'`,
    'different function mgttest.orders_audit_fn()'],
  ['grant', 'GRANT SELECT ON mgttest.orders TO PUBLIC', 'different table mgttest.orders'],
  ['colgrant', 'GRANT UPDATE (name) ON mgttest.orders TO PUBLIC', 'different column mgttest.orders.name'],
  ['nspgrant', 'GRANT USAGE ON SCHEMA mgttest TO PUBLIC', 'different schema mgttest'],
  ['rls', 'ALTER TABLE mgttest.orders ENABLE ROW LEVEL SECURITY', 'different table mgttest.orders'],
  ['check', 'ALTER TABLE mgttest.orders ADD CONSTRAINT orders_id_check CHECK (id > 0)', 'extra constraint mgttest.orders.orders_id_check'],
  ['rename', 'ALTER INDEX mgttest.orders_name_idx RENAME TO orders_n_idx', 'extra index mgttest.orders_n_idx'],
  ['table', 'CREATE TABLE mgttest.extra (id int)', 'extra table mgttest.extra'],
  // What CREATE INDEX CONCURRENTLY does at its end: only the pg_index row changes.
  ['invalid', `UPDATE pg_catalog.pg_index SET indisvalid = false WHERE indexrelid = 'mgttest.orders_name_idx'::regclass`,
    'different index mgttest.orders_name_idx'],
  // An extension member is left out of the fingerprint; only pg_depend says it is one.
  ['member', 'ALTER EXTENSION plpgsql ADD FUNCTION mgttest.orders_audit_fn()', 'missing function mgttest.orders_audit_fn()'],
];
const db = (suffix: string) => `dstamp_${suffix}`;
const TENANTS = [...CHANGES.map(([s]) => db(s)), db('clean')];

beforeAll(async () => {
  env = await createEnv('dstamp');
});
afterAll(async () => {
  await env?.close();
});

/** What the latest detectDrift kept: "db kind object" per row. */
async function drift(): Promise<string[]> {
  return (await admin<{ row: string }>(`SELECT dbname || ' ' || kind || ' ' || object AS row FROM admmgt.drift ORDER BY dbname, object`))
    .map((r) => r.row);
}

/** The targets whose fingerprint the latest drift run took (the others: their stamp had not moved). */
async function fingerprinted(): Promise<string[]> {
  return (await admin<{ dbname: string }>(
    `SELECT DISTINCT l.dbname FROM admmgt.script_log l
      WHERE l.run_id = (SELECT max(run_id) FROM admmgt.runs WHERE operation = 'drift') AND l.commstat ~ '^fingerprint at version \\d+: \\d+ objects$'
      ORDER BY 1`)).map((r) => r.dbname);
}

async function unchanged(): Promise<string[]> {
  return (await admin<{ dbname: string }>(
    `SELECT DISTINCT l.dbname FROM admmgt.script_log l
      WHERE l.run_id = (SELECT max(run_id) FROM admmgt.runs WHERE operation = 'drift') AND l.commstat LIKE '%catalogs unchanged since%'
      ORDER BY 1`)).map((r) => r.dbname);
}

describe('detectDrift with catalog stamps', () => {
  beforeAll(async () => {
    await fresh(TENANTS);
    await env.addScript(script1);
    await admin('CALL admmgt.applyScripts()');
    await admin('CALL admmgt.applyMaintenance(t_numdays => 30)');
  });

  it('fingerprints every target the first time and keeps its stamp; the next run sends the stamps alone', async () => {
    await admin('CALL admmgt.detectDrift()');
    expect(await drift()).toEqual([]);
    expect(await fingerprinted()).toEqual([...TENANTS].sort());
    const stamps = await admin<{ n: number }>(`SELECT count(*)::int AS n FROM admmgt.target_fingerprints WHERE stamp IS NOT NULL AND query_md5 IS NOT NULL`);
    expect(stamps).toEqual([{ n: TENANTS.length }]);

    await admin('CALL admmgt.detectDrift()');
    expect(await drift()).toEqual([]);
    expect(await fingerprinted()).toEqual([]);
    expect(await unchanged()).toEqual([...TENANTS].sort());
    expect(await admin(`SELECT operation, targets, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ operation: 'drift', targets: TENANTS.length, failed: 0 }]);
  });

  it('sees every kind of change it compares: each moves the stamp, and the target is fingerprinted again on the same run', async () => {
    for (const [suffix, ddl] of CHANGES) await env.queryIn(db(suffix), ddl);
    await admin('CALL admmgt.detectDrift(p_parallel => 4)');
    const found = await drift();
    for (const [suffix, , row] of CHANGES) {
      expect(found.filter((r) => r.startsWith(`${db(suffix)} `)), suffix).toContain(`${db(suffix)} ${row}`);
    }
    expect(found.filter((r) => r.startsWith(`${db('clean')} `))).toEqual([]);
    expect(await fingerprinted()).toEqual(CHANGES.map(([s]) => db(s)).sort());
    expect(await unchanged()).toEqual([db('clean')]);
  });

  it('keeps what drifted while the stamp stays where it is', async () => {
    const before = await drift();
    await admin('CALL admmgt.detectDrift()');
    expect(await fingerprinted()).toEqual([]);
    expect(await drift()).toEqual(before);
  });

  it('is not moved by the period partitions maintenance makes, which drift does not compare', async () => {
    const before = await drift();
    const partitions = async () => (await env.partitions(db('clean'), { schema: S })).length;
    const had = await partitions();
    await admin('CALL admmgt.applyMaintenance(t_numdays => 200)');
    expect(await partitions()).toBeGreaterThan(had);
    await admin('CALL admmgt.detectDrift()');
    expect(await fingerprinted()).toEqual([]);
    expect(await drift()).toEqual(before);
  });

  it('fingerprints every target anew with p_verify => true, and again when the fingerprint query changes', async () => {
    const before = await drift();
    await admin('CALL admmgt.detectDrift(p_verify => true)');
    expect(await fingerprinted()).toEqual([...TENANTS].sort());
    expect(await drift()).toEqual(before);

    // A kept fingerprint is reused only for the query that took it (another admmgt, login roles).
    await admin(`UPDATE admmgt.target_fingerprints SET query_md5 = md5('another query') WHERE dbname = $1`, [db('clean')]);
    await admin('CALL admmgt.detectDrift()');
    expect(await fingerprinted()).toEqual([db('clean')]);
  });

  it('fingerprints a target again once applyScripts moved its version', async () => {
    await env.addScript({ id: 2, description: 'a second table', tables: [{ schema: S, name: 'later', columns: [{ name: 'id', type: 'int' }] }] });
    await admin('CALL admmgt.applyScripts(p_tenants => $1)', [[db('clean')]]);
    await admin('CALL admmgt.detectDrift()');
    expect(await fingerprinted()).toEqual([db('clean')]);
    expect((await drift()).filter((r) => r.startsWith(`${db('clean')} `))).toEqual([]);
  });
});
