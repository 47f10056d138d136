// Drift detection: detectDrift() fingerprints each target's app schemas through the executor and
// compares them with the template's fingerprint at the target's version; admmgt drift prints what
// differs and exits 3. Every database of this file starts with drift_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'drift_tpl';
const { admin, adminError, fresh } = applyHelpers(() => env, TPL);
const TENANTS = ['drift_a', 'drift_b', 'drift_c', 'drift_d'];

beforeAll(async () => {
  env = await createEnv('drift');
});
afterAll(async () => {
  await env?.close();
});

const script1: ScriptSpec = {
  id: 1,
  description: 'orders with an index, a trigger (and its function) and a view; events partitioned by month',
  tables: [
    { schema: S, name: 'orders', columns: [{ name: 'id', type: 'int', primaryKey: true }, { name: 'name', type: 'text' }, { name: 'note', type: 'text', default: "'none'" }] },
    { schema: S, name: 'events', columns: [{ name: 'id', type: 'int' }, { name: 'created', type: 'date', nullable: false }],
      partitions: [{ column: 'created', type: 'range', value: 'month' }], defaultPartition: true },
  ],
  indexes: [
    { schema: S, table: 'orders', name: 'orders_name_idx', columns: ['name'] },
    { schema: S, table: 'events', name: 'events_created_idx', columns: ['created'] },
  ],
  triggers: [{ schema: S, table: 'orders', name: 'orders_audit', function: 'orders_audit_fn', functionBody: 'BEGIN RETURN NEW; END' }],
  views: [{ schema: S, name: 'orders_v', query: 'SELECT id, name FROM mgttest.orders' }],
};

const script2: ScriptSpec = {
  id: 2, description: 'a second table', tables: [{ schema: S, name: 'later', columns: [{ name: 'id', type: 'int' }] }],
};

interface Row { dbname: string; object: string; kind: string }

/** What the latest detectDrift kept: "db kind object" per row. */
async function drift(): Promise<string[]> {
  return (await admin<Row>(`SELECT dbname, object, kind FROM admmgt.drift ORDER BY dbname, object`))
    .map((r) => `${r.dbname} ${r.kind} ${r.object}`);
}

