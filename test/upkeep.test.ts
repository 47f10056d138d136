// Upkeep that does not connect when there is nothing to do: applyMaintenance and the refreshes
// leave out every target whose upkeep record says it holds what they would send, and p_verify
// checks for real. "Not connected" is proved by making a connection impossible: a database with
// ALLOW_CONNECTIONS false refuses every new session, a superuser's too, so a call that reached it
// would book a failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec, TableSpec } from '../templates/script.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';
import { whileUnreachable } from './support/unreachable.js';

const TPL = 'upkeep_tpl';
const T1 = 'upkeep_t1';
const T2 = 'upkeep_t2';
const TENANTS = [T1, T2];
const ASOF = '2030-01-01';

const dayTable = (schema: string, name: string, lifecycle?: Record<string, string>): TableSpec => ({
  schema, name, ...(lifecycle ? { lifecycle } : {}),
  columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'at', type: 'date', nullable: false }],
  partitions: [{ column: 'at', type: 'range', value: 'day' }],
});
const SCRIPT1: ScriptSpec = { id: 1, description: 'a daily table with retention', tables: [dayTable('app', 'events', { at: 'current_date-90' })] };
const SCRIPT2: ScriptSpec = {
  id: 2, description: 'a daily table added later', tables: [dayTable('app', 'late')], down: [{ seq: 1, body: 'DROP TABLE app.late' }],
};

let env: TestEnv;

/** The partitions of a parent in a database whose names start with the given prefix. */
async function parts(db: string, parent: string, prefix: string): Promise<string[]> {
  return Object.keys(await env.partitionBounds(db, parent)).filter((n) => n.startsWith(prefix)).sort();
}
const days = (table: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${table}_p203001${String(from + i).padStart(2, '0')}`);

async function maintain(numdays: number, extra = ''): Promise<void> {
  await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => ${numdays}, p_asof => '${ASOF}'${extra})`);
}

async function lastRun(op: string): Promise<{ targets: number | null; failed: number | null; skipped: number | null }> {
  const [r] = await env.rows<{ targets: number | null; failed: number | null; skipped: number | null }>(
    `SELECT targets, failed, skipped FROM admmgt.runs WHERE operation = $1 ORDER BY run_id DESC LIMIT 1`, [op]);
  return r!;
}

const unreachable = (dbs: string[], f: () => Promise<unknown>) => whileUnreachable(env, dbs, f);

const warnings = () => env.notices.filter((n) => n.startsWith('WARNING'));

async function body(db: string, fn: string): Promise<string | undefined> {
  const rows = await env.queryIn<{ src: string }>(db, `SELECT prosrc AS src FROM pg_proc WHERE oid = to_regprocedure($1)`, [fn]);
  return rows[0]?.src;
}

