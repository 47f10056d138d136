// How applyScripts contains failures: the template is the canary; a failing tenant fails alone and
// atomically and a rerun finishes only it (trusting the tenant's ledger); a tenant whose database is
// missing; a locked table (admmgt.lock_timeout); a script a lagging tenant needs that is no longer ready.
// Every database of this file starts with applyfail_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S, TEMPLATE_PROCS } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applyfail_tpl';
const { admin, adminError, fresh, scriptStatus, runCount, tables, hasTable, ledger, columns } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applyfail');
});
afterAll(async () => {
  await env?.close();
});

describe('applyScripts: the template is the canary', () => {
  beforeAll(async () => {
    await fresh(['applyfail_c1', 'applyfail_c2']);
    await env.addScript({ id: 1, description: 'fine', tables: [{ schema: S, name: 'can1', columns: [{ name: 'id', type: 'int' }] }] });
    await env.addScript({
      id: 2, description: 'calls a procedure nobody has',
      tables: [{ schema: S, name: 'can2', columns: [{ name: 'id', type: 'int' }] }],
      calls: [`call ${S}.nope()`],
    });
    await env.addScript({ id: 3, description: 'waits behind 2', tables: [{ schema: S, name: 'can3', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
  });

  it('marks a script that fails on the template failed (status 3) with last_error; later scripts stay ready', async () => {
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 3, 3: 1 });
    const [s2] = await admin<{ last_error: string }>('SELECT last_error FROM admmgt.scripts WHERE id = 2');
    expect(s2!.last_error).toMatch(/procedure mgttest\.nope\(\) does not exist \(SQLSTATE 42883\) at: call mgttest\.nope\(\)/);
    expect(await admin('SELECT operation, scriptid, dbname, sqlstate, statement FROM admmgt.failures')).toEqual([
      { operation: 'apply', scriptid: 2, dbname: TPL, sqlstate: '42883', statement: 'call mgttest.nope()' },
    ]);
  });

  it('leaves the template at the last good script with none of the failed script\'s objects', async () => {
    expect(await tables(TPL)).toEqual(['can1:r']);
    expect(await ledger(TPL)).toEqual([1]);
    expect((await env.versions())[TPL]).toBe(1);
  });

  it('touches no tenant with the failed script or the ones after it', async () => {
    for (const db of ['applyfail_c1', 'applyfail_c2']) {
      expect(await tables(db)).toEqual(['can1:r']);
      expect(await ledger(db)).toEqual([1]);
    }
    expect(await env.versions()).toEqual({ [TPL]: 1, applyfail_c1: 1, applyfail_c2: 1 });
    expect(await admin(`SELECT DISTINCT dbname FROM admmgt.script_log WHERE scriptid IN (2, 3) ORDER BY 1`)).toEqual([{ dbname: TPL }]);
  });

  it('on the next run says why the ready scripts wait, does nothing, and ends with an error naming the failed script', async () => {
    env.notices.length = 0;
    const before = await runCount();
    const e = await adminError('CALL admmgt.applyScripts()');
    expect([e.code, e.message]).toEqual(['55000', expect.stringMatching(/^admmgt: script 2 failed on the template and holds back every script after it: /)]);
    expect(env.notices.join('\n')).toMatch(/script 2 has status 3 \(failed\), so the ready scripts after it wait/);
    expect(env.notices.join('\n')).not.toMatch(/nothing to do/);
    expect(await runCount()).toBe(before);
    expect(await hasTable(TPL, 'can3')).toBe(false);
  });

  it('applies the repaired script and the waiting one once the failed one is set ready again', async () => {
    await env.admin.query(`DELETE FROM admmgt.script_procs WHERE scriptid = 2`);
    await env.admin.query(`UPDATE admmgt.scripts SET status = 1 WHERE id = 2`);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 2 });
    expect(await admin('SELECT last_error FROM admmgt.scripts WHERE id = 2')).toEqual([{ last_error: null }]);
    for (const db of [TPL, 'applyfail_c1', 'applyfail_c2']) {
      expect(await tables(db)).toEqual(['can1:r', 'can2:r', 'can3:r']);
      expect(await ledger(db)).toEqual([1, 2, 3]);
    }
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });
});

