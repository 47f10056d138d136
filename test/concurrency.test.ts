// Two runs at once: the second one says who holds the operation lock, or waits for it; a killed
// run leaves every tenant at the old or the new version, its lock dies with its session, and a
// rerun finishes the rest without applying anything twice; a CALL inside a transaction block is
// refused before anything is touched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';
import { addSlowStep, adminSessions, sleep, until } from './support/sessions.js';

const TEMPLATE = 'conc_tpl';
const TENANTS = ['conc_t1', 'conc_t2', 'conc_t3', 'conc_t4'];
const APPLY_LOCK = `pg_advisory_lock(admmgt._lock_class(), admmgt._lock_key('apply'))`;

const SCRIPT1: ScriptSpec = {
  id: 1, description: 'a plain table',
  tables: [{ schema: 'app', name: 'k_one', columns: [{ name: 'id', type: 'int', primaryKey: true }] }],
};
/** Slow on purpose: every target spends 0.4 s in its transaction. */
const SCRIPT2: ScriptSpec = {
  id: 2, description: 'a table and a slow procedure call',
  tables: [{ schema: 'app', name: 'k_two', columns: [{ name: 'id', type: 'int', primaryKey: true }] }],
  calls: ['CALL app.slow_step(2, 0.4)'],
};

let env: TestEnv;
const { session, closeAll } = adminSessions(() => env);

/** Script versions by database, 0 for the template's NULL before its first script. */
const versions = () => env.versions({ nullAs: 0 });

/** What a tenant itself says: its ledger, whether script 2's table exists, how often script 2's call ran. */
async function tenantState(db: string) {
  const [ledger, objects] = await Promise.all([
    env.queryIn<{ scriptid: number }>(db, 'SELECT scriptid FROM admmgt.applied_scripts ORDER BY 1'),
    env.queryIn<{ k_two: boolean; calls: number }>(db, `
      SELECT to_regclass('app.k_two') IS NOT NULL AS k_two,
             (SELECT count(*)::int FROM app.calls WHERE scriptid = 2) AS calls`),
  ]);
  return { ledger: ledger.map((r) => r.scriptid), ...objects[0]! };
}

beforeAll(async () => {
  env = await createEnv('conc');
  await env.makeTemplate(TEMPLATE, ['app']);
  // The procedure script 2 calls, with a table that counts its calls: a second apply would show.
  await addSlowStep(env, TEMPLATE);
  await env.makeTenants(TENANTS);
  expect(Object.keys(await versions())).toEqual([TEMPLATE, ...TENANTS]);
  await env.addScript(SCRIPT1);
});

afterAll(async () => {
  await closeAll();
  await env?.close();
});

describe('two runs at once', () => {
  let holder: { client: pg.Client; pid: number };
  let holderRun: string;

  it('refuses a second applyScripts at once with SQLSTATE 55P03, naming the holder', async () => {
    holder = await session();
    await holder.client.query(`SELECT ${APPLY_LOCK}`);
    holderRun = (await holder.client.query(`INSERT INTO admmgt.runs (operation) VALUES ('apply') RETURNING run_id::text`)).rows[0].run_id;

    const t0 = Date.now();
    const err = await env.admin.query('CALL admmgt.applyScripts()').then(() => null, (e: pg.DatabaseError) => e);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(err).toMatchObject({ code: '55P03' });
    expect(err!.message).toContain('admmgt.applyScripts is already running');
    expect(err!.message).toContain(`pid ${holder.pid} (run ${holderRun}: apply since`);
    expect(err!.hint).toContain('p_wait_seconds');
    // Nothing ran, and the refused call left no run behind.
    expect(Object.values(await versions())).toEqual([0, 0, 0, 0, 0]);
    const { rows } = await env.admin.query(`SELECT run_id::text FROM admmgt.runs WHERE finished_at IS NULL`);
    expect(rows).toEqual([{ run_id: holderRun }]);
  });

  it('gives creating tenants the same lock as applying scripts', async () => {
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('conc_late', 1)`);
    await expect(env.admin.query('CALL admmgt.create_database()'))
      .rejects.toMatchObject({ code: '55P03', message: expect.stringContaining(`admmgt.create_database cannot start while apply is running (they share one lock): pid ${holder.pid}`) });
    expect(await env.admin.query(`SELECT datname FROM pg_database WHERE datname = 'conc_late'`)).toMatchObject({ rows: [] });
    await env.admin.query(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'conc_late'`);
  });

  it('gives up after p_wait_seconds with 55P03 when the holder keeps the lock', async () => {
    const t0 = Date.now();
    await expect(env.admin.query('CALL admmgt.applyScripts(p_wait_seconds => 1)')).rejects.toMatchObject({ code: '55P03' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(Object.values(await versions())).toEqual([0, 0, 0, 0, 0]);
  });

  it('waits with p_wait_seconds and runs as soon as the holder lets go', async () => {
    // The admin client waits inside the CALL; versions() looks through another session.
    const waiter = await session();
    const t0 = Date.now();
    const call = waiter.client.query('CALL admmgt.applyScripts(p_wait_seconds => 5)');
    call.catch(() => {});
    await sleep(600);
    // Still waiting: nothing applied yet.
    expect(Object.values(await versions())).toEqual([0, 0, 0, 0, 0]);
    await sleep(400);
    await holder.client.query(`UPDATE admmgt.runs SET finished_at = clock_timestamp() WHERE run_id = $1`, [holderRun]);
    await holder.client.query(`SELECT pg_advisory_unlock(admmgt._lock_class(), admmgt._lock_key('apply'))`);
    await call;
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(5000);
    expect(Object.values(await versions())).toEqual([1, 1, 1, 1, 1]);
    for (const db of TENANTS) {
      expect(await env.queryIn(db, `SELECT to_regclass('app.k_one')::text AS t`)).toEqual([{ t: 'app.k_one' }]);
    }
  });

  it('keeps the locks of the operations apart: maintenance and refresh are refused only by their own holder', async () => {
    await holder.client.query(`SELECT pg_advisory_lock(admmgt._lock_class(), admmgt._lock_key('maintain'))`);
    await expect(env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 1)'))
      .rejects.toMatchObject({ code: '55P03', message: expect.stringContaining(`admmgt.applyMaintenance is already running: pid ${holder.pid}`) });
    await env.admin.query('CALL admmgt.refesh_stored_procedures()');
    await holder.client.query(`SELECT pg_advisory_unlock(admmgt._lock_class(), admmgt._lock_key('maintain'))`);
    await env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 1)');
  });
});

