// One pass per deploy: CALL admmgt.deploy() gives each target its scripts, the template's routines
// and its partitions over one connection, each booked as its own procedure books it.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TableSpec } from '../templates/script.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';
import { whileUnreachable } from './support/unreachable.js';

const TPL = 'deploy_tpl';
const T1 = 'deploy_t1';
const T2 = 'deploy_t2';
const TENANTS = [T1, T2];

const dayTable = (schema: string, name: string): TableSpec => ({
  schema, name,
  columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'at', type: 'date', nullable: false }],
  partitions: [{ column: 'at', type: 'range', value: 'day' }],
});
const plainTable = (schema: string, name: string): TableSpec => ({ schema, name, columns: [{ name: 'id', type: 'int' }] });

let env: TestEnv;

async function body(db: string, fn: string): Promise<string | undefined> {
  const rows = await env.queryIn<{ src: string }>(db, `SELECT prosrc AS src FROM pg_proc WHERE oid = to_regprocedure($1)`, [fn]);
  return rows[0]?.src;
}

/** The day partitions a table needs from today through today + n, by name. */
async function dayNames(table: string, n: number): Promise<string[]> {
  return (await env.rows<{ n: string }>(
    `SELECT $1 || '_p' || to_char(d, 'YYYYMMDD') AS n FROM generate_series(current_date, current_date + $2::int, interval '1 day') d ORDER BY 1`,
    [table, n])).map((r) => r.n);
}

async function sessions(): Promise<Record<string, number>> {
  await env.admin.query('SELECT pg_stat_clear_snapshot()');
  const rows = await env.rows<{ db: string; n: string }>(
    `SELECT datname AS db, coalesce(sessions, 0)::text AS n FROM pg_stat_database WHERE datname = ANY ($1)`, [TENANTS]);
  return Object.fromEntries(rows.map((r) => [r.db, Number(r.n)]));
}

/** The session counts once they stop moving: a session is counted when its backend exits. */
async function settled(): Promise<Record<string, number>> {
  let last = JSON.stringify(await sessions());
  for (let i = 0; i < 30; i++) {
    // Longer than PostgreSQL 14's stats collector takes to write its file again (500 ms): two
    // reads in between would agree on what it had not yet heard of.
    await new Promise((r) => setTimeout(r, 600));
    const now = JSON.stringify(await sessions());
    if (now === last) return JSON.parse(now) as Record<string, number>;
    last = now;
  }
  return JSON.parse(last) as Record<string, number>;
}

async function lastRun(): Promise<{ run_id: string; targets: number | null; failed: number | null; skipped: number | null }> {
  const [r] = await env.rows<{ run_id: string; targets: number | null; failed: number | null; skipped: number | null }>(
    `SELECT run_id::text, targets, failed, skipped FROM admmgt.runs WHERE operation = 'deploy' ORDER BY run_id DESC LIMIT 1`);
  return r!;
}

/** What a run logged, per target: its operations in order. */
async function logged(runId: string): Promise<Record<string, string[]>> {
  const rows = await env.rows<{ db: string; ops: string[] }>(
    `SELECT lower(dbname) AS db, array_agg(operation ORDER BY id) AS ops FROM admmgt.script_log
      WHERE run_id = $1 AND dbname IS NOT NULL GROUP BY 1 ORDER BY 1`, [runId]);
  return Object.fromEntries(rows.map((r) => [r.db, [...new Set(r.ops)]]));
}

