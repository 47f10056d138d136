// Maintenance, refresh, deploy, retention and drift over worker sessions (p_workers => k,
// 072_workers.sql), as applyScripts: every tenant gets its partitions or routines, each target is
// booked once, the upkeep records still leave out the targets that hold everything; and a deploy's workers, which
// do the work of apply, refresh and maintenance, keep all three from starting while a killed
// caller's workers still finish their targets.
// Every database of this file starts with wupk_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { ScriptSpec, TableSpec } from '../templates/script.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';
import { addSlowStep, adminSessions, until as untilWithin, type Session } from './support/sessions.js';

const TPL = 'wupk_tpl';
const TENANTS = ['wupk_t1', 'wupk_t2', 'wupk_t3', 'wupk_t4', 'wupk_t5'];
const ALL = [TPL, ...TENANTS];

let env: TestEnv;
const { session, closeAll } = adminSessions(() => env);
const until = (what: string, check: () => Promise<boolean>) => untilWithin(what, check, 20_000);

const dayTable = (name: string): TableSpec => ({
  schema: 'app', name,
  columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'at', type: 'date', nullable: false }],
  partitions: [{ column: 'at', type: 'range', value: 'day' }],
});

/** The day partitions of app.<table> from 2030-01-01 on, by name. */
async function days(db: string, table: string): Promise<string[]> {
  return Object.keys(await env.partitionBounds(db, `app.${table}`)).filter((n) => n >= `${table}_p20300101`).sort();
}
const want = (table: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${table}_p203001${String(i + 1).padStart(2, '0')}`);

async function lastRun(op: string) {
  const [r] = await env.rows<{ run_id: string; targets: number | null; failed: number | null; skipped: number | null }>(
    `SELECT run_id::text, targets, failed, skipped FROM admmgt.runs WHERE operation = $1 ORDER BY run_id DESC LIMIT 1`, [op]);
  return r!;
}

/** Each of the targets booked once in the run for the operation (a template's apply books its fingerprint besides), nothing left in the queue, no failure. */
async function bookedOnce(runId: string, op: string, targets: string[]) {
  const rows = await env.rows<{ db: string; n: number }>(
    `SELECT lower(v.dbname) AS db, count(*)::int AS n FROM admmgt.target_results t JOIN admmgt.vendor_db_settings v ON v.id = t.target_id
      WHERE t.run_id = $1 AND t.operation = $2 AND (lower(v.dbname) = ANY ($3) OR v.dbname <> $4) GROUP BY 1`, [runId, op, targets, TPL]);
  expect(Object.fromEntries(rows.map((r) => [r.db, r.n])), op).toEqual(Object.fromEntries(targets.map((db) => [db, 1])));
  expect(await env.rows('SELECT count(*)::int AS n FROM admmgt.work_queue')).toEqual([{ n: 0 }]);
  expect(await env.rows('SELECT count(*)::int AS n FROM admmgt.failures')).toEqual([{ n: 0 }]);
}

/** The worker sessions of an operation on the admin database, while a call runs. */
async function workerPids(op: string): Promise<number[]> {
  const { rows } = await env.admin.query(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE $1 AND pid <> pg_backend_pid()`,
    [`CALL admmgt._work(${op === 'deploy' ? "'deploy'" : `'${op}'`}%`]);
  return rows.map((r) => r.pid);
}

/**
 * Runs a call in its own session while one tenant's session holds a lock the call's work there
 * needs (the blocker's statements), so that the call is seen to have started worker sessions;
 * the lock is given up then, well within admmgt.lock_timeout.
 */
async function withWorkersSeen(op: string, call: string, blocker: string[]): Promise<Session> {
  const runner = await session();
  const tenant = new pg.Client({ connectionString: env.urlFor(TENANTS[0]!) });
  await tenant.connect();
  try {
    await tenant.query('BEGIN');
    for (const s of blocker) await tenant.query(s);
    const done = runner.client.query(call);
    done.catch(() => {});
    await until(`worker sessions of ${op}`, async () => (await workerPids(op)).length === 2);
    await tenant.query('ROLLBACK');
    await done;
  } finally {
    await tenant.end();
  }
  return runner;
}