describe('detectDrift', () => {
  beforeAll(async () => {
    await fresh(TENANTS);
    await env.addScript(script1);
    await admin('CALL admmgt.applyScripts()');
  });

  it('records the template fingerprint of the version applyScripts brought it to', async () => {
    const rows = await admin<{ version: number; keys: string[] }>(
      `SELECT version, ARRAY(SELECT k FROM jsonb_object_keys(objects) k WHERE k LIKE '%mgttest.orders%' ORDER BY k) AS keys
         FROM admmgt.template_fingerprints`);
    expect(rows).toEqual([{ version: 1, keys: [
      'column mgttest.orders.id', 'column mgttest.orders.name', 'column mgttest.orders.note', 'constraint mgttest.orders.orders_pkey',
      'function mgttest.orders_audit_fn()', 'index mgttest.orders_name_idx', 'table mgttest.orders', 'trigger mgttest.orders.orders_audit', 'view mgttest.orders_v'] }]);
    // The trigger function and the partitioned table's DEFAULT partition; no period partition.
    const [{ keys }] = await admin<{ keys: string[] }>(
      `SELECT ARRAY(SELECT k FROM jsonb_object_keys(objects) k WHERE k LIKE 'function %' OR k LIKE 'partition %' OR k LIKE '%events%' ORDER BY k) AS keys
         FROM admmgt.template_fingerprints WHERE version = 1`) as [{ keys: string[] }];
    expect(keys).toEqual(['column mgttest.events.created', 'column mgttest.events.id', 'function mgttest.orders_audit_fn()',
      'index mgttest.events_created_idx', 'partition mgttest.events_default', 'table mgttest.events']);
  });

  it('finds nothing when every tenant is as the template left it', async () => {
    await admin('CALL admmgt.detectDrift()');
    expect(await drift()).toEqual([]);
    expect(await admin(`SELECT operation, targets, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ operation: 'drift', targets: 4, failed: 0 }]);
  });

  it('finds a dropped index, column and trigger in one tenant and an added table in another, and nothing in the rest', async () => {
    await env.queryIn('drift_a', `DROP INDEX mgttest.orders_name_idx; ALTER TABLE mgttest.orders DROP COLUMN note;
                                  DROP TRIGGER orders_audit ON mgttest.orders`);
    await env.queryIn('drift_b', `CREATE TABLE mgttest.extra (id int PRIMARY KEY, label text)`);
    await admin('CALL admmgt.detectDrift(p_parallel => 3)');
    expect(await drift()).toEqual([
      'drift_a missing column mgttest.orders.note',
      'drift_a missing index mgttest.orders_name_idx',
      'drift_a missing trigger mgttest.orders.orders_audit',
      // Its columns and primary key go with it: one line.
      'drift_b extra table mgttest.extra',
    ]);
    const [a] = await admin<{ detail: string }>(`SELECT detail FROM admmgt.drift WHERE object = 'column mgttest.orders.note'`);
    expect(a!.detail).toBe(`template: text DEFAULT 'none'::text`);
  });

  it('admmgt drift prints them per target and exits 3; --json has the same rows; a clean selection exits 0', async () => {
    const r = await cli('drift', '--url', env.adminUrl);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^run \d+: 4 target\(s\) fingerprinted, 2 drifted, 0 cannot be compared\n/);
    expect(r.stdout).toContain([
      '  drift_a (server local, version 1):',
      '    missing   column mgttest.orders.note',
      '    missing   index mgttest.orders_name_idx',
      '    missing   trigger mgttest.orders.orders_audit',
      '  drift_b (server local, version 1):',
      '    extra     table mgttest.extra',
    ].join('\n'));
    expect(r.stderr).toContain('2 target(s) drifted from the template');

    const j = await cli('drift', '--url', env.adminUrl, '--json', '--tenant', 'drift_b', '--tenant', 'drift_c');
    expect(j.code).toBe(3);
    const report = JSON.parse(j.stdout);
    expect(report).toMatchObject({ targets: 2, failed: 0, drifted: 1, cannot_compare: 0 });
    expect(report.drift).toEqual([{ dbname: 'drift_b', server: 'local', version: 1, object: 'table mgttest.extra', kind: 'extra',
      detail: expect.stringMatching(/^target: /) }]);
    // Only the chosen targets' rows were replaced: drift_a's stay.
    expect(await drift()).toHaveLength(4);

    const c = await cli('drift', '--url', env.adminUrl, '--tenant', 'drift_c', '--tenant', 'drift_d');
    expect([c.code, c.stdout]).toEqual([0, expect.stringMatching(/^run \d+: 2 target\(s\) fingerprinted, 0 drifted, 0 cannot be compared\n$/)]);
    expect(await drift()).toHaveLength(4);
  });

  it('refuses an unknown tenant before any run', async () => {
    const e = await adminError(`CALL admmgt.detectDrift(p_tenants => ARRAY['nobody'])`);
    expect([e.code, e.message]).toEqual(['42704', 'admmgt: detectDrift was asked for nobody, which is not a created target']);
  });

  it('does not count partitions that maintenance made for another window, nor a period partition made by hand; another partition is drift', async () => {
    // Every tenant gets the partitions of 2030 (the template's recorded fingerprint has none of them).
    await admin(`CALL admmgt.applyMaintenance(t_numdays => 60, p_asof => '2030-01-15'::date)`);
    await env.queryIn('drift_c', `CREATE TABLE mgttest.events_p20400101 PARTITION OF mgttest.events FOR VALUES FROM ('2040-01-01') TO ('2040-02-01')`);
    await env.queryIn('drift_d', `CREATE TABLE mgttest.events_hand PARTITION OF mgttest.events FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')`);
    await admin(`CALL admmgt.detectDrift(p_tenants => ARRAY['drift_c', 'drift_d'])`);
    expect((await drift()).filter((l) => /drift_[cd]/.test(l))).toEqual(['drift_d extra partition mgttest.events_hand']);
    await env.queryIn('drift_d', `DROP TABLE mgttest.events_hand`);
  });

  it('compares a tenant held at an older version with the template fingerprint of that version', async () => {
    await admin(`CALL admmgt.pin_tenant('drift_c', 1)`);
    await env.addScript(script2);
    await admin('CALL admmgt.applyScripts()');
    expect(await env.versions({ nullAs: 0 })).toEqual({ [TPL]: 2, drift_a: 2, drift_b: 2, drift_c: 1, drift_d: 2 });
    expect(await admin('SELECT version FROM admmgt.template_fingerprints ORDER BY version')).toEqual([{ version: 1 }, { version: 2 }]);
    await admin(`CALL admmgt.detectDrift(p_tenants => ARRAY['drift_c', 'drift_d'])`);
    expect((await drift()).filter((l) => /drift_[cd]/.test(l))).toEqual([]);
    expect(await admin(`SELECT dbname, version FROM admmgt.target_fingerprints WHERE dbname IN ('drift_c', 'drift_d') ORDER BY dbname`))
      .toEqual([{ dbname: 'drift_c', version: 1 }, { dbname: 'drift_d', version: 2 }]);
  });

  it('a refresh records the template fingerprint of its version again: routines it gave the fleet are no drift there', async () => {
    await env.queryIn(TPL, `CREATE FUNCTION mgttest.fresh_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
    await admin('CALL admmgt.refesh_stored_procedures()');
    await admin(`CALL admmgt.detectDrift(p_tenants => ARRAY['drift_c', 'drift_d'])`);
    // drift_c, held at version 1, got it too, but the template at version 1 never had it.
    expect((await drift()).filter((l) => /drift_[cd]/.test(l))).toEqual(['drift_c extra function mgttest.fresh_fn()']);
  });

  it('says cannot compare (not drift) when no fingerprint of the template at that version exists, and takes it live when the template is at it', async () => {
    await admin(`DELETE FROM admmgt.template_fingerprints`);
    await admin(`CALL admmgt.detectDrift(p_tenants => ARRAY['drift_c', 'drift_d'])`);
    expect(await admin(`SELECT dbname, kind, detail FROM admmgt.drift WHERE dbname IN ('drift_c', 'drift_d') ORDER BY dbname`)).toEqual([
      { dbname: 'drift_c', kind: 'cannot compare',
        detail: 'no fingerprint of the template at version 1 is recorded, and neither the template nor its copy on server local is at that version now' },
    ]);
    // drift_d (version 2) was compared with the template taken live, which is recorded now.
    expect(await admin('SELECT version FROM admmgt.template_fingerprints ORDER BY version')).toEqual([{ version: 2 }]);
    const r = await cli('drift', '--url', env.adminUrl, '--tenant', 'drift_c');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('cannot compare: no fingerprint of the template at version 1');
  });

});
