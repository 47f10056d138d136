// plan_scripts(): the statements each target would run, in order, the template first; nothing executed.
// Every database of this file starts with applyplan_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyHelpers, S } from './support/apply.js';
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