describe('a killed run', () => {
  let killedPid: number;
  let killedRun: string;
  /** Tenants that committed script 2 while the admin side, killed, did not record it. */
  let lagging: string[] = [];

  it('leaves every tenant at the old or the new version, its ledger agreeing with its objects', async () => {
    await env.addScript(SCRIPT2);
    const runner = await session();
    killedPid = runner.pid;
    const call = runner.client.query('CALL admmgt.applyScripts(p_parallel => 1)');
    const outcome = call.then(() => 'finished', (e: Error) => e.message);

    // Let the template and the first tenant finish, then kill the run in the middle.
    await until('the first tenant to reach version 2', async () =>
      Object.entries(await versions()).some(([db, v]) => db !== TEMPLATE && v === 2));
    killedRun = (await env.admin.query(
      `SELECT run_id::text FROM admmgt.runs WHERE pid = $1 AND finished_at IS NULL`, [killedPid])).rows[0].run_id;

    // A real holder this time: a second run is refused and told which session runs.
    await expect(env.admin.query('CALL admmgt.applyScripts()')).rejects.toMatchObject({
      code: '55P03', message: expect.stringContaining(`pid ${killedPid} (run ${killedRun}: apply since`),
    });

    expect((await env.admin.query('SELECT pg_terminate_backend($1) AS ok', [killedPid])).rows).toEqual([{ ok: true }]);
    expect(await outcome).toMatch(/terminat/i);
    // The killed session, and the tenant connections it left, end.
    await until('the killed session and its tenant connections to end', async () => (await env.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 OR (application_name = 'admmgt' AND starts_with(datname, 'conc_'))`,
      [killedPid])).rows[0].n === 0);

    const admin = await versions();
    expect(admin[TEMPLATE]).toBe(2);
    const states = await Promise.all(TENANTS.map(tenantState));
    TENANTS.forEach((db, i) => {
      const s = states[i]!;
      const applied = s.ledger.includes(2);
      // Exactly the old or exactly the new version, never between.
      expect(s.ledger).toEqual(applied ? [1, 2] : [1]);
      expect(s.k_two).toBe(applied);
      expect(s.calls).toBe(applied ? 1 : 0);
      // The admin side never claims more than the tenant has (it may claim less: the tenant's
      // ledger is the truth, see below).
      if (!applied) expect(admin[db]).toBe(1);
      expect([1, 2]).toContain(admin[db]);
    });
    lagging = TENANTS.filter((db, i) => states[i]!.ledger.includes(2) && admin[db] === 1);
    // The kill came in the middle: some tenants have the script, some do not.
    expect(states.filter((s) => s.ledger.includes(2)).length).toBeGreaterThanOrEqual(1);
    expect(states.filter((s) => !s.ledger.includes(2)).length).toBeGreaterThanOrEqual(2);
  });

  it('takes its lock with it: a new call works and the rerun finishes the rest without applying twice', async () => {
    const { rows: locks } = await env.admin.query(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = admmgt._lock_class() AND objid = admmgt._lock_key('apply') AND objsubid = 2
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
    expect(locks).toEqual([]);

    await env.admin.query('CALL admmgt.applyScripts()');
    expect(Object.values(await versions())).toEqual([2, 2, 2, 2, 2]);
    for (const db of TENANTS) {
      expect(await tenantState(db)).toEqual({ ledger: [1, 2], k_two: true, calls: 1 });
    }
    // A tenant that had committed in the window between its commit and the kill is recognised by
    // its ledger, not applied again.
    const { rows: outcomes } = await env.admin.query(
      `SELECT dbname, outcome FROM admmgt.script_log
        WHERE scriptid = 2 AND run_id = (SELECT max(run_id) FROM admmgt.runs WHERE operation = 'apply') AND outcome = 'already applied'
        ORDER BY dbname`);
    expect(outcomes).toEqual(lagging.map((dbname) => ({ dbname, outcome: 'already applied' })));
    const { rows: scripts } = await env.admin.query('SELECT id, status FROM admmgt.scripts ORDER BY id');
    expect(scripts).toEqual([{ id: 1, status: 2 }, { id: 2, status: 2 }]);
    // The run of the killed session is closed by the next call.
    const { rows: runs } = await env.admin.query(
      `SELECT finished_at IS NOT NULL AS closed FROM admmgt.runs WHERE run_id = $1`, [killedRun]);
    expect(runs).toEqual([{ closed: true }]);
    expect((await env.admin.query('SELECT * FROM admmgt.failures')).rows).toEqual([]);
  });

  it('trusts the tenant ledger when the admin side lost track: no second apply', async () => {
    // As after a kill between a tenant's commit and the admin record.
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET scriptversion = 1 WHERE dbname = $1`, [TENANTS[0]]);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect((await versions())[TENANTS[0]!]).toBe(2);
    expect(await tenantState(TENANTS[0]!)).toEqual({ ledger: [1, 2], k_two: true, calls: 1 });
    const { rows } = await env.admin.query(
      `SELECT outcome, commstat FROM admmgt.script_log WHERE dbname = $1 AND scriptid = 2 AND run_id = (SELECT max(run_id) FROM admmgt.runs)`,
      [TENANTS[0]]);
    expect(rows).toEqual([{ outcome: 'already applied', commstat: 'INSERT INTO admmgt.applied_scripts (scriptid) VALUES (2)' }]);
  });
});

describe('a CALL inside a transaction block', () => {
  it.each([
    ['applyMaintenance', 'CALL admmgt.applyMaintenance(t_numdays => 1)'],
    ['applyScripts', 'CALL admmgt.applyScripts()'],
    ['refesh_stored_procedures', 'CALL admmgt.refesh_stored_procedures()'],
    ['create_database', 'CALL admmgt.create_database()'],
  ])('refuses %s with SQLSTATE 25001 and touches nothing', async (name, call) => {
    const { rows: before } = await env.admin.query('SELECT count(*)::int AS n FROM admmgt.runs');
    await env.admin.query('BEGIN');
    try {
      // Right after BEGIN the COMMIT of the call refuses it (2D000); after a pause, as when a
      // person types BEGIN in psql, the check does, with a hint (25001); a call with nothing to do
      // returns before either. Whichever it is: nothing is done.
      const err = await env.admin.query(call).then(() => undefined, (e: { code?: string }) => e);
      if (err) expect(['25001', '2D000'], name).toContain(err.code);
    } finally {
      await env.admin.query('ROLLBACK');
    }
    const { rows: after } = await env.admin.query('SELECT count(*)::int AS n FROM admmgt.runs');
    expect(after).toEqual(before);
    const { rows: locks } = await env.admin.query(
      `SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = admmgt._lock_class() AND pid = pg_backend_pid()`);
    expect(locks).toEqual([]);
  });

  it('refuses BEGIN and the CALL sent as one query string too, before any lock or run', async () => {
    // Inside one query message the transaction and statement timestamps are equal, so the
    // friendly check cannot see the block; the frame's first COMMIT refuses it instead.
    const { rows: before } = await env.admin.query('SELECT count(*)::int AS n FROM admmgt.runs');
    try {
      await expect(env.admin.query('BEGIN; CALL admmgt.applyMaintenance(t_numdays => 1)'))
        .rejects.toMatchObject({ code: '2D000' });
    } finally {
      await env.admin.query('ROLLBACK');
    }
    expect((await env.admin.query('SELECT count(*)::int AS n FROM admmgt.runs')).rows).toEqual(before);
    const { rows: locks } = await env.admin.query(
      `SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = admmgt._lock_class() AND pid = pg_backend_pid()`);
    expect(locks).toEqual([]);
  });

  it('still runs the same call in autocommit mode afterwards', async () => {
    await env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 1)');
    const { rows } = await env.admin.query(
      `SELECT finished_at IS NOT NULL AS done FROM admmgt.runs WHERE operation = 'maintain' ORDER BY run_id DESC LIMIT 1`);
    expect(rows).toEqual([{ done: true }]);
  });
});