beforeAll(async () => {
  env = await createEnv('upkeep');
  await env.makeTemplate(TPL, ['app']);
  await env.queryIn(TPL, `CREATE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
  await env.waitIdle(TPL);
  await env.makeTenants(TENANTS);
  await env.addScript(SCRIPT1);
  await env.admin.query('CALL admmgt.applyScripts()');
});
afterAll(async () => {
  await env.close();
});

describe('applyMaintenance without anything to create', () => {
  it('connects to no target the second time with the same or a narrower window', async () => {
    await maintain(5);
    for (const db of [TPL, ...TENANTS]) expect(await parts(db, 'app.events', 'events_p203001'), db).toEqual(days('events', 1, 6));
    expect(await env.rows(`SELECT lower(v.dbname) AS db, u.scriptversion AS v, u.from_day::text AS f, u.to_day::text AS t
                             FROM admmgt.upkeep_partitions u JOIN admmgt.vendor_db_settings v ON v.id = u.target_id ORDER BY v.id`))
      .toEqual([TPL, ...TENANTS].map((db) => ({ db, v: 1, f: '2030-01-01', t: '2030-01-06' })));

    env.notices.length = 0;
    await unreachable([TPL, ...TENANTS], async () => {
      await maintain(5);
      await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 2, p_asof => '2030-01-03')`);
    });
    expect(warnings()).toEqual([]);
    expect(env.notices).toContain(
      'NOTICE: admmgt maintain: 3 target(s) already hold every partition through 2030-01-06 (not connected; p_verify => true checks them)');
    expect(await lastRun('maintain')).toEqual({ targets: null, failed: null, skipped: 3 });
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.failures`)).toEqual([{ n: 0 }]);
    for (const db of TENANTS) expect(await parts(db, 'app.events', 'events_p203001'), db).toEqual(days('events', 1, 6));
  });

  it('connects for a larger window, creates its partitions and merges the windows', async () => {
    await maintain(8);
    for (const db of TENANTS) expect(await parts(db, 'app.events', 'events_p203001'), db).toEqual(days('events', 1, 9));
    expect(await lastRun('maintain')).toEqual({ targets: 3, failed: 0, skipped: null });
    expect(await env.rows(`SELECT DISTINCT from_day::text AS f, to_day::text AS t FROM admmgt.upkeep_partitions`))
      .toEqual([{ f: '2030-01-01', t: '2030-01-09' }]);
  });

  it('connects once a new script version is applied', async () => {
    await env.addScript(SCRIPT2);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.upkeep_partitions`)).toEqual([{ n: 0 }]);
    await maintain(8);
    for (const db of TENANTS) expect(await parts(db, 'app.late', 'late_p203001'), db).toEqual(days('late', 1, 9));
    expect(await env.rows(`SELECT DISTINCT scriptversion AS v FROM admmgt.upkeep_partitions`)).toEqual([{ v: 2 }]);
  });

  it('connects again after a lifecycle run dropped partitions', async () => {
    await env.admin.query(`CALL admmgt.applyLifecycle(p_asof => '2031-01-10')`);
    expect(await parts(T1, 'app.events', 'events_p203001')).toEqual([]);
    await maintain(8);
    for (const db of TENANTS) expect(await parts(db, 'app.events', 'events_p203001'), db).toEqual(days('events', 1, 9));
  });

  it('connects after a rollback and a new apply, which leave the target at the version it was at', async () => {
    await env.admin.query('CALL admmgt.rollbackScripts(p_to => 1)');
    await env.admin.query('UPDATE admmgt.scripts SET status = 1 WHERE id = 2');
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual(Object.fromEntries([TPL, ...TENANTS].map((db) => [db, 2])));
    expect(await parts(T1, 'app.late', 'late_p203001')).toEqual([]);
    await maintain(8);
    for (const db of TENANTS) expect(await parts(db, 'app.late', 'late_p203001'), db).toEqual(days('late', 1, 9));
  });

  it('with p_verify recreates a partition dropped by hand, which the call without it leaves missing', async () => {
    await env.queryIn(T1, 'DROP TABLE app.events_p20300105');
    await maintain(8);
    expect(await parts(T1, 'app.events', 'events_p203001')).not.toContain('events_p20300105');
    expect(await lastRun('maintain')).toMatchObject({ targets: null, skipped: 3 });
    await maintain(8, ', p_verify => true');
    expect(await parts(T1, 'app.events', 'events_p203001')).toEqual(days('events', 1, 9));
    expect(await lastRun('maintain')).toEqual({ targets: 3, failed: 0, skipped: null });
  });

  it('admmgt maintain says what it left out, and --verify connects', async () => {
    const args = ['maintain', '--url', env.adminUrl, '--days', '8', '--as-of', ASOF, '--json'];
    let r = await cli(...args);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'maintain', targets: 0, failed: 0, skipped: 3 });
    expect(r.stderr).toMatch(/admmgt maintain: 3 target\(s\) already hold every partition through 2030-01-09/);
    r = await cli(...args, '--verify');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'maintain', targets: 3, failed: 0, skipped: 0 });
  });
});

describe('refresh with an unchanged template', () => {
  it('connects to no tenant the second time', async () => {
    await env.admin.query('CALL admmgt.refesh_stored_procedures()');
    expect(await lastRun('refresh')).toMatchObject({ targets: 2, failed: 0 });
    env.notices.length = 0;
    await unreachable(TENANTS, () => env.admin.query('CALL admmgt.refesh_stored_procedures()').then(() => undefined));
    expect(warnings()).toEqual([]);
    expect(env.notices).toContain(
      "NOTICE: admmgt refresh: 2 target(s) already hold the template's routines as they are now (not connected; p_verify => true checks them)");
    expect(await lastRun('refresh')).toEqual({ targets: null, failed: null, skipped: 2 });
  });

  it('pushes a routine changed in the template to every tenant', async () => {
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
    await env.admin.query('CALL admmgt.refesh_stored_procedures()');
    for (const db of TENANTS) expect(await body(db, 'app.f_v()'), db).toBe('SELECT 2');
    expect(await lastRun('refresh')).toEqual({ targets: 2, failed: 0, skipped: null });
  });

  it('with p_verify restores a routine a tenant dropped by hand, which the call without it does not', async () => {
    await env.queryIn(T2, 'DROP FUNCTION app.f_v()');
    await env.admin.query('CALL admmgt.refesh_stored_procedures()');
    expect(await body(T2, 'app.f_v()')).toBeUndefined();
    await env.admin.query('CALL admmgt.refesh_stored_procedures(p_verify => true)');
    expect(await body(T2, 'app.f_v()')).toBe('SELECT 2');
  });

  it('keeps the views apart from the routines', async () => {
    await env.queryIn(TPL, `CREATE VIEW app.v_one AS SELECT 1 AS one`);
    await env.admin.query('CALL admmgt.refesh_views()');
    for (const db of TENANTS) expect(await env.queryIn(db, 'SELECT one FROM app.v_one'), db).toEqual([{ one: 1 }]);
    await unreachable(TENANTS, () => env.admin.query('CALL admmgt.refesh_views()').then(() => undefined));
    expect(await lastRun('refresh')).toEqual({ targets: null, failed: null, skipped: 2 });
    expect(await env.rows(`SELECT refresh, count(*)::int AS n FROM admmgt.upkeep_refresh GROUP BY 1 ORDER BY 1`))
      .toEqual([{ refresh: 'routines', n: 2 }, { refresh: 'views', n: 2 }]);
  });
});