describe('applyScripts: a failing tenant fails alone and atomically; a rerun finishes only it', () => {
  const TENANTS = ['applyfail_i1', 'applyfail_i2', 'applyfail_i3'];

  const isoScript: ScriptSpec = {
    id: 1,
    description: 'three steps; the second collides in applyfail_i2',
    tables: [
      { schema: S, name: 'iso_a', columns: [{ name: 'id', type: 'bigint', identity: true, primaryKey: true }, { name: 'label', type: 'text' }] },
      { schema: S, name: 'iso', columns: [{ name: 'id', type: 'int', primaryKey: true }] },
    ],
    calls: [`call ${S}.bump()`],
  };

  beforeAll(async () => {
    await fresh(TENANTS, TEMPLATE_PROCS);
    await env.queryIn('applyfail_i2', `CREATE TABLE mgttest.iso (something text)`);
    await env.addScript(isoScript);
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
  });

  it('brings the other tenants to the new version and keeps the failing one at the old one', async () => {
    expect(await env.versions()).toEqual({ [TPL]: 1, applyfail_i1: 1, applyfail_i2: 0, applyfail_i3: 1 });
    for (const db of [TPL, 'applyfail_i1', 'applyfail_i3']) {
      expect(await tables(db)).toEqual(['iso:r', 'iso_a:r']);
      expect(await env.queryIn(db, 'SELECT label FROM mgttest.iso_a')).toEqual([{ label: 'bumped' }]);
      expect(await ledger(db)).toEqual([1]);
    }
    // One run: the template and three tenants, one of them failed.
    expect(await admin(`SELECT operation, targets, failed FROM admmgt.runs WHERE operation = 'apply'`)).toEqual([{ operation: 'apply', targets: 4, failed: 1 }]);
  });

  it('leaves none of the script\'s objects in the failing tenant: the statements before the error are rolled back', async () => {
    expect(await tables('applyfail_i2')).toEqual(['iso:r']);
    expect((await columns('applyfail_i2', 'iso')).map((c) => c.name)).toEqual(['something']);
    expect(await ledger('applyfail_i2')).toEqual([]);
    expect(await env.queryIn('applyfail_i2', `SELECT to_regclass('admmgt.applied_scripts') AS t`)).toEqual([{ t: null }]);
  });

  it('records the tenant\'s error (sqlstate, message, statement) in admmgt.failures and script_log', async () => {
    const failures = await admin('SELECT operation, scriptid, dbname, sqlstate, message, statement FROM admmgt.failures');
    expect(failures).toEqual([{
      operation: 'apply', scriptid: 1, dbname: 'applyfail_i2', sqlstate: '42P07',
      // The row the failing statement comes from, then PostgreSQL's message.
      message: expect.stringMatching(/^admmgt\.script_tables id \d+: relation "iso" already exists$/),
      statement: expect.stringMatching(/^CREATE TABLE mgttest\.iso \(/),
    }]);
    const logged = await admin(`SELECT dbname, outcome, sqlstate, commstat FROM admmgt.script_log WHERE outcome <> 'ok'`);
    expect(logged).toEqual([{ dbname: 'applyfail_i2', outcome: 'error', sqlstate: '42P07', commstat: failures[0]!.statement }]);
    expect(env.notices.join('\n')).toMatch(/WARNING: admmgt apply: applyfail_i2 failed: admmgt\.script_tables id \d+: relation "iso" already exists/);
  });

  it('logs one script_log row per target and script: a failed target\'s names the statement it stopped at, a successful one\'s holds every statement it ran', async () => {
    expect(await admin(`SELECT dbname, count(*)::int AS n FROM admmgt.script_log WHERE operation = 'apply' AND scriptid = 1 GROUP BY dbname ORDER BY dbname`))
      .toEqual([TPL, ...TENANTS].sort().map((dbname) => ({ dbname, n: 1 })));
    const [failed] = await admin<{ outcome: string; commstat: string }>(
      `SELECT outcome, commstat FROM admmgt.script_log WHERE operation = 'apply' AND scriptid = 1 AND dbname = 'applyfail_i2'`);
    expect(failed!.outcome).toBe('error');
    // The statement alone, as it was sent: not the batch around it.
    expect(failed!.commstat).toMatch(/^CREATE TABLE mgttest\.iso \(/);
    expect(failed!.commstat).not.toContain(';\n');
    const [{ batch }] = await admin<{ batch: string[] }>('SELECT admmgt.script_batch(1) AS batch') as [{ batch: string[] }];
    expect(await admin(`SELECT outcome, commstat FROM admmgt.script_log WHERE operation = 'apply' AND scriptid = 1 AND dbname = 'applyfail_i1'`))
      .toEqual([{ outcome: 'ok', commstat: batch.join(';\n') }]);
    expect(batch.length).toBeGreaterThan(1);
  });

  it('keeps the script ready (status 1) while a tenant lacks it', async () => {
    expect(await scriptStatus()).toEqual({ 1: 1 });
    expect(await admin('SELECT DISTINCT status FROM admmgt.script_tables')).toEqual([{ status: 1 }]);
  });

  it('after the conflict is removed, a rerun applies the script to that tenant only, once', async () => {
    await env.queryIn('applyfail_i2', 'DROP TABLE mgttest.iso');
    const [{ last }] = await admin<{ last: string }>('SELECT max(id)::text AS last FROM admmgt.script_log') as [{ last: string }];
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
    expect(await env.versions()).toEqual({ [TPL]: 1, applyfail_i1: 1, applyfail_i2: 1, applyfail_i3: 1 });
    expect(await admin(`SELECT DISTINCT dbname, outcome FROM admmgt.script_log WHERE id > $1`, [last]))
      .toEqual([{ dbname: 'applyfail_i2', outcome: 'ok' }]);
    for (const db of [TPL, ...TENANTS]) {
      expect(await tables(db)).toEqual(['iso:r', 'iso_a:r']);
      expect(await ledger(db)).toEqual([1]);
      // bump() ran exactly once everywhere.
      expect(await env.queryIn(db, 'SELECT count(*)::int AS n FROM mgttest.iso_a')).toEqual([{ n: 1 }]);
    }
    expect(await scriptStatus()).toEqual({ 1: 2 });
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await admin(`SELECT ok FROM admmgt.target_results WHERE dbname = 'applyfail_i2' AND operation = 'apply'`)).toEqual([{ ok: true }]);
  });

  it('trusts the tenant-side ledger: a tenant set back in the registry is recognized as already applied', async () => {
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET scriptversion = 0 WHERE dbname = 'applyfail_i1'`);
    const [{ last }] = await admin<{ last: string }>('SELECT max(id)::text AS last FROM admmgt.script_log') as [{ last: string }];
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(env.notices.filter((n) => n.startsWith('WARNING'))).toEqual([]);
    expect(await admin(`SELECT scriptid, dbname, outcome, sqlstate, commstat FROM admmgt.script_log WHERE id > $1`, [last])).toEqual([
      { scriptid: 1, dbname: 'applyfail_i1', outcome: 'already applied', sqlstate: null, commstat: 'INSERT INTO admmgt.applied_scripts (scriptid) VALUES (1)' },
    ]);
    expect((await env.versions()).applyfail_i1).toBe(1);
    expect(await env.queryIn('applyfail_i1', 'SELECT count(*)::int AS n FROM mgttest.iso_a')).toEqual([{ n: 1 }]);
    expect(await ledger('applyfail_i1')).toEqual([1]);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });
  it('stops a tenant at the last script that committed when a later one fails there, and tries nothing after it', async () => {
    await env.queryIn('applyfail_i3', `CREATE TABLE mgttest.iso3 (x int)`);
    await env.addScript({ id: 2, description: 'fine everywhere', tables: [{ schema: S, name: 'iso2', columns: [{ name: 'id', type: 'int' }] }] });
    await env.addScript({ id: 3, description: 'collides in applyfail_i3', tables: [{ schema: S, name: 'iso3', columns: [{ name: 'id', type: 'int' }] }] });
    await env.addScript({ id: 4, description: 'after the collision', tables: [{ schema: S, name: 'iso4', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 2)');
    expect(await env.versions()).toEqual({ [TPL]: 4, applyfail_i1: 4, applyfail_i2: 4, applyfail_i3: 2 });
    expect(await ledger('applyfail_i3')).toEqual([1, 2]);
    expect(await tables('applyfail_i3')).toEqual(['iso:r', 'iso2:r', 'iso3:r', 'iso_a:r']);
    expect((await columns('applyfail_i3', 'iso3')).map((c) => c.name)).toEqual(['x']);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE dbname = 'applyfail_i3' AND scriptid = 4`)).toEqual([{ n: 0 }]);
    expect(await admin('SELECT scriptid, dbname, sqlstate FROM admmgt.failures')).toEqual([{ scriptid: 3, dbname: 'applyfail_i3', sqlstate: '42P07' }]);
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 1, 4: 1 });
    for (const db of [TPL, 'applyfail_i1', 'applyfail_i2']) expect(await ledger(db)).toEqual([1, 2, 3, 4]);
  });
});