beforeAll(async () => {
  env = await createEnv('deploy');
  await env.makeTemplate(TPL, ['app']);
  await env.queryIn(TPL, `CREATE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
  await env.addScript({ id: 1, description: 'a plain table', tables: [plainTable('app', 'first')] });
  await env.waitIdle(TPL);
  await env.makeTenants(TENANTS);
  await env.admin.query('CALL admmgt.applyScripts()');
});
afterAll(async () => {
  await env.close();
});

describe('deploy', () => {
  it('brings every tenant up over one connection: scripts, routines, partitions', async () => {
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
    await env.addScript({ id: 2, description: 'a daily table', tables: [dayTable('app', 'events')] });
    const before = await settled();
    await env.admin.query('CALL admmgt.deploy(t_numdays => 60)');
    const after = await settled();
    for (const t of TENANTS) expect(after[t]! - before[t]!, t).toBe(1);
    expect(await env.versions()).toMatchObject({ [TPL]: 2, [T1]: 2, [T2]: 2 });
    const want = await dayNames('events', 60);
    for (const db of [TPL, ...TENANTS]) {
      const have = Object.keys(await env.partitionBounds(db, 'app.events'));
      expect(want.filter((n) => !have.includes(n)), db).toEqual([]);
    }
    for (const t of TENANTS) expect(await body(t, 'app.f_v()'), t).toBe('SELECT 2');
    const run = await lastRun();
    expect(run).toMatchObject({ targets: 3, failed: 0 });
    expect(await logged(run.run_id)).toEqual({ [TPL]: ['apply', 'maintain'], [T1]: ['apply', 'refresh', 'maintain'], [T2]: ['apply', 'refresh', 'maintain'] });
    expect(await env.rows(`SELECT operation, count(DISTINCT target_id)::int AS n FROM admmgt.target_results WHERE run_id = $1 GROUP BY 1 ORDER BY 1`, [run.run_id]))
      .toEqual([{ operation: 'apply', n: 3 }, { operation: 'maintain', n: 3 }, { operation: 'refresh', n: 2 }]);
    expect(await env.rows(`SELECT status FROM admmgt.scripts WHERE id = 2`)).toEqual([{ status: 2 }]);
  });

  it('connects to no tenant when there is nothing to do', async () => {
    // A tenant that refuses every new session would fail the call had it been connected.
    await whileUnreachable(env, TENANTS, async () => {
      env.notices.length = 0;
      await env.admin.query('CALL admmgt.deploy(t_numdays => 60)');
      expect(env.notices.filter((n) => n.startsWith('WARNING'))).toEqual([]);
      expect(await lastRun()).toMatchObject({ targets: null, failed: null, skipped: 3 });
      const r = await cli('deploy', '--url', env.adminUrl, '--days', '60', '--json');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'deploy', targets: 0, failed: 0, skipped: 3 });
    });
  });

  it('gives a tenant whose script fails neither refresh nor maintenance; the others go on', async () => {
    await env.queryIn(T1, `CREATE TABLE app.late (id int)`);
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 3'`);
    await env.addScript({ id: 3, description: 'two daily tables', tables: [plainTable('app', 'late'), dayTable('app', 'days3')] });
    await env.admin.query('CALL admmgt.deploy(t_numdays => 10)');
    expect(await env.versions()).toMatchObject({ [TPL]: 3, [T1]: 2, [T2]: 3 });
    expect(await body(T1, 'app.f_v()')).toBe('SELECT 2');
    expect(await body(T2, 'app.f_v()')).toBe('SELECT 3');
    const run = await lastRun();
    expect(run).toMatchObject({ targets: 3, failed: 1 });
    expect(await logged(run.run_id)).toEqual({ [TPL]: ['apply', 'maintain'], [T1]: ['apply'], [T2]: ['apply', 'refresh', 'maintain'] });
    expect(Object.keys(await env.partitionBounds(T2, 'app.days3'))).toContain((await dayNames('days3', 10))[10]);
    await env.queryIn(T1, `DROP TABLE app.late`);
  });

  it('leaves the tenants untouched when the template fails', async () => {
    await env.queryIn(TPL, `CREATE TABLE app.clash (id int)`);
    await env.addScript({ id: 4, description: 'clashes on the template', tables: [plainTable('app', 'clash')] });
    const before = await settled();
    await env.admin.query('CALL admmgt.deploy(t_numdays => 10)');
    expect(await settled()).toEqual(before);
    expect(await env.versions()).toMatchObject({ [TPL]: 3, [T1]: 2, [T2]: 3 });
    const run = await lastRun();
    expect(run).toMatchObject({ targets: 1, failed: 1 });
    expect(await logged(run.run_id)).toEqual({ [TPL]: ['apply'] });
    expect(await env.rows(`SELECT status FROM admmgt.scripts WHERE id = 4`)).toEqual([{ status: 3 }]);
  });

  it('holds the locks of apply, refresh and maintenance: a maintenance running stops it, and it lets go of the apply lock', async () => {
    const holder = new pg.Client({ connectionString: env.adminUrl });
    await holder.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(admmgt._lock_class(), admmgt._lock_key('maintain'))`);
      const e = await env.errorOf('CALL admmgt.deploy()');
      expect(e.code).toBe('55P03');
      expect(e.message).toMatch(/deploy cannot start while maintenance or refresh is running/);
      expect(await env.rows(`SELECT objid::int AS key FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                                AND classid = admmgt._lock_class() AND granted`)).toEqual([]);
    } finally {
      await holder.end();
    }
  });

  it('refuses a bad t_numdays before touching anything', async () => {
    const e = await env.errorOf('CALL admmgt.deploy(t_numdays => -1)');
    expect(e.code).toBe('22023');
  });
});

describe('deploy on schema targets', () => {
  const STPL = 'deploys_tpl';
  const SA = 'deploys_a';
  let senv: TestEnv;

  beforeAll(async () => {
    senv = await createEnv('deploys');
    await senv.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ($1, true, 1), ($2, false, 1)`, [STPL, SA]);
    await senv.addScript({ id: 1, description: 'a plain table', tables: [plainTable(STPL, 'first')] });
    await senv.admin.query('CALL admmgt.create_schema()');
    await senv.admin.query('CALL admmgt.applyScripts(0)');
  });
  afterAll(async () => {
    await senv.close();
  });

  it('brings a schema tenant up: script, routines, partitions', async () => {
    await senv.admin.query(`CREATE FUNCTION ${STPL}.f_v() RETURNS int LANGUAGE sql AS 'SELECT 7'`);
    await senv.addScript({ id: 2, description: 'a daily table', tables: [dayTable(STPL, 'events')] });
    await senv.admin.query('CALL admmgt.deploy(0, t_numdays => 5)');
    expect(await senv.versions()).toMatchObject({ [STPL]: 2, [SA]: 2 });
    expect((await senv.rows<{ src: string }>(`SELECT prosrc AS src FROM pg_proc WHERE oid = to_regprocedure($1)`, [`${SA}.f_v()`]))[0]?.src)
      .toBe('SELECT 7');
    const names = (await senv.partitions(senv.adminDb, `${SA}.events`)).map((p) => p.name);
    const want = (await senv.rows<{ n: string }>(`SELECT 'events_p' || to_char(current_date + 5, 'YYYYMMDD') AS n`))[0]!.n;
    expect(names).toContain(want);
    const [run] = await senv.rows<{ run_id: string }>(`SELECT run_id::text FROM admmgt.runs WHERE operation = 'deploy' ORDER BY run_id DESC LIMIT 1`);
    expect(await senv.rows(`SELECT DISTINCT operation FROM admmgt.script_log WHERE run_id = $1 AND lower(dbname) = $2 ORDER BY 1`, [run!.run_id, SA]))
      .toEqual([{ operation: 'apply' }, { operation: 'maintain' }, { operation: 'refresh' }]);
  });
});
