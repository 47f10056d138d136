// applyScripts over worker sessions (p_workers => k, 072_workers.sql): the invariants of the
// single-session engine hold there too: the template first and alone, every target atomic and
// booked exactly once, the stop rule; a worker killed while a slow script runs leaves its target
// booked failed once and a rerun converges; a caller killed mid-run leaves workers that stop
// after the target they have, and the rerun (which waits for them) converges.
// Every database of this file starts with workers_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

const TEMPLATE = 'workers_tpl';
const TENANTS = ['workers_t1', 'workers_t2', 'workers_t3', 'workers_t4', 'workers_t5', 'workers_t6'];

let env: TestEnv;
const sessions: pg.Client[] = [];

async function session(): Promise<{ client: pg.Client; pid: number; notices: string[] }> {
  const client = new pg.Client({ connectionString: env.adminUrl });
  client.on('error', () => {}); // a terminated session reports here
  const notices: string[] = [];
  client.on('notice', (n) => notices.push(`${n.severity}: ${n.message}`));
  await client.connect();
  sessions.push(client);
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0].pid, notices };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const versions = () => env.versions({ nullAs: 0 });

/** A script with a table and a call that takes p_seconds in every target's transaction. */
const slowScript = (id: number, seconds: number): ScriptSpec => ({
  id, description: `slow ${id}`,
  tables: [{ schema: 'app', name: `w_${id}`, columns: [{ name: 'id', type: 'int', primaryKey: true }] }],
  calls: [`CALL app.slow_step(${id}, ${seconds})`],
});

/** What a tenant itself says about script id: in its ledger, its table there, how often its call ran. */
async function tenantState(db: string, id: number) {
  const [row] = await env.queryIn<{ applied: boolean; table: boolean; calls: number }>(db, `
    SELECT EXISTS (SELECT 1 FROM admmgt.applied_scripts WHERE scriptid = ${id}) AS applied,
           to_regclass('app.w_${id}') IS NOT NULL AS table,
           (SELECT count(*)::int FROM app.calls WHERE scriptid = ${id}) AS calls`);
  return row!;
}

/** Every tenant exactly at the old or the new version (ledger, table and call agree); returns those with the script. */
async function atOldOrNew(id: number): Promise<string[]> {
  const states = await Promise.all(TENANTS.map((db) => tenantState(db, id)));
  const admin = await versions();
  TENANTS.forEach((db, i) => {
    const s = states[i]!;
    expect(s, db).toEqual({ applied: s.applied, table: s.applied, calls: s.applied ? 1 : 0 });
    // The admin side never claims more than the tenant has.
    if (!s.applied) expect(admin[db], db).toBeLessThan(id);
  });
  return TENANTS.filter((_, i) => states[i]!.applied);
}

/** After a rerun: every tenant has script id once, and the admin side agrees. */
async function converged(id: number) {
  const admin = await versions();
  for (const db of [TEMPLATE, ...TENANTS]) expect(admin[db], db).toBe(id);
  for (const db of TENANTS) expect(await tenantState(db, id), db).toEqual({ applied: true, table: true, calls: 1 });
  expect((await env.admin.query('SELECT * FROM admmgt.failures')).rows).toEqual([]);
  expect((await env.admin.query('SELECT count(*)::int AS n FROM admmgt.work_queue')).rows).toEqual([{ n: 0 }]);
}

/** The worker sessions of the admin database: CALL admmgt._work(...) over dblink. */
async function workerPids(): Promise<number[]> {
  const { rows } = await env.admin.query(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'CALL admmgt._work(%' AND pid <> pg_backend_pid()`);
  return rows.map((r) => r.pid);
}

/** No session of admmgt left in a tenant database, nor a worker. */
async function settled() {
  await until('tenant and worker sessions to end', async () => (await env.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE (application_name = 'admmgt' AND starts_with(datname, 'workers_'))
         OR (datname = current_database() AND query LIKE 'CALL admmgt._work(%' AND pid <> pg_backend_pid())`)).rows[0].n === 0);
}

beforeAll(async () => {
  env = await createEnv('workers');
  await env.makeTemplate(TEMPLATE, ['app']);
  await env.queryIn(TEMPLATE, `
    CREATE TABLE app.calls (scriptid int, at timestamptz DEFAULT clock_timestamp());
    CREATE PROCEDURE app.slow_step(p_scriptid int, p_seconds float8) LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_sleep(p_seconds);
        INSERT INTO app.calls (scriptid) VALUES (p_scriptid);
    END $$;`);
  await env.waitIdle(TEMPLATE, 10_000);
  await env.makeTenants(TENANTS);
});

afterAll(async () => {
  for (const c of sessions) await c.end().catch(() => {});
  await env?.close();
});

describe('applyScripts with workers', () => {
  it('runs the tenants in several sessions, the template first and alone, each target once', async () => {
    await env.addScript(slowScript(1, 0.3));
    const runner = await session();
    const call = runner.client.query('CALL admmgt.applyScripts(p_workers => 3)');
    // More than one session works on tenants at once.
    let most = 0;
    const watch = (async () => {
      for (;;) {
        const { rows } = await env.admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'admmgt' AND starts_with(datname, 'workers_t') AND query LIKE '%slow_step%'`);
        most = Math.max(most, rows[0].n);
        if (most >= 2) return;
        await sleep(20);
      }
    })();
    await call;
    await Promise.race([watch, sleep(100)]);
    expect(most).toBeGreaterThanOrEqual(2);

    expect(Object.values(await versions())).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(await atOldOrNew(1)).toEqual(TENANTS);
    const { rows: run } = await env.admin.query(
      `SELECT run_id, targets, failed FROM admmgt.runs WHERE operation = 'apply' ORDER BY run_id DESC LIMIT 1`);
    expect(run[0]).toMatchObject({ targets: 7, failed: 0 });
    // One log row per tenant (the template logs its fingerprint besides).
    const { rows: logged } = await env.admin.query(
      `SELECT dbname, count(*)::int AS n, min(outcome) AS outcome FROM admmgt.script_log WHERE run_id = $1 AND dbname <> $2 GROUP BY 1 ORDER BY 1`,
      [run[0].run_id, TEMPLATE]);
    expect(logged).toEqual(TENANTS.map((dbname) => ({ dbname, n: 1, outcome: 'ok' })));
    // The template finished before any tenant started.
    const { rows: order } = await env.admin.query(`
      SELECT bool_and(t.finished_at <= r.finished_at - make_interval(secs => r.elapsed_ms / 1000)) AS first
        FROM admmgt.target_results t, admmgt.target_results r
       WHERE t.run_id = $1 AND r.run_id = $1 AND t.dbname = $2 AND r.dbname <> $2`, [run[0].run_id, TEMPLATE]);
    expect(order).toEqual([{ first: true }]);
    // The caller relays the progress of every tenant, whichever session ran it.
    const progress = runner.notices.filter((n) => /^NOTICE: admmgt apply: workers_t\d (done|FAILED)/.test(n));
    expect(progress).toHaveLength(TENANTS.length);
    expect(progress.at(-1)).toMatch(/\(6\/6 done, 0 failed\)$/);
    expect((await env.admin.query('SELECT count(*)::int AS n FROM admmgt.work_queue')).rows).toEqual([{ n: 0 }]);
    await settled();
  });
});