beforeAll(async () => {
  env = await createEnv('wupk');
  await env.makeTemplate(TPL, ['app']);
  await addSlowStep(env, TPL);
  await env.queryIn(TPL, `CREATE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
  await env.waitIdle(TPL);
  await env.makeTenants(TENANTS);
  await env.addScript({ id: 1, description: 'a daily table', tables: [dayTable('events')] });
  await env.admin.query('CALL admmgt.applyScripts()');
});

afterAll(async () => {
  await closeAll();
  await env?.close();
});

describe('upkeep with workers', () => {
  it('maintenance: every target gets its partitions, each booked once; the second call connects to none', async () => {
    const runner = await withWorkersSeen('maintain', `CALL admmgt.applyMaintenance(t_numdays => 9, p_asof => '2030-01-01', p_workers => 3)`,
                                         ['LOCK TABLE app.events IN ACCESS SHARE MODE']);
    expect(runner.notices.filter((n) => n.startsWith('WARNING'))).toEqual([]);
    for (const db of ALL) expect(await days(db, 'events'), db).toEqual(want('events', 10));
    const run = await lastRun('maintain');
    expect(run).toMatchObject({ targets: ALL.length, failed: 0 });
    await bookedOnce(run.run_id, 'maintain', ALL);

    const r = await cli('maintain', '--url', env.adminUrl, '--days', '9', '--as-of', '2030-01-01', '--workers', '3', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'maintain', targets: 0, failed: 0, skipped: ALL.length });
  });

  it('refresh: every tenant gets the template\'s routines, each booked once; the second call connects to none', async () => {
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
    await withWorkersSeen('refresh', 'CALL admmgt.refesh_stored_procedures(p_workers => 3)',
                          [`CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1'`]);
    for (const db of TENANTS) {
      expect(await env.queryIn(db, `SELECT prosrc FROM pg_proc WHERE oid = 'app.f_v()'::regprocedure`), db).toEqual([{ prosrc: 'SELECT 2' }]);
    }
    const run = await lastRun('refresh');
    expect(run).toMatchObject({ targets: TENANTS.length, failed: 0 });
    await bookedOnce(run.run_id, 'refresh', TENANTS);

    const r = await cli('refresh-procs', '--url', env.adminUrl, '--workers', '3', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'refresh', targets: 0, failed: 0, skipped: TENANTS.length });
  });

  it('deploy: the template alone first, then each tenant its script, routines and partitions in one of the sessions', async () => {
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 3'`);
    await env.addScript({ id: 2, description: 'another daily table', tables: [dayTable('clicks')] });
    const runner = await withWorkersSeen('deploy', `CALL admmgt.deploy(t_numdays => 9, p_workers => 3)`,
                                         ['LOCK TABLE app.events IN ACCESS SHARE MODE']);
    expect(await env.versions()).toEqual(Object.fromEntries(ALL.map((db) => [db, 2])));
    const today = (await env.rows<{ n: string }>(`SELECT 'clicks_p' || to_char(current_date + 9, 'YYYYMMDD') AS n`))[0]!.n;
    for (const db of ALL) expect(Object.keys(await env.partitionBounds(db, 'app.clicks')), db).toContain(today);
    for (const db of TENANTS) {
      expect(await env.queryIn(db, `SELECT prosrc FROM pg_proc WHERE oid = 'app.f_v()'::regprocedure`), db).toEqual([{ prosrc: 'SELECT 3' }]);
    }
    const run = await lastRun('deploy');
    expect(run).toMatchObject({ targets: ALL.length, failed: 0 });
    await bookedOnce(run.run_id, 'apply', TENANTS);
    await bookedOnce(run.run_id, 'refresh', TENANTS);
    await bookedOnce(run.run_id, 'maintain', ALL);
    expect(await env.rows(`
      SELECT bool_and(t.finished_at <= r.finished_at - make_interval(secs => r.elapsed_ms / 1000)) AS first
        FROM admmgt.target_results t, admmgt.target_results r
       WHERE t.run_id = $1 AND r.run_id = $1 AND t.dbname = $2 AND r.dbname <> $2`, [run.run_id, TPL])).toEqual([{ first: true }]);
    // The caller relays the progress of every tenant, whichever session ran it.
    const progress = runner.notices.filter((n) => /^NOTICE: admmgt deploy: wupk_t\d done/.test(n));
    expect(progress).toHaveLength(TENANTS.length);
  });

  it('refuses p_workers out of range, naming the procedure, before any run; the CLI refuses --workers as typed', async () => {
    const before = await env.rows('SELECT max(run_id)::text AS id FROM admmgt.runs');
    for (const [name, call] of [
      ['applyMaintenance', 'CALL admmgt.applyMaintenance(t_numdays => 30, p_workers => 0)'],
      ['refesh_stored_procedures', 'CALL admmgt.refesh_stored_procedures(p_workers => 0)'],
      ['refesh_views', 'CALL admmgt.refesh_views(p_workers => 65)'],
      ['deploy', 'CALL admmgt.deploy(p_workers => 0)'],
      ['applyLifecycle', 'CALL admmgt.applyLifecycle(p_workers => 0)'],
      ['detectDrift', 'CALL admmgt.detectDrift(p_workers => 65)'],
    ]) {
      const e = await env.errorOf(call!);
      expect(e, name).toMatchObject({ code: '22023', message: expect.stringContaining(`${name}: p_workers`) });
    }
    for (const command of ['maintain', 'refresh-procs', 'refresh-views', 'deploy', 'lifecycle', 'drift']) {
      const r = await cli(command, '--url', env.adminUrl, '--workers', '0');
      expect([r.code, r.stderr], command).toEqual([2, expect.stringContaining('--workers must be an integer from 1 to 64, not 0')]);
    }
    expect(await env.rows('SELECT max(run_id)::text AS id FROM admmgt.runs')).toEqual(before);
  });
});