describe('schema targets', () => {
  const STPL = 'upkeeps_tpl';
  const SA = 'upkeeps_a';
  let senv: TestEnv;
  const sparts = async (schema: string) => (await senv.partitions(senv.adminDb, `${schema}.events`))
    .map((p) => p.name).filter((n) => n.startsWith('events_p203001')).sort();

  beforeAll(async () => {
    senv = await createEnv('upkeeps');
    await senv.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ($1, true, 1), ($2, false, 1)`, [STPL, SA]);
    await senv.addScript({ id: 1, description: 'a daily table', tables: [dayTable(STPL, 'events')] });
    await senv.admin.query('CALL admmgt.create_schema()');
    await senv.admin.query('CALL admmgt.applyScripts(0)');
    await senv.admin.query(`CREATE FUNCTION ${STPL}.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
  });
  afterAll(async () => {
    await senv.close();
  });

  it('maintenance connects to no schema target the second time', async () => {
    await senv.admin.query(`CALL admmgt.applyMaintenance(0, t_numdays => 3, p_asof => '${ASOF}')`);
    expect(await sparts(SA)).toEqual(days('events', 1, 4));
    senv.notices.length = 0;
    // The schema targets live in the admin database: with it closed to new sessions (from the
    // other file's admin database: a session cannot close its own), only the caller's own session
    // is left, and dblink could not reach them.
    await whileUnreachable(env, [senv.adminDb], () => senv.admin.query(`CALL admmgt.applyMaintenance(0, t_numdays => 3, p_asof => '${ASOF}')`));
    expect(senv.notices.filter((n) => n.startsWith('WARNING'))).toEqual([]);
    expect(await senv.rows(`SELECT targets, skipped FROM admmgt.runs WHERE operation = 'maintain' ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ targets: null, skipped: 2 }]);
    await senv.admin.query(`DROP TABLE ${SA}.events_p20300102`);
    await senv.admin.query(`CALL admmgt.applyMaintenance(0, t_numdays => 3, p_asof => '${ASOF}', p_verify => true)`);
    expect(await sparts(SA)).toEqual(days('events', 1, 4));
  });

  it('refresh leaves an unchanged schema target alone and pushes a change', async () => {
    const src = async () => (await senv.rows<{ src: string }>(`SELECT prosrc AS src FROM pg_proc WHERE oid = to_regprocedure($1)`,
      [`${SA}.f_v()`]))[0]?.src;
    await senv.admin.query('CALL admmgt.refesh_stored_procedures(0)');
    expect(await src()).toBe('SELECT 1');
    await senv.admin.query(`DROP FUNCTION ${SA}.f_v()`);
    await senv.admin.query('CALL admmgt.refesh_stored_procedures(0)');
    expect(await src()).toBeUndefined();
    expect(await senv.rows(`SELECT targets, skipped FROM admmgt.runs WHERE operation = 'refresh' ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ targets: null, skipped: 1 }]);
    await senv.admin.query(`CREATE OR REPLACE FUNCTION ${STPL}.f_v() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
    await senv.admin.query('CALL admmgt.refesh_stored_procedures(0)');
    expect(await src()).toBe('SELECT 2');
    await senv.admin.query(`DROP FUNCTION ${SA}.f_v()`);
    await senv.admin.query('CALL admmgt.refesh_stored_procedures(0, p_verify => true)');
    expect(await src()).toBe('SELECT 2');
  });
});
