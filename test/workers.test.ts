// applyScripts over worker sessions (p_workers => k, 072_workers.sql): the invariants of the
// single-session engine hold there too: the template first and alone, every target atomic and
// booked exactly once, the stop rule; a worker killed while a slow script runs leaves its target
// booked failed once and a rerun converges; a caller killed mid-run leaves workers that stop
// after the target they have, and the rerun (which waits for them) converges.
// Every database of this file starts with workers_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { applyScripts } from '../src/calls.js';
import type { ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';
import { addSlowStep, adminSessions, sleep, until as untilWithin } from './support/sessions.js';

const TEMPLATE = 'workers_tpl';
const TENANTS = ['workers_t1', 'workers_t2', 'workers_t3', 'workers_t4', 'workers_t5', 'workers_t6'];

let env: TestEnv;
const { session, closeAll } = adminSessions(() => env);
const until = (what: string, check: () => Promise<boolean>) => untilWithin(what, check, 20_000);

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

/** Every tenant exactly at the old or the new version (ledger, table and call agree; planted: has the table from elsewhere); returns those with the script. */
async function atOldOrNew(id: number, planted: string[] = []): Promise<string[]> {
  const states = await Promise.all(TENANTS.map((db) => tenantState(db, id)));
  const admin = await versions();
  TENANTS.forEach((db, i) => {
    const s = states[i]!;
    expect(s, db).toEqual({ applied: s.applied, table: s.applied || planted.includes(db), calls: s.applied ? 1 : 0 });
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

/** No session of admmgt at work in a tenant database, nor a worker (a cancelled caller keeps its connections, idle). */
async function settled() {
  await until('tenant and worker sessions to end', async () => (await env.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE ((application_name = 'admmgt' AND starts_with(datname, 'workers_'))
             OR (datname = current_database() AND query LIKE 'CALL admmgt._work(%' AND pid <> pg_backend_pid()))
        AND state IS DISTINCT FROM 'idle'`)).rows[0].n === 0);
}

beforeAll(async () => {
  env = await createEnv('workers');
  await env.makeTemplate(TEMPLATE, ['app']);
  await addSlowStep(env, TEMPLATE);
  await env.makeTenants(TENANTS);
});

afterAll(async () => {
  await closeAll();
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

describe('p_workers', () => {
  it('is refused out of 1 to 64 before anything is touched, naming it; the CLI refuses it as typed', async () => {
    const before = await versions();
    const { rows: runs } = await env.admin.query('SELECT count(*)::int AS n FROM admmgt.runs');
    const e = await env.errorOf('CALL admmgt.applyScripts(p_workers => 0)');
    expect([e.code, e.message]).toEqual(['22023', 'admmgt.applyScripts: p_workers must be between 1 and 64, not 0']);
    expect(e.hint).toContain('leave p_workers out');
    expect(() => applyScripts(env.admin, { workers: 65 })).toThrow('--workers must be an integer from 1 to 64, not 65');
    expect(await versions()).toEqual(before);
    expect((await env.admin.query('SELECT count(*)::int AS n FROM admmgt.runs')).rows).toEqual(runs);
  });
});

describe('failures under workers', () => {
  it('keeps the template the canary: it fails alone and no tenant is touched', async () => {
    await env.queryIn(TEMPLATE, 'CREATE TABLE app.w_2 (id int)');
    await env.addScript(slowScript(2, 0));
    const runner = await session();
    await runner.client.query('CALL admmgt.applyScripts(p_workers => 3)');
    expect(await versions()).toMatchObject({ [TEMPLATE]: 1 });
    expect(Object.values(await versions())).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect((await env.admin.query('SELECT status FROM admmgt.scripts WHERE id = 2')).rows).toEqual([{ status: 3 }]);
    const { rows } = await env.admin.query(
      `SELECT DISTINCT dbname FROM admmgt.script_log WHERE scriptid = 2 AND run_id = (SELECT max(run_id) FROM admmgt.runs)`);
    expect(rows).toEqual([{ dbname: TEMPLATE }]);
    expect(await atOldOrNew(2)).toEqual([]);
    // Fixed on the template, the script is ready again.
    await env.queryIn(TEMPLATE, 'DROP TABLE app.w_2');
    await env.admin.query('CALL admmgt.retry_script(2)');
  });

  it('stops taking targets after p_max_failures, every target atomic, in every session', async () => {
    // The first two tenants already have the table script 2 creates: their batches fail.
    for (const db of TENANTS.slice(0, 2)) await env.queryIn(db, 'CREATE TABLE app.w_2 (id int)');
    const runner = await session();
    await runner.client.query('CALL admmgt.applyScripts(p_workers => 2, p_max_failures => 1)');
    const run = (await env.admin.query(`SELECT run_id, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`)).rows[0];
    expect([1, 2]).toContain(run.failed);
    expect(await atOldOrNew(2, TENANTS.slice(0, 2))).toEqual([]);
    const { rows: touched } = await env.admin.query(
      `SELECT DISTINCT dbname FROM admmgt.script_log WHERE run_id = $1 AND dbname <> $2 ORDER BY 1`, [run.run_id, TEMPLATE]);
    expect(touched.length).toBe(run.failed);
    expect(runner.notices.some((n) => /^WARNING: admmgt apply: stopped after \d failed target\(s\) \(p_max_failures => 1\): [45] target\(s\) left untouched$/.test(n)))
      .toBe(true);
    // A failure booked in a worker reaches the caller as a warning, as the engine's own does.
    expect(runner.notices.filter((n) => /^WARNING: admmgt apply: workers_t[12] failed: .*already exists \(SQLSTATE 42P07\)$/.test(n)))
      .toHaveLength(run.failed);

    // Without the stop rule the others go on; the two fail again, atomically.
    await runner.client.query('CALL admmgt.applyScripts(p_workers => 3)');
    expect(await atOldOrNew(2, TENANTS.slice(0, 2))).toEqual(TENANTS.slice(2));
    const { rows: failures } = await env.admin.query('SELECT dbname, sqlstate FROM admmgt.failures ORDER BY dbname');
    expect(failures).toEqual(TENANTS.slice(0, 2).map((dbname) => ({ dbname, sqlstate: '42P07' })));
    for (const db of TENANTS.slice(0, 2)) await env.queryIn(db, 'DROP TABLE app.w_2');
    await runner.client.query('CALL admmgt.applyScripts(p_workers => 3)');
    await converged(2);
  });
});

describe('a worker killed mid-run', () => {
  it('books the target it had as failed, once; the other sessions finish the run', async () => {
    await env.addScript(slowScript(3, 2));
    const runner = await session();
    const call = runner.client.query('CALL admmgt.applyScripts(p_workers => 3)').then(() => 'finished', (e: Error) => e.message);
    // A worker's claim is committed with its first booking: then it works on its second target.
    let victim: { pid: number; dbname: string } | undefined;
    await until('a worker to work on its second target', async () => {
      const { rows } = await env.admin.query(`
        SELECT q.worker_pid AS pid, v.dbname FROM admmgt.work_queue q
          JOIN admmgt.runs r ON r.run_id = q.run_id JOIN admmgt.vendor_db_settings v ON v.id = q.target_id
         WHERE NOT q.done AND q.worker_pid IS NOT NULL AND q.worker_pid <> r.pid LIMIT 1`);
      victim = rows[0];
      return victim !== undefined;
    });
    expect(await workerPids()).toContain(victim!.pid);
    expect((await env.admin.query('SELECT pg_terminate_backend($1) AS ok', [victim!.pid])).rows).toEqual([{ ok: true }]);
    expect(await call).toBe('finished');

    const run = (await env.admin.query(`SELECT run_id, targets, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`)).rows[0];
    expect(run).toMatchObject({ targets: 7, failed: 1 });
    const { rows: failed } = await env.admin.query(`SELECT dbname, sqlstate, message FROM admmgt.failures`);
    expect(failed).toEqual([{ dbname: victim!.dbname, sqlstate: '08006', message: expect.stringContaining(`the worker session (pid ${victim!.pid}) that ran it ended`) }]);
    // Booked once: one log row per tenant, the victim's the failure.
    const { rows: logged } = await env.admin.query(
      `SELECT dbname, count(*)::int AS n, min(outcome) AS outcome FROM admmgt.script_log WHERE run_id = $1 AND dbname <> $2 GROUP BY 1 ORDER BY 1`,
      [run.run_id, TEMPLATE]);
    expect(logged).toEqual(TENANTS.map((dbname) => ({ dbname, n: 1, outcome: dbname === victim!.dbname ? 'error' : 'ok' })));
    expect(runner.notices).toContainEqual(expect.stringMatching(new RegExp(`^WARNING: admmgt apply: worker session pid ${victim!.pid} ended before the run did`)));

    // The victim's transaction on its target rolled back, or committed before it could tell.
    await settled();
    const applied = await atOldOrNew(3);
    expect(applied.filter((db) => db !== victim!.dbname)).toEqual(TENANTS.filter((db) => db !== victim!.dbname));
    await runner.client.query('CALL admmgt.applyScripts(p_workers => 3)');
    await converged(3);
    const { rows: rerun } = await env.admin.query(
      `SELECT dbname, outcome FROM admmgt.script_log WHERE run_id = (SELECT max(run_id) FROM admmgt.runs) AND dbname <> $1`, [TEMPLATE]);
    expect(rerun).toEqual([{ dbname: victim!.dbname, outcome: applied.includes(victim!.dbname) ? 'already applied' : 'ok' }]);
  });
});

describe('a caller killed mid-run', () => {
  it('leaves workers that stop after their target; a second run waits for them; the rerun converges', async () => {
    await env.addScript(slowScript(4, 2));
    const runner = await session();
    const call = runner.client.query('CALL admmgt.applyScripts(p_workers => 2)').then(() => 'finished', (e: Error) => e.message);
    await until('the first tenant to reach version 4', async () =>
      Object.entries(await versions()).some(([db, v]) => db !== TEMPLATE && v === 4));
    const workers = await workerPids();
    expect(workers).toHaveLength(1);
    expect((await env.admin.query('SELECT pg_terminate_backend($1) AS ok', [runner.pid])).rows).toEqual([{ ok: true }]);
    expect(await call).toMatch(/terminat/i);
    await until('the caller to end', async () =>
      (await env.admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [runner.pid])).rows[0].n === 0);

    // Its worker still finishes the target it has: no second run meanwhile.
    await expect(env.admin.query('CALL admmgt.applyScripts()')).rejects.toMatchObject({
      code: '55P03', message: expect.stringContaining(`worker sessions of an earlier run still finish their targets: pid ${workers[0]}`),
    });
    await settled();
    const applied = await atOldOrNew(4);
    // It took no target after the caller was gone.
    expect(applied.length).toBeGreaterThanOrEqual(2);
    expect(applied.length).toBeLessThanOrEqual(4);

    await env.admin.query('CALL admmgt.applyScripts(p_workers => 2, p_wait_seconds => 30)');
    await converged(4);
  });

  it('treats a cancelled caller as gone: its workers stop, and its own next call finishes the run', async () => {
    await env.addScript(slowScript(5, 2));
    const runner = await session();
    const call = runner.client.query('CALL admmgt.applyScripts(p_workers => 2)').then(() => null, (e: pg.DatabaseError) => e);
    await until('the first tenant to reach version 5', async () =>
      Object.entries(await versions()).some(([db, v]) => db !== TEMPLATE && v === 5));
    await env.admin.query('SELECT pg_cancel_backend($1)', [runner.pid]);
    expect(await call).toMatchObject({ code: '57014' });
    await settled();
    // The session lives on, idle: its worker took no target after the cancel.
    const applied = await atOldOrNew(5);
    expect(applied.length).toBeGreaterThanOrEqual(2);
    expect(applied.length).toBeLessThanOrEqual(4);
    await runner.client.query('CALL admmgt.applyScripts(p_workers => 2)');
    await converged(5);
  });
});

// A claim (FOR UPDATE SKIP LOCKED under read committed) locks the newest version of each row it
// tries: a row another session claimed since the claim's snapshot stays locked until the claim's
// transaction ends, though it is not taken. That transaction then books, and waits for the run's
// row. Here a plain session holds such a lock and then updates the run's row, as that claim does.
describe('a queue row another transaction holds locked', () => {
  it('makes a booking wait before it takes the run\'s row: the holder books too, and nobody deadlocks', async () => {
    await env.addScript(slowScript(6, 2));
    const runner = await session();
    const holder = await session();
    const call = runner.client.query('CALL admmgt.applyScripts(p_workers => 3)').then(() => 'finished', (e: Error) => e.message);
    let row: { run_id: string; target_id: string; pid: number } | undefined;
    await until('a worker to work on a tenant', async () => {
      const { rows } = await env.admin.query(`
        SELECT q.run_id, q.target_id, q.worker_pid AS pid FROM admmgt.work_queue q JOIN admmgt.runs r ON r.run_id = q.run_id
         WHERE NOT q.done AND q.worker_pid IS NOT NULL AND q.worker_pid <> r.pid LIMIT 1`);
      row = rows[0];
      return row !== undefined;
    });
    await holder.client.query('BEGIN');
    await holder.client.query(`SET LOCAL lock_timeout = '20s'`);
    await holder.client.query('SELECT 1 FROM admmgt.work_queue WHERE run_id = $1 AND target_id = $2 FOR NO KEY UPDATE', [row!.run_id, row!.target_id]);
    await until('the worker\'s booking to wait for the holder', async () => (await env.admin.query(
      'SELECT $1::int = ANY (pg_blocking_pids($2)) AS waits', [holder.pid, row!.pid])).rows[0].waits);
    const booked = await holder.client.query('UPDATE admmgt.runs SET targets = targets WHERE run_id = $1', [row!.run_id])
      .then((r) => r.rowCount, (e: pg.DatabaseError) => `${e.code}: ${e.message}`);
    await holder.client.query(booked === 1 ? 'COMMIT' : 'ROLLBACK');
    expect(booked).toBe(1);
    expect(await call).toBe('finished');
    expect(runner.notices.filter((n) => n.startsWith('WARNING'))).toEqual([]);
    expect((await env.admin.query('SELECT targets, failed FROM admmgt.runs WHERE run_id = $1', [row!.run_id])).rows)
      .toEqual([{ targets: 7, failed: 0 }]);
    await converged(6);
  });

  it('is reported by the caller\'s next relay, not waited for', async () => {
    const [{ run_id: run, a, b }] = (await env.admin.query(`
      SELECT (SELECT max(run_id) FROM admmgt.runs) AS run_id,
             (SELECT id FROM admmgt.vendor_db_settings WHERE dbname = $1) AS a, (SELECT id FROM admmgt.vendor_db_settings WHERE dbname = $2) AS b`,
      [TENANTS[0], TENANTS[1]])).rows;
    await env.admin.query(`
      INSERT INTO admmgt.work_queue (run_id, target_id, ord, items, worker_pid, done, ok)
      SELECT $1, v.id, v.id, ARRAY[admmgt._item('script', v.id, v.dbname, NULL, v.dbname, 6, '{}', true)]::text, 1, true, true
        FROM admmgt.vendor_db_settings v WHERE v.id IN ($2, $3)`, [run, a, b]);
    const caller = await session();
    const holder = await session();
    try {
      await holder.client.query('BEGIN');
      await holder.client.query('SELECT 1 FROM admmgt.work_queue WHERE run_id = $1 AND target_id = $2 FOR NO KEY UPDATE', [run, a]);
      // As in a booking: the caller holds the run's row while it relays.
      await caller.client.query('BEGIN');
      await caller.client.query(`SET LOCAL lock_timeout = '3s'`);
      await caller.client.query('UPDATE admmgt.runs SET targets = targets WHERE run_id = $1', [run]);
      const first = (await caller.client.query(`SELECT admmgt._relay('apply', $1, NULL) AS c`, [run])).rows[0].c;
      expect(first).toEqual([1, 0, 2]);
      expect(caller.notices).toEqual([expect.stringContaining(`admmgt apply: ${TENANTS[1]} done  (1/2 done`)]);
      await caller.client.query('COMMIT');
      await holder.client.query('COMMIT');
      expect((await caller.client.query(`SELECT admmgt._relay('apply', $1, $2) AS c`, [run, first])).rows[0].c).toEqual([2, 0, 2]);
      expect(caller.notices[1]).toContain(`admmgt apply: ${TENANTS[0]} done  (2/2 done`);
    } finally {
      await caller.client.query('ROLLBACK').catch(() => {});
      await holder.client.query('ROLLBACK').catch(() => {});
      await env.admin.query('DELETE FROM admmgt.work_queue WHERE run_id = $1', [run]);
    }
  });
});