describe('a call that fails after taking its lock', () => {
  const ownLocks = async (client: pg.Client) => (await client.query(
    `SELECT objid::int AS key FROM pg_locks WHERE locktype = 'advisory' AND classid = admmgt._lock_class() AND pid = pg_backend_pid()`)).rows;

  it('keeps the lock of a cancelled run only for its own session, and tells others that session is idle', async () => {
    await env.addScript({
      id: 3, description: 'another slow one',
      tables: [{ schema: 'app', name: 'k_three', columns: [{ name: 'id', type: 'int', primaryKey: true }] }],
      calls: ['CALL app.slow_step(3, 0.4)'],
    });
    const runner = await session();
    const call = runner.client.query('CALL admmgt.applyScripts(p_parallel => 1)').then(() => null, (e: pg.DatabaseError) => e);
    await until('the first tenant to reach version 3', async () =>
      Object.entries(await versions()).some(([db, v]) => db !== TEMPLATE && v === 3));
    await env.admin.query('SELECT pg_cancel_backend($1)', [runner.pid]);
    expect(await call).toMatchObject({ code: '57014' });

    // The session-level lock outlives the cancelled CALL; a second session is told why.
    expect(await ownLocks(runner.client)).toEqual([{ key: 1 }]);
    const err = await env.admin.query('CALL admmgt.applyScripts()').then(() => null, (e: pg.DatabaseError) => e);
    expect(err).toMatchObject({ code: '55P03' });
    expect(err!.message).toContain(`pid ${runner.pid} (run `);
    expect(err!.message).toContain('now idle: a call of that session failed');

    // The same session's next call takes over its own lock and finishes the run, once per tenant.
    await runner.client.query('CALL admmgt.applyScripts()');
    expect(await ownLocks(runner.client)).toEqual([]);
    expect(Object.values(await versions())).toEqual([3, 3, 3, 3, 3]);
    for (const db of TENANTS) {
      expect(await env.queryIn(db, `SELECT array_agg(scriptid ORDER BY scriptid) AS ledger,
                                            (SELECT count(*)::int FROM app.calls WHERE scriptid = 3) AS calls
                                       FROM admmgt.applied_scripts`)).toEqual([{ ledger: [1, 2, 3], calls: 1 }]);
    }
  });

  it('releases the lock when create_database is refused because the template is in use', async () => {
    const squatter = new pg.Client({ connectionString: env.urlFor(TEMPLATE) });
    await squatter.connect();
    const squatterPid = (await squatter.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('conc_late', 1)`);
    try {
      await expect(env.admin.query('CALL admmgt.create_database()')).rejects.toMatchObject({
        code: '55006', message: expect.stringContaining(`template database ${TEMPLATE} has open connections: pid ${squatterPid}`),
      });
      expect(await ownLocks(env.admin)).toEqual([]);
      // Another session is refused for the same reason, not because of a lock left behind.
      const other = await session();
      await expect(other.client.query('CALL admmgt.create_database()')).rejects.toMatchObject({ code: '55006' });
    } finally {
      await squatter.end();
    }
    await env.waitIdle(TEMPLATE, 10_000);
    await env.admin.query('CALL admmgt.create_database()');
    expect((await versions()).conc_late).toBe(3);
  });

  it('takes no lock when refesh_stored_procedures cannot read the template', async () => {
    await env.admin.query(`ALTER DATABASE ${TEMPLATE} RENAME TO conc_tpl_moved`);
    try {
      await expect(env.admin.query('CALL admmgt.refesh_stored_procedures()')).rejects.toMatchObject({ code: '08001' });
      expect(await ownLocks(env.admin)).toEqual([]);
      const other = await session();
      await expect(other.client.query('CALL admmgt.refesh_stored_procedures()')).rejects.toMatchObject({ code: '08001' });
    } finally {
      await env.admin.query(`ALTER DATABASE conc_tpl_moved RENAME TO ${TEMPLATE}`);
    }
    await env.admin.query('CALL admmgt.refesh_stored_procedures()');
    expect(await env.queryIn('conc_t1', `SELECT to_regprocedure('app.slow_step(int, float8)') IS NOT NULL AS ok`)).toEqual([{ ok: true }]);
  });
});