describe('a deploy whose caller is killed', () => {
  it('leaves workers that keep maintenance, refresh and apply from starting until they are done', async () => {
    await env.addScript({
      id: 3, description: 'slow', tables: [{ schema: 'app', name: 'w_3', columns: [{ name: 'id', type: 'int' }] }],
      calls: ['CALL app.slow_step(3, 3)'],
    } satisfies ScriptSpec);
    const runner = await session();
    const call = runner.client.query('CALL admmgt.deploy(p_workers => 2)').then(() => 'finished', (e: pg.DatabaseError) => e.message);
    // Two tenants in their slow step at once: the caller has one, its worker the other.
    await until('the caller and its worker to work on a tenant each', async () => (await workerPids('deploy')).length === 1 && (await env.rows(
      `SELECT 1 FROM pg_stat_activity WHERE application_name = 'admmgt' AND starts_with(datname, 'wupk_t') AND query LIKE '%slow_step%'`)).length === 2);
    const [worker] = await workerPids('deploy');
    await env.admin.query('SELECT pg_terminate_backend($1)', [runner.pid]);
    expect(await call).toMatch(/terminat/i);
    await until('the caller to end', async () =>
      (await env.admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [runner.pid])).rows[0].n === 0);

    const busy = expect.stringContaining(`worker sessions of an earlier run still finish their targets: pid ${worker}`);
    await expect(env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 9)`)).rejects.toMatchObject({ code: '55P03', message: busy });
    await expect(env.admin.query('CALL admmgt.refesh_stored_procedures()')).rejects.toMatchObject({ code: '55P03', message: busy });
    await expect(env.admin.query('CALL admmgt.applyScripts()')).rejects.toMatchObject({ code: '55P03', message: busy });

    await env.admin.query('CALL admmgt.deploy(t_numdays => 9, p_workers => 2, p_wait_seconds => 30)');
    expect(await env.versions()).toEqual(Object.fromEntries(ALL.map((db) => [db, 3])));
    for (const db of TENANTS) {
      expect(await env.queryIn(db, 'SELECT count(*)::int AS n FROM app.calls WHERE scriptid = 3'), db).toEqual([{ n: 1 }]);
    }
    expect(await env.rows('SELECT count(*)::int AS n FROM admmgt.work_queue')).toEqual([{ n: 0 }]);
  });
});

describe('a maintenance whose caller is killed', () => {
  it('leaves workers that keep a deploy from starting until they are done', async () => {
    // Every tenant's partitioned table locked: the caller and its worker each wait at their first tenant.
    const blockers = await Promise.all(TENANTS.map(async (db) => {
      const c = new pg.Client({ connectionString: env.urlFor(db) });
      await c.connect();
      await c.query('BEGIN');
      await c.query('LOCK TABLE app.events IN ACCESS SHARE MODE');
      return c;
    }));
    try {
      const runner = await session();
      const call = runner.client.query(`CALL admmgt.applyMaintenance(t_numdays => 3, p_asof => '2031-01-01', p_workers => 2)`)
        .then(() => 'finished', (e: pg.DatabaseError) => e.message);
      await until('the caller and its worker to wait at a tenant each', async () => (await workerPids('maintain')).length === 1 && (await env.rows(
        `SELECT 1 FROM pg_stat_activity WHERE application_name = 'admmgt' AND starts_with(datname, 'wupk_t') AND wait_event_type = 'Lock'`)).length === 2);
      const [worker] = await workerPids('maintain');
      await env.admin.query('SELECT pg_terminate_backend($1)', [runner.pid]);
      expect(await call).toMatch(/terminat/i);
      await until('the caller to end', async () =>
        (await env.admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [runner.pid])).rows[0].n === 0);
      await expect(env.admin.query('CALL admmgt.deploy()')).rejects.toMatchObject({
        code: '55P03', message: expect.stringContaining(`worker sessions of an earlier run still finish their targets: pid ${worker}`),
      });
    } finally {
      for (const c of blockers) await c.end();
    }
    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 3, p_asof => '2031-01-01', p_workers => 2, p_wait_seconds => 30)`);
    for (const db of ALL) {
      expect(Object.keys(await env.partitionBounds(db, 'app.events')), db).toEqual(expect.arrayContaining(['events_p20310101', 'events_p20310104']));
    }
    expect(await env.rows('SELECT count(*)::int AS n FROM admmgt.work_queue')).toEqual([{ n: 0 }]);
  });
});

