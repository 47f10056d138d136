// applyScripts run after run: one connection into a target for all its scripts, and a tenant kept off
// updates brought up later through every script in order.
// Every database of this file starts with applyrun_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applyrun_tpl';
const { admin, fresh, scriptStatus, tables, ledger, columns } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applyrun');
});
afterAll(async () => {
  await env?.close();
});

describe('applyScripts: one connection per target per run', () => {
  it('opens one connection into a tenant for all the scripts it takes in a run', async () => {
    await fresh(['applyrun_c1']);
    for (const id of [1, 2, 3]) {
      await env.addScript({ id, description: `c${id}`, tables: [{ schema: S, name: `c${id}`, columns: [{ name: 'id', type: 'int' }] }] });
    }
    const sessions = async (): Promise<number> => {
      await env.admin.query('SELECT pg_stat_clear_snapshot()');
      const [row] = await admin<{ n: string }>(`SELECT sessions::text AS n FROM pg_stat_database WHERE datname = 'applyrun_c1'`);
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
    expect(await ledger('applyrun_c1')).toEqual([1, 2, 3]);
  });
});

describe('applyScripts: a tenant with updateflag = false', () => {
  beforeAll(async () => {
    await fresh(['applyrun_u1', 'applyrun_u2']);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = 'applyrun_u2'`);
    await env.addScript({ id: 1, description: 'u one', tables: [{ schema: S, name: 'u1', columns: [{ name: 'id', type: 'int' }] }] });
    await env.addScript({
      id: 2, description: 'u two', tables: [{ schema: S, name: 'u2', columns: [{ name: 'id', type: 'int' }] }],
      addColumns: [{ schema: S, table: 'u1', column: { name: 'v', type: 'text' } }],
    });
    await env.admin.query('CALL admmgt.applyScripts()');
  });

  it('is skipped and does not hold the scripts back (they reach status 2)', async () => {
    expect(await env.versions()).toEqual({ [TPL]: 2, applyrun_u1: 2, applyrun_u2: 0 });
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2 });
    expect(await tables('applyrun_u2')).toEqual([]);
    expect(await ledger('applyrun_u2')).toEqual([]);
    expect(await tables('applyrun_u1')).toEqual(['u1:r', 'u2:r']);
  });

  it('set back to true, is brought up by the next run through every script in order', async () => {
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = true WHERE dbname = 'applyrun_u2'`);
    const [{ last }] = await admin<{ last: string }>('SELECT max(id)::text AS last FROM admmgt.script_log') as [{ last: string }];
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 2, applyrun_u1: 2, applyrun_u2: 2 });
    expect(await tables('applyrun_u2')).toEqual(['u1:r', 'u2:r']);
    expect((await columns('applyrun_u2', 'u1')).map((c) => c.name)).toEqual(['id', 'v']);
    expect(await ledger('applyrun_u2')).toEqual([1, 2]);
    const log = await admin<{ scriptid: number; dbname: string }>(
      `SELECT scriptid, dbname FROM admmgt.script_log WHERE id > $1 ORDER BY id`, [last]);
    expect(new Set(log.map((r) => r.dbname))).toEqual(new Set(['applyrun_u2']));
    const order = log.map((r) => r.scriptid);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(new Set(order)).toEqual(new Set([1, 2]));
  });
});
