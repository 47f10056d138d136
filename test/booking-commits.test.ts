// Which bookings wait for the WAL flush. A booking whose loss in a server crash only costs a
// rerun's work (a whole script the target's ledger redoes, routines pushed again, partitions
// created if absent) commits without waiting; every other one waits. A commit that waits makes
// the admin backend write the WAL itself, so the backend's own WAL writes count them: with
// synchronous_commit on for the session, about one per booking that waits, and next to none for
// a call whose bookings do not. pg_stat_get_backend_io() is PostgreSQL 18's: on older servers
// there is no per-backend count (the cluster's includes the WAL writer, which flushes the
// bookings that do not wait), and the test is skipped there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec, TableSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

const TPL = 'bookc_tpl';
const TENANTS = Array.from({ length: 20 }, (_, i) => `bookc_t${String(i + 1).padStart(2, '0')}`);
const TARGETS = TENANTS.length + 1;
const LAST = TENANTS[TENANTS.length - 1]!;

const dayTable = (name: string): TableSpec => ({
  schema: 'app', name,
  columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'at', type: 'date', nullable: false }],
  partitions: [{ column: 'at', type: 'range', value: 'day' }],
});
const SCRIPT1: ScriptSpec = { id: 1, description: 'a daily table', tables: [dayTable('events')] };
const SCRIPT2: ScriptSpec = { id: 2, description: 'a daily table added later', tables: [dayTable('late')] };

let env: TestEnv;
let pg18 = false;

/** The WAL writes of the admin connection's own backend while f runs. */
async function walWrites(f: () => Promise<unknown>): Promise<number> {
  const read = async () => {
    // Pending statistics reach the shared ones when the backend next goes idle.
    await env.admin.query('SELECT pg_stat_force_next_flush()');
    const [r] = await env.rows<{ n: string }>(
      `SELECT coalesce(sum(writes), 0)::text AS n FROM pg_stat_get_backend_io(pg_backend_pid()) WHERE object = 'wal'`);
    return Number(r!.n);
  };
  const before = await read();
  await f();
  return (await read()) - before;
}

/** The targets whose booking of the operation's latest run says ok, for script p_scriptid (0: upkeep). */
async function okCount(op: string, scriptid = 0): Promise<number> {
  const [r] = await env.rows<{ n: number }>(
    `SELECT count(*)::int AS n FROM admmgt.target_results r
      WHERE r.operation = $1 AND r.scriptid = $2 AND r.ok AND r.run_id = (SELECT max(run_id) FROM admmgt.runs WHERE operation = $1)`, [op, scriptid]);
  return r!.n;
}

beforeAll(async () => {
  env = await createEnv('bookc');
  pg18 = Number((await env.rows<{ v: string }>(`SELECT current_setting('server_version_num') AS v`))[0]!.v) >= 180000;
  await env.makeTemplate(TPL, ['app']);
  await env.queryIn(TPL, `CREATE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
  await env.waitIdle(TPL);
  await env.makeTenants(TENANTS);
  await env.addScript(SCRIPT1);
  await env.admin.query('CALL admmgt.applyScripts()');
  // The test cluster runs with synchronous_commit off: a commit waits only when this session asks.
  await env.admin.query('SET synchronous_commit = on');
  // PostgreSQL 14 has no stats_fetch_consistency; the tests run on 18 only.
  if (pg18) await env.admin.query('SET stats_fetch_consistency = none');
}, 300_000);
afterAll(async () => {
  await env.close();
});

describe('bookings and the WAL flush', () => {
  it('a drift check waits for the flush of every tenant\'s booking', async (ctx) => {
    if (!pg18) ctx.skip();
    const writes = await walWrites(() => env.admin.query('CALL admmgt.detectDrift(p_verify => true)'));
    // The template is the reference, not a target of the check.
    expect(await okCount('drift')).toBe(TENANTS.length);
    expect(writes).toBeGreaterThanOrEqual(TENANTS.length);
  });

  it('an apply, a refresh and a maintenance that succeed do not wait for the flush of each target\'s booking', async (ctx) => {
    if (!pg18) ctx.skip();
    await env.addScript(SCRIPT2);
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
    await env.waitIdle(TPL);

    const apply = await walWrites(() => env.admin.query('CALL admmgt.applyScripts()'));
    const refresh = await walWrites(() => env.admin.query('CALL admmgt.refesh_stored_procedures(p_verify => true)'));
    const maintain = await walWrites(() => env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 5, p_verify => true)'));
    expect({ apply: apply < TARGETS / 2, refresh: refresh < TARGETS / 2, maintain: maintain < TARGETS / 2 }, JSON.stringify({ apply, refresh, maintain }))
      .toEqual({ apply: true, refresh: true, maintain: true });

    // They did their work and booked it.
    expect(await okCount('apply', 2)).toBe(TARGETS);
    expect(await okCount('refresh')).toBe(TENANTS.length);
    expect(await okCount('maintain')).toBe(TARGETS);
    for (const db of [TPL, LAST]) {
      expect((await env.queryIn<{ v: number }>(db, 'SELECT app.f_v() AS v'))[0]!.v, db).toBe(2);
      expect(Object.keys(await env.partitionBounds(db, 'app.late')).length, db).toBeGreaterThanOrEqual(6);
    }
  });
});
