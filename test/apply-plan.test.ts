// plan_scripts(): the statements each target would run, in order, the template first; nothing executed.
// Every database of this file starts with applyplan_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyHelpers, S } from './support/apply.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applyplan_tpl';
const { admin, fresh, runCount, hasTable, ledger } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applyplan');
});
afterAll(async () => {
  await env?.close();
});

describe('plan_scripts: statements per target, nothing executed', () => {
  beforeAll(async () => {
    await fresh(['applyplan_p1', 'applyplan_p2']);
    await env.addScript({ id: 1, description: 'p one', tables: [{ schema: S, name: 'p1', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = 'applyplan_p2'`);
    await env.addScript({
      id: 2, description: 'p two',
      tables: [{ schema: S, name: 'planned', columns: [{ name: 'id', type: 'int', primaryKey: true }], partitions: [{ column: 'id', type: 'list', value: '1' }] }],
      calls: [`call ${S}.whatever()`],
    });
  });

  it('lists each target with the statements it would run, the template first', async () => {
    const before = await runCount();
    const plan = await admin<{ dbname: string; scriptid: number; seq: number; stmt: string }>('SELECT * FROM admmgt.plan_scripts()');
    expect([...new Set(plan.map((p) => `${p.dbname}:${p.scriptid}`))]).toEqual([`${TPL}:2`, 'applyplan_p1:2']);
    const [{ batch }] = await admin<{ batch: string[] }>('SELECT admmgt.script_batch(2) AS batch') as [{ batch: string[] }];
    for (const db of [TPL, 'applyplan_p1']) {
      const rows = plan.filter((p) => p.dbname === db);
      expect(rows.map((p) => p.seq)).toEqual(batch.map((_, i) => i + 1));
      expect(rows.map((p) => p.stmt)).toEqual(batch);
    }
    expect(plan.some((p) => p.stmt.startsWith('CREATE TABLE mgttest.planned_1 PARTITION OF mgttest.planned'))).toBe(true);
    expect(plan.some((p) => p.stmt === 'call mgttest.whatever()')).toBe(true);
    // Nothing ran: no table, no run, no log, versions unchanged.
    for (const db of [TPL, 'applyplan_p1']) {
      expect(await hasTable(db, 'planned')).toBe(false);
      expect(await ledger(db)).toEqual([1]);
    }
    expect(await runCount()).toBe(before);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE scriptid = 2`)).toEqual([{ n: 0 }]);
    expect(await env.versions()).toEqual({ [TPL]: 1, applyplan_p1: 1, applyplan_p2: 1 });
  });

  it('is empty when nothing is ready', async () => {
    await env.admin.query(`UPDATE admmgt.scripts SET status = 0 WHERE id = 2`);
    expect(await admin('SELECT * FROM admmgt.plan_scripts()')).toEqual([]);
    await env.admin.query(`UPDATE admmgt.scripts SET status = 1 WHERE id = 2`);
  });
});

describe('plan_steps and plan_destructive: parts, transaction modes and what a script destroys', () => {
  beforeAll(async () => {
    await fresh(['applyplan_d1', 'applyplan_d2']);
    await env.addScript({ id: 1, description: 'orders', tables: [{ schema: S, name: 'orders', columns: [
      { name: 'id', type: 'int', primaryKey: true }, { name: 'legacy', type: 'text' }, { name: 'total', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    for (const [db, n] of [[TPL, 10], ['applyplan_d1', 300], ['applyplan_d2', 0]] as const) {
      await env.queryIn(db, `INSERT INTO mgttest.orders (id) SELECT generate_series(1, ${n})`);
      if (n > 0) await env.queryIn(db, 'ANALYZE mgttest.orders');
    }
    await env.addScript({
      id: 2, description: 'drop a column, index concurrently',
      columnChanges: [{ schema: S, table: 'orders', column: 'legacy', action: 'drop', confirm: true }],
      indexes: [{ schema: S, table: 'orders', name: 'orders_total', columns: ['total'], concurrent: true }],
      sql: [{ seq: 1, body: 'UPDATE mgttest.orders SET total = 0 WHERE total IS NULL' }],
    });
  });

  it('lists every step with its part, transaction mode, row and destructive flag, and how many targets run it', async () => {
    const steps = await admin<{ part: number; txmode: string; source: string; destructive: boolean; stmt: string; targets: number }>(
      'SELECT part, txmode, source, destructive, stmt, targets FROM admmgt.plan_steps() ORDER BY seq');
    expect(steps).toEqual([
      { part: 1, txmode: 'script', source: expect.stringMatching(/^admmgt\.script_column_changes id \d+$/), destructive: true,
        stmt: 'ALTER TABLE mgttest.orders DROP COLUMN legacy', targets: 3 },
      { part: 1, txmode: 'script', source: expect.stringMatching(/^admmgt\.script_sql id \d+$/), destructive: false,
        stmt: expect.stringContaining('UPDATE mgttest.orders SET total = 0 WHERE total IS NULL'), targets: 3 },
      { part: 2, txmode: 'none', source: expect.stringMatching(/^admmgt\.script_indexes id \d+$/), destructive: false,
        stmt: 'CREATE INDEX CONCURRENTLY orders_total ON mgttest.orders USING btree (total)', targets: 3 },
    ]);
  });

  it('estimates, per target, the rows of what a destructive step drops from', async () => {
    const rows = await admin<{ dbname: string; relation: string; est_rows: string | null }>(
      'SELECT dbname, relation, est_rows FROM admmgt.plan_destructive() ORDER BY dbname');
    expect(rows).toEqual([
      { dbname: 'applyplan_d1', relation: 'mgttest.orders', est_rows: '300' },
      { dbname: 'applyplan_d2', relation: 'mgttest.orders', est_rows: null },
      { dbname: TPL, relation: 'mgttest.orders', est_rows: '10' },
    ]);
  });

  it('admmgt apply --plan says so, and runs nothing', async () => {
    const r = await cli('apply', '--url', env.adminUrl, '--plan');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      `script 2: 3 statement(s), in 2 parts per target (1 transaction(s), 1 statement(s) outside any), on 3 target(s): ${TPL}, applyplan_d1, applyplan_d2`,
      expect.stringMatching(/^ {2}DESTRUCTIVE admmgt\.script_column_changes id \d+: ALTER TABLE mgttest\.orders DROP COLUMN legacy \(mgttest\.orders: about 310 row\(s\) over 3 target\(s\), 1 not analyzed\)$/),
      '',
    ]);
    const json = JSON.parse((await cli('apply', '--url', env.adminUrl, '--plan', '--json')).stdout);
    expect(json.scripts[0]).toMatchObject({ transaction: 'in parts', parts: [{ part: 1, txmode: 'script', statements: 2 }, { part: 2, txmode: 'none', statements: 1 }],
      destructive: [{ relation: 'mgttest.orders', targets: 3, rows: 310, unknown: 1 }] });
    expect(await env.versions()).toEqual({ [TPL]: 1, applyplan_d1: 1, applyplan_d2: 1 });
  });
});

describe('a plan narrowed as the run would be', () => {
  it('shows the template and the chosen tenants only, with --tenant, and refuses a name that matches nothing', async () => {
    const only = await admin<{ dbname: string }>(`SELECT DISTINCT dbname FROM admmgt.plan_scripts(p_tenants => ARRAY['applyplan_d2']) ORDER BY 1`);
    expect(only.map((r) => r.dbname)).toEqual(['applyplan_d2', TPL]);
    const drops = await admin<{ dbname: string }>(`SELECT DISTINCT dbname FROM admmgt.plan_destructive(p_tenants => ARRAY['applyplan_d2']) ORDER BY 1`);
    expect(drops.map((r) => r.dbname)).toEqual(['applyplan_d2', TPL]);
    expect(await admin(`SELECT DISTINCT targets FROM admmgt.plan_steps(p_tenants => ARRAY['applyplan_d2'])`)).toEqual([{ targets: 2 }]);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.plan_scripts(p_upto => 1)`)).toEqual([{ n: 0 }]);

    const r = await cli('apply', '--url', env.adminUrl, '--plan', '--tenant', 'applyplan_d2', '--canary', '1');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^script 2: 3 statement\\(s\\), .* on 2 target\\(s\\): ${TPL}, applyplan_d2$`));
    const bad = await cli('apply', '--url', env.adminUrl, '--plan', '--tenant', 'applyplan_nope');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/applyplan_nope, which is not a created target/);
    expect(await env.versions()).toEqual({ [TPL]: 1, applyplan_d1: 1, applyplan_d2: 1 });
  });
});

describe('admmgt status: frozen scripts whose rows changed', () => {
  it('lists a script whose rows were changed around the freeze trigger, and exits 0 for it', async () => {
    await fresh(['applyplan_s1']);
    await env.addScript({ id: 1, description: 'one', tables: [{ schema: S, name: 'one', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    let r = await cli('status', '--url', env.adminUrl);
    expect(r.stdout).not.toContain('rows changed');
    await env.admin.query(`SET session_replication_role = replica;
      UPDATE admmgt.script_table_columns SET datatype = 'bigint' WHERE scriptid = 1;
      RESET session_replication_role`);
    r = await cli('status', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/scripts whose rows changed after the template applied them .*\n {2}1 \(frozen .*\): write a new script for the change/);
    expect(JSON.parse((await cli('status', '--url', env.adminUrl, '--json')).stdout).drift).toEqual([{ scriptid: 1, frozen_at: expect.any(String) }]);
  });
});