describe('retention and drift with workers', () => {
  it('lifecycle: every target drops its expired partitions, each booked once', async () => {
    await env.addScript({ id: 4, description: 'a daily table with retention', tables: [{ ...dayTable('old_days'), lifecycle: { at: 'current_date-5' } }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 9, p_asof => '2030-01-01')`);
    for (const db of ALL) expect(await days(db, 'old_days'), db).toEqual(want('old_days', 10));
    // Every day partition up to 2030-01-15 has expired on 2030-01-20.
    const runner = await withWorkersSeen('lifecycle', `CALL admmgt.applyLifecycle(p_asof => '2030-01-20', p_workers => 3)`,
                                         ['LOCK TABLE app.old_days_p20300101 IN ACCESS SHARE MODE']);
    expect(runner.notices.filter((n) => n.startsWith('WARNING'))).toEqual([]);
    for (const db of ALL) {
      expect(await days(db, 'old_days'), db).toEqual([]);
      expect(await days(db, 'events'), db).toEqual(expect.arrayContaining(want('events', 10)));
    }
    const run = await lastRun('lifecycle');
    expect(run).toMatchObject({ targets: ALL.length, failed: 0 });
    const log = await env.rows<{ n: number }>(
      `SELECT count(*)::int AS n FROM admmgt.script_log WHERE run_id = $1 AND commstat = 'drop app.old_days_p20300101: 0 rows'`, [run.run_id]);
    expect(log).toEqual([{ n: ALL.length }]);
    expect(await env.rows('SELECT count(*)::int AS n FROM admmgt.work_queue')).toEqual([{ n: 0 }]);
    expect(await env.rows('SELECT count(*)::int AS n FROM admmgt.failures')).toEqual([{ n: 0 }]);
  });

  it('drift: every tenant fingerprinted in one of the sessions, the hand-made table reported, each booked once', async () => {
    await env.queryIn(TENANTS[1]!, 'CREATE TABLE app.hand_made (id int)');
    // A session's own count reaches pg_stat_database when it ends: the workers' are the admin
    // database's only sessions that end during the call.
    const ended = async () => Number((await env.rows<{ n: string }>(
      `SELECT pg_stat_clear_snapshot(), (SELECT sessions FROM pg_stat_database WHERE datname = current_database())::text AS n`))[0]!.n);
    const before = await ended();
    await env.admin.query('CALL admmgt.detectDrift(p_workers => 3)');
    await until('the two worker sessions to be counted', async () => await ended() - before >= 2);
    expect(await ended() - before).toBe(2);
    // The template's fingerprint at version 4 was taken by its apply: it is not fingerprinted again.
    const run = await lastRun('drift');
    expect(run).toMatchObject({ targets: TENANTS.length, failed: 0 });
    expect(await env.rows(`SELECT dbname, object, kind FROM admmgt.drift WHERE run_id = $1`, [run.run_id]))
      .toEqual([{ dbname: TENANTS[1], object: 'table app.hand_made', kind: 'extra' }]);
    await bookedOnce(run.run_id, 'drift', TENANTS);
    await env.queryIn(TENANTS[1]!, 'DROP TABLE app.hand_made');

    const r = await cli('drift', '--url', env.adminUrl, '--workers', '3', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ targets: TENANTS.length, failed: 0, drifted: 0 });
  });
});