describe('applyScripts: a registered tenant whose database is missing', () => {
  beforeAll(async () => {
    await fresh(['applyfail_g1']);
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion) VALUES ('applyfail_ghost', 2, 0)`);
    await env.addScript({ id: 1, description: 'g', tables: [{ schema: S, name: 'g1', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
  });

  it('fails that tenant alone with a connection error and keeps the script ready', async () => {
    expect(await env.versions()).toEqual({ [TPL]: 1, applyfail_g1: 1, applyfail_ghost: 0 });
    const [f] = await admin<{ dbname: string; sqlstate: string; message: string; detail: string; statement: string | null }>(
      'SELECT dbname, sqlstate, message, detail, statement FROM admmgt.failures');
    expect(f).toMatchObject({ dbname: 'applyfail_ghost', statement: null });
    expect(f!.sqlstate).toMatch(/^08/);
    expect(f!.message).toMatch(/^server local, database applyfail_ghost: could not establish connection: .*database "applyfail_ghost" does not exist/);
    expect(f!.detail).toMatch(/database "applyfail_ghost" does not exist/);
    expect(await admin(`SELECT commstat, outcome FROM admmgt.script_log WHERE dbname = 'applyfail_ghost'`)).toEqual([{ commstat: 'connect', outcome: 'error' }]);
    expect(await scriptStatus()).toEqual({ 1: 1 });
    expect(await env.databases()).not.toContain('applyfail_ghost');
  });

  it('no longer holds the script back once the tenant is marked deleted', async () => {
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET deleted = true, deletedon = now() WHERE dbname = 'applyfail_ghost'`);
    env.notices.length = 0;
    const before = await runCount();
    await env.admin.query('CALL admmgt.applyScripts()');
    // Nothing left to run: the call says so, and the script stays ready until a run marks it.
    expect(env.notices.join('\n')).toMatch(/nothing to do/);
    expect(await runCount()).toBe(before);
    await env.addScript({ id: 2, description: 'g2', tables: [{ schema: S, name: 'g2', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2 });
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE dbname = 'applyfail_ghost' AND scriptid = 2`)).toEqual([{ n: 0 }]);
  });
});

describe('applyScripts: a tenant whose table is locked', () => {
  it('gives up after admmgt.lock_timeout with 55P03, leaves the tenant as it was, and a rerun finishes it', async () => {
    await fresh(['applyfail_l1', 'applyfail_l2']);
    await env.addScript({ id: 1, description: 'l1', tables: [{ schema: S, name: 'busy', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    await env.addScript({ id: 2, description: 'l2', addColumns: [{ schema: S, table: 'busy', column: { name: 'v', type: 'text' } }] });
    const holder = new pg.Client({ connectionString: env.urlFor('applyfail_l2') });
    await holder.connect();
    try {
      await holder.query(`BEGIN; LOCK TABLE ${S}.busy IN ACCESS SHARE MODE`);
      await env.admin.query(`SET admmgt.lock_timeout = '200ms'`);
      await env.admin.query('CALL admmgt.applyScripts()');
      expect(await env.versions()).toEqual({ [TPL]: 2, applyfail_l1: 2, applyfail_l2: 1 });
      expect(await admin('SELECT dbname, sqlstate FROM admmgt.failures')).toEqual([{ dbname: 'applyfail_l2', sqlstate: '55P03' }]);
      expect((await columns('applyfail_l2', 'busy')).map((c) => c.name)).toEqual(['id']);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await env.admin.query('RESET admmgt.lock_timeout');
    }
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 2, applyfail_l1: 2, applyfail_l2: 2 });
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });
});

describe('applyScripts: a script a lagging tenant needs is no longer ready', () => {
  it('stops the tenant before that script, says so, and never skips it', async () => {
    await fresh(['applyfail_g1']);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = 'applyfail_g1'`);
    for (const id of [1, 2, 3]) {
      await env.addScript({ id, description: `g${id}`, tables: [{ schema: S, name: `g${id}`, columns: [{ name: 'id', type: 'int' }] }] });
    }
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 3, applyfail_g1: 0 });
    // Script 2 is taken back to be edited while applyfail_g1 still needs it.
    await env.admin.query(`UPDATE admmgt.scripts SET status = 0 WHERE id = 2`);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = true WHERE dbname = 'applyfail_g1'`);
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 3, applyfail_g1: 1 });
    expect(await ledger('applyfail_g1')).toEqual([1]);
    expect(env.notices.join('\n')).toMatch(/WARNING: admmgt apply: script 2 has status 0 but tenants below it still need it/);
    // Ready again: the tenant takes 2, then 3.
    await env.admin.query(`UPDATE admmgt.scripts SET status = 1 WHERE id = 2`);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 3, applyfail_g1: 3 });
    expect(await ledger('applyfail_g1')).toEqual([1, 2, 3]);
  });
});
