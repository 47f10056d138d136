// Rolling scripts back (CALL admmgt.rollbackScripts, 115_rollback_scripts.sql): the down steps of
// every script above p_to, newest first, one transaction per (script, target); the catalogs back
// as they were, the ledgers and the registry agreeing; refused before anything changes when a
// script has no down steps; a failing down step leaves its target where it was while the others
// go on. Every database of this file starts with rollback_.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers } from './support/apply.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';
import { ONE, THREE, TWO } from './support/rollback-scripts.js';

let env: TestEnv;
const TPL = 'rollback_tpl';
const T1 = 'rollback_t1';
const T2 = 'rollback_t2';
const { admin, fresh, scriptStatus, ledger } = applyHelpers(() => env, TPL);

/** What a database's app schema holds: tables, columns (with types) and indexes, as text lines. */
async function catalog(db: string): Promise<string[]> {
  return (await env.queryIn<{ line: string }>(db, `
    SELECT 'table ' || c.relname AS line FROM pg_class c WHERE c.relnamespace = 'mgttest'::regnamespace AND c.relkind IN ('r', 'p')
    UNION ALL
    SELECT format('column %s.%s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'not null' ELSE '' END)
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'mgttest'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     WHERE c.relnamespace = 'mgttest'::regnamespace
    ORDER BY 1`)).map((r) => r.line);
}

/** The version the registry gives every created target, by name. */
async function versions(): Promise<Record<string, number>> {
  return env.versions({ nullAs: 0, createdOnly: true });
}

/** Template and two tenants, with script 1 applied, then scripts 2 and 3; returns the catalogs after 1 and after 3. */
async function fleet(): Promise<{ at1: Record<string, string[]>; at3: Record<string, string[]> }> {
  await fresh([T1, T2]);
  await env.addScript(ONE);
  await admin('CALL admmgt.applyScripts()');
  const at1 = { [TPL]: await catalog(TPL), [T1]: await catalog(T1), [T2]: await catalog(T2) };
  await env.addScript(TWO);
  await env.addScript(THREE);
  await admin('CALL admmgt.applyScripts()');
  const at3 = { [TPL]: await catalog(TPL), [T1]: await catalog(T1), [T2]: await catalog(T2) };
  expect(await versions()).toEqual({ [TPL]: 3, [T1]: 3, [T2]: 3 });
  expect(at3[T1]).not.toEqual(at1[T1]);
  env.notices.length = 0;
  return { at1, at3 };
}

beforeAll(async () => {
  env = await createEnv('rollback');
});

afterAll(async () => {
  await env?.close();
});

describe('rollbackScripts on the whole fleet', () => {
  it('takes the template and every tenant back to p_to: catalogs as they were, ledgers and registry agreeing, the scripts designing and unfrozen', async () => {
    const { at1 } = await fleet();
    await admin('CALL admmgt.rollbackScripts(p_to => 1)');
    for (const db of [TPL, T1, T2]) {
      expect(await catalog(db), db).toEqual(at1[db]);
      expect(await ledger(db), db).toEqual([1]);
    }
    expect(await versions()).toEqual({ [TPL]: 1, [T1]: 1, [T2]: 1 });
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 0, 3: 0 });
    expect(await admin(`SELECT id, frozen_at FROM admmgt.scripts WHERE id > 1 ORDER BY id`)).toEqual([
      { id: 2, frozen_at: null }, { id: 3, frozen_at: null }]);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_parts WHERE scriptid > 1`)).toEqual([{ n: 0 }]);
    // Newest first, per target, the template first; each its own transaction, logged as rollback.
    // Newest first on each target, the template first and alone; each (script, target) its own transaction.
    const order = await admin<{ dbname: string; scriptid: number }>(
      `SELECT dbname, scriptid FROM admmgt.script_log WHERE operation = 'rollback' GROUP BY dbname, scriptid ORDER BY min(id)`);
    expect(order.slice(0, 2)).toEqual([{ dbname: TPL, scriptid: 3 }, { dbname: TPL, scriptid: 2 }]);
    for (const db of [T1, T2]) expect(order.filter((o) => o.dbname === db).map((o) => o.scriptid), db).toEqual([3, 2]);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.target_results WHERE operation = 'rollback' AND ok`)).toEqual([{ n: 6 }]);
    const [run] = await admin<{ operation: string; targets: number; failed: number }>(
      `SELECT operation, targets, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`);
    expect(run).toEqual({ operation: 'rollback', targets: 3, failed: 0 });
    expect(await admin(`SELECT DISTINCT operation, outcome FROM admmgt.script_log WHERE run_id = (SELECT max(run_id) FROM admmgt.runs)`))
      .toEqual([{ operation: 'rollback', outcome: 'ok' }]);
    expect(env.notices.some((n) => /script\(s\) 2, 3 set to status 0/.test(n))).toBe(true);
    // admmgt status shows the last operation of each target.
    expect(await admin(`SELECT dbname, last_operation, last_scriptid FROM admmgt.tenant_status ORDER BY dbname`)).toEqual([
      { dbname: T1, last_operation: 'rollback', last_scriptid: 2 },
      { dbname: T2, last_operation: 'rollback', last_scriptid: 2 },
      { dbname: TPL, last_operation: 'rollback', last_scriptid: 2 }]);
  });

  it('a new tenant is made at p_to; the rolled back scripts, their rows fixed and set ready, apply again everywhere', async () => {
    await env.makeTenants(['rollback_t3']);
    expect((await versions())['rollback_t3']).toBe(1);
    expect(await catalog('rollback_t3')).toEqual(await catalog(T1));
    // Unfrozen: a row of script 3 can be changed now.
    await admin(`UPDATE admmgt.script_sql SET body = 'CREATE INDEX orders_customer ON mgttest.orders (customer_id, id)'
                  WHERE scriptid = 3 AND seq = 2 AND direction = 'up'`);
    await admin('UPDATE admmgt.scripts SET status = 1 WHERE id IN (2, 3)');
    await admin('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 3, [T1]: 3, [T2]: 3, rollback_t3: 3 });
    for (const db of [TPL, T1, T2, 'rollback_t3']) {
      expect(await ledger(db), db).toEqual([1, 2, 3]);
      expect(await catalog(db), db).toContain('index CREATE INDEX orders_customer ON mgttest.orders USING btree (customer_id, id)');
    }
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 2 });
  });
});

describe('rollbackScripts on chosen tenants', () => {
  it('takes only the chosen tenant back and pins it there; the template, the others and the scripts stay as they are', async () => {
    const { at1, at3 } = await fleet();
    await admin(`CALL admmgt.rollbackScripts(p_to => 1, p_tenants => ARRAY['${T1}'])`);
    expect(await catalog(T1)).toEqual(at1[T1]);
    expect(await catalog(T2)).toEqual(at3[T2]);
    expect(await catalog(TPL)).toEqual(at3[TPL]);
    expect(await ledger(T1)).toEqual([1]);
    expect(await ledger(T2)).toEqual([1, 2, 3]);
    expect(await versions()).toEqual({ [TPL]: 3, [T1]: 1, [T2]: 3 });
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 2 });
    expect(await admin(`SELECT lower(dbname) AS dbname, pinned_version FROM admmgt.vendor_db_settings WHERE pinned_version IS NOT NULL`))
      .toEqual([{ dbname: T1, pinned_version: 1 }]);
    expect(env.notices.some((n) => n.includes(`${T1} pinned at version 1`))).toBe(true);
    // The next apply leaves it there.
    await admin('CALL admmgt.applyScripts()');
    expect((await versions())[T1]).toBe(1);
    await admin(`CALL admmgt.unpin_tenant('${T1}')`);
    await admin('CALL admmgt.applyScripts()');
    expect(await catalog(T1)).toEqual(at3[T1]);
    expect(await ledger(T1)).toEqual([1, 2, 3]);
  });
});

describe('refusals and failures', () => {
  it('refuses a script without down steps before any target is touched, naming it', async () => {
    const { at3 } = await fleet();
    await admin(`DELETE FROM admmgt.script_sql WHERE scriptid = 2 AND direction = 'down'`);
    const runs = (await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n;
    const e = await env.errorOf('CALL admmgt.rollbackScripts(p_to => 0)');
    expect(e.code).toBe('55000');
    expect(e.message).toBe('admmgt: script 2 has no down steps, so it cannot be rolled back to 0: nothing was touched');
    expect(e.hint).toMatch(/direction\) VALUES \(2, 1/);
    for (const db of [TPL, T1, T2]) expect(await catalog(db), db).toEqual(at3[db]);
    expect(await versions()).toEqual({ [TPL]: 3, [T1]: 3, [T2]: 3 });
    expect((await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n).toBe(runs);
    // Down steps may be added to an applied, frozen script; then it goes.
    await admin(`INSERT INTO admmgt.script_sql (scriptid, seq, body, direction) VALUES (2, 1, 'DROP TABLE mgttest.customers', 'down')`);
    expect(await admin('SELECT * FROM admmgt.script_drift()')).toEqual([]);
    await admin('CALL admmgt.rollbackScripts(p_to => 2)');
    expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 2 });
  });

  it('refuses a down step outside a transaction, and a bad p_to', async () => {
    await fleet();
    const [{ id }] = await admin<{ id: string }>(
      `INSERT INTO admmgt.script_sql (scriptid, seq, body, txmode, direction) VALUES (3, 3, 'VACUUM mgttest.orders', 'none', 'down') RETURNING id::text`) as [{ id: string }];
    const e = await env.errorOf('CALL admmgt.rollbackScripts(p_to => 2)');
    expect([e.code, e.message]).toEqual(['42601', `admmgt: admmgt.script_sql id ${id} is a down step with txmode none`]);
    await admin(`DELETE FROM admmgt.script_sql WHERE id = ${id}`);
    expect((await env.errorOf('CALL admmgt.rollbackScripts(p_to => -1)')).code).toBe('22023');
    expect(await versions()).toEqual({ [TPL]: 3, [T1]: 3, [T2]: 3 });
  });

  it('a down step that fails on one tenant leaves that tenant at its version, its transaction undone; the others go back', async () => {
    const { at1, at3 } = await fleet();
    // On T2 the index is gone already: script 3's first down step fails there.
    await env.queryIn(T2, 'DROP INDEX mgttest.orders_customer');
    const broken = await catalog(T2);
    await admin(`CALL admmgt.rollbackScripts(p_to => 1, p_tenants => ARRAY['${T1}', '${T2}'])`);
    expect(env.notices.some((n) => n.startsWith('WARNING: admmgt rollback:') && n.includes(T2))).toBe(true);
    expect(await catalog(T1)).toEqual(at1[T1]);
    expect(await catalog(T2)).toEqual(broken);
    expect(await ledger(T2)).toEqual([1, 2, 3]);
    expect(await versions()).toEqual({ [TPL]: 3, [T1]: 1, [T2]: 3 });
    const [f] = await admin<{ operation: string; scriptid: number; dbname: string; message: string }>(
      `SELECT operation, scriptid, dbname, message FROM admmgt.failures`);
    expect(f).toMatchObject({ operation: 'rollback', scriptid: 3, dbname: T2 });
    expect(f!.message).toMatch(/^admmgt\.script_sql id \d+: index "orders_customer" does not exist/);
    void at3;
  });
});

describe('a down step that fails on the template', () => {
  it('stops the whole-fleet rollback there: the template stays at its version, its tenants are untouched, the scripts keep their status', async () => {
    const { at3 } = await fleet();
    await env.queryIn(TPL, 'DROP INDEX mgttest.orders_customer');
    const broken = await catalog(TPL);
    await admin('CALL admmgt.rollbackScripts(p_to => 1)');
    expect(await catalog(TPL)).toEqual(broken);
    expect(await ledger(TPL)).toEqual([1, 2, 3]);
    for (const db of [T1, T2]) expect(await catalog(db), db).toEqual(at3[db]);
    expect(await versions()).toEqual({ [TPL]: 3, [T1]: 3, [T2]: 3 });
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 2 });
    expect(env.notices.some((n) => n.startsWith('WARNING: admmgt rollback: the database template failed: its tenants are left untouched'))).toBe(true);
    expect(await admin(`SELECT operation, scriptid, dbname FROM admmgt.failures`)).toEqual([{ operation: 'rollback', scriptid: 3, dbname: TPL }]);
    // Fixed, the rollback goes on from there.
    await env.queryIn(TPL, 'CREATE INDEX orders_customer ON mgttest.orders (customer_id)');
    await admin('CALL admmgt.rollbackScripts(p_to => 1)');
    expect(await versions()).toEqual({ [TPL]: 1, [T1]: 1, [T2]: 1 });
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.failures`)).toEqual([{ n: 0 }]);
  });
});

describe('a script in parts', () => {
  it('rolls back a script with a step outside a transaction: its parts leave the ledger too, so a re-apply runs them again', async () => {
    await fresh([T1]);
    await env.addScript(ONE);
    await env.addScript({
      id: 2, description: 'an index built concurrently',
      sql: [{ seq: 1, body: 'ALTER TABLE mgttest.orders ADD COLUMN note text' },
            { seq: 2, body: 'CREATE INDEX CONCURRENTLY orders_note ON mgttest.orders (note)', txmode: 'none' }],
      down: [{ seq: 1, body: 'DROP INDEX mgttest.orders_note; ALTER TABLE mgttest.orders DROP COLUMN note' }],
    });
    await admin('CALL admmgt.applyScripts(p_upto => 1)');
    const at1 = await catalog(T1);
    await admin('CALL admmgt.applyScripts()');
    const at2 = await catalog(T1);
    expect(at2).toContain('index CREATE INDEX orders_note ON mgttest.orders USING btree (note)');
    expect(await env.queryIn(T1, 'SELECT count(*)::int AS n FROM admmgt.applied_parts WHERE scriptid = 2')).toEqual([{ n: 2 }]);
    await admin('CALL admmgt.rollbackScripts(p_to => 1)');
    expect(await catalog(T1)).toEqual(at1);
    expect(await catalog(TPL)).toEqual(at1);
    expect(await env.queryIn(T1, 'SELECT count(*)::int AS n FROM admmgt.applied_parts WHERE scriptid = 2')).toEqual([{ n: 0 }]);
    await admin('UPDATE admmgt.scripts SET status = 1 WHERE id = 2');
    await admin('CALL admmgt.applyScripts()');
    expect(await catalog(T1)).toEqual(at2);
    expect(await ledger(T1)).toEqual([1, 2]);
  });

  it('refuses a tenant that stopped partway through a script in parts: before anything is touched when the admin side saw it, on the tenant when it did not; finished, it rolls back', async () => {
    await fresh([T1, T2]);
    await env.addScript(ONE);
    await admin('CALL admmgt.applyScripts()');
    const at0 = await catalog(TPL);
    // T2 already has the table the second part makes: that part fails there, after the first committed.
    await env.queryIn(T2, 'CREATE TABLE mgttest.audit (id int)');
    await env.addScript({
      id: 2, description: 'a note and an audit table, the second outside a transaction',
      sql: [{ seq: 1, body: 'ALTER TABLE mgttest.orders ADD COLUMN note text' },
            { seq: 2, body: 'CREATE TABLE mgttest.audit (id int)', txmode: 'none' }],
      down: [{ seq: 1, body: 'DROP TABLE mgttest.audit; ALTER TABLE mgttest.orders DROP COLUMN note' }],
    });
    await admin('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 1 });
    const t2Partway = await catalog(T2);
    expect(t2Partway).toContain('column orders.note text ');

    const refused = await env.errorOf('CALL admmgt.rollbackScripts(p_to => 0)');
    expect(refused.code).toBe('55000');
    expect(refused.message).toBe('admmgt: rollback_t2 (script 2) stopped partway through a script in parts, so it cannot be rolled back to 0: nothing was touched');
    expect(refused.hint).toContain(`p_tenants => ARRAY['rollback_t2']`);
    expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 1 });
    expect(await catalog(T2)).toEqual(t2Partway);

    // A run killed after the first part, before the second began, leaves the admin side nothing to
    // see, and the tenant's ledger the first part alone: that ledger refuses.
    await admin('DELETE FROM admmgt.part_attempts');
    await env.queryIn(T2, 'DELETE FROM admmgt.applied_parts WHERE scriptid = 2 AND part = 2');
    await admin(`CALL admmgt.rollbackScripts(p_to => 0, p_tenants => ARRAY['${T2}'])`);
    expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 1 });
    expect(await catalog(T2)).toEqual(t2Partway);
    expect(await admin(`SELECT dbname, sqlstate, message FROM admmgt.failures WHERE dbname = '${T2}' AND operation = 'rollback'`)).toEqual([{
      dbname: T2, sqlstate: '55000',
      message: expect.stringContaining('admmgt: this database stopped partway through script 2, after some of its parts (admmgt.applied_parts), so it is not rolled back past it'),
    }]);

    // Finished, it goes back with everyone, the script's down steps included.
    await env.queryIn(T2, 'DROP TABLE mgttest.audit');
    await admin(`CALL admmgt.unpin_tenant('${T2}')`);
    await admin('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 2 });
    await admin('CALL admmgt.rollbackScripts(p_to => 0)');
    expect(await versions()).toEqual({ [TPL]: 0, [T1]: 0, [T2]: 0 });
    for (const db of [TPL, T1, T2]) expect(await catalog(db)).toEqual([]);
    expect(at0).toContain('table orders');
  });

  it('rolls back a tenant whose script in parts failed at its first part: nothing of it ran there', async () => {
    await fresh([T1, T2]);
    await env.addScript(ONE);
    await admin('CALL admmgt.applyScripts()');
    await env.queryIn(T2, 'CREATE TABLE mgttest.audit (id int)');
    await env.addScript({
      id: 2, description: 'an audit table outside a transaction, then a note',
      sql: [{ seq: 1, body: 'CREATE TABLE mgttest.audit (id int)', txmode: 'none' },
            { seq: 2, body: 'ALTER TABLE mgttest.orders ADD COLUMN note text' }],
      down: [{ seq: 1, body: 'ALTER TABLE mgttest.orders DROP COLUMN note; DROP TABLE mgttest.audit' }],
    });
    await admin('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 1 });
    expect(await admin(`SELECT part, state FROM admmgt.part_attempts`)).toEqual([{ part: 1, state: 'failed' }]);
    await admin('CALL admmgt.rollbackScripts(p_to => 0)');
    expect(await versions()).toEqual({ [TPL]: 0, [T1]: 0, [T2]: 0 });
    expect(await catalog(T1)).toEqual([]);
    expect(await catalog(T2)).toEqual(['column audit.id integer ', 'table audit']);
  });

  it('shares the lock of apply and create', async () => {
    expect(await admin(`SELECT admmgt._lock_key('rollback') = admmgt._lock_key('apply') AS same`)).toEqual([{ same: true }]);
  });
});

describe('the CLI', () => {
  it('script add --down registers a file with its down steps (an applied one may get them later); rollback --to takes the fleet back; status shows it', async () => {
    await fresh([T1]);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rollback-'));
    try {
      await writeFile(path.join(dir, 'V1__items.sql'), 'CREATE TABLE mgttest.items (id int PRIMARY KEY);\nCREATE INDEX items_x ON mgttest.items (id DESC);\n');
      await writeFile(path.join(dir, 'V1__items.down.sql'), 'DROP INDEX mgttest.items_x;\nDROP TABLE mgttest.items;\n');
      await writeFile(path.join(dir, 'V2__notes.sql'), 'CREATE TABLE mgttest.notes (id int);\n');
      await writeFile(path.join(dir, 'V2__notes.down.sql'), 'DROP TABLE mgttest.notes;\n');
      await writeFile(path.join(dir, 'bad.down.sql'), '-- admmgt: no-transaction\nDROP TABLE mgttest.notes;\n');
      const before = await catalog(T1);
      let r = await cli('script', 'add', path.join(dir, 'V1__items.sql'), '--down', path.join(dir, 'V1__items.down.sql'), '--url', env.adminUrl, '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).files).toEqual([{ file: 'V1__items.sql', scriptid: 1, outcome: 'added' }]);
      r = await cli('script', 'add', path.join(dir, 'V2__notes.sql'), '--url', env.adminUrl);
      expect(r.code, r.stderr).toBe(0);
      r = await cli('apply', '--url', env.adminUrl);
      expect(r.code, r.stderr).toBe(0);
      expect(await ledger(T1)).toEqual([1, 2]);
      // Script 2 has no down steps: refused, nothing touched.
      r = await cli('rollback', '--to', '0', '--url', env.adminUrl);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/script 2 has no down steps/);
      expect(await ledger(T1)).toEqual([1, 2]);
      // A down file with the no-transaction header is refused; the right one is added to the applied script.
      r = await cli('script', 'add', path.join(dir, 'V2__notes.sql'), '--down', path.join(dir, 'bad.down.sql'), '--url', env.adminUrl);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/down file bad\.down\.sql has the header/);
      r = await cli('script', 'add', path.join(dir, 'V2__notes.sql'), '--down', path.join(dir, 'V2__notes.down.sql'), '--url', env.adminUrl, '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).files).toEqual([{ file: 'V2__notes.sql', scriptid: 2, outcome: 'down added' }]);
      r = await cli('script', 'add', path.join(dir, 'V2__notes.sql'), '--down', path.join(dir, 'V2__notes.down.sql'), '--url', env.adminUrl, '--json');
      expect(JSON.parse(r.stdout).files).toEqual([{ file: 'V2__notes.sql', scriptid: 2, outcome: 'unchanged' }]);
      r = await cli('rollback', '--url', env.adminUrl);
      expect(r.code).toBe(2);
      r = await cli('rollback', '--to', '0', '--url', env.adminUrl, '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'rollback', targets: 2, failed: 0 });
      expect(await catalog(T1)).toEqual(before);
      expect(await catalog(TPL)).toEqual(before);
      expect(await ledger(T1)).toEqual([]);
      expect(await versions()).toEqual({ [TPL]: 0, [T1]: 0 });
      r = await cli('status', '--url', env.adminUrl, '--json');
      expect(JSON.parse(r.stdout).rollbacks).toEqual([
        expect.objectContaining({ dbname: TPL, scriptid: 1, ok: true }), expect.objectContaining({ dbname: T1, scriptid: 1, ok: true })]);
      r = await cli('status', '--url', env.adminUrl);
      expect(r.stdout).toMatch(new RegExp(`${T1}: rollback of script 1 done`));
      expect(r.stdout).toMatch(/1 +designing/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('schema targets', () => {
  const P = 'rollbacksch';
  const TS = `${P}_tpl`;
  const [A, B] = [`${P}_one`, `${P}_two`];
  let senv: TestEnv;

  /** Tables, columns and indexes of one schema of the admin database. */
  async function schemaCatalog(schema: string): Promise<string[]> {
    return (await senv.rows<{ line: string }>(`
      SELECT 'table ' || c.relname AS line FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p')
      UNION ALL
      SELECT format('column %s.%s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
      UNION ALL
      SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
       WHERE c.relnamespace = $1::regnamespace
      ORDER BY 1`, [schema])).map((r) => r.line);
  }
  const schemaLedger = async (schema: string) =>
    (await senv.rows<{ s: number }>(`SELECT scriptid AS s FROM admmgt.applied_schema_scripts WHERE schemaname = $1 ORDER BY 1`, [schema])).map((r) => r.s);

  beforeAll(async () => {
    senv = await createEnv(P);
  });
  afterAll(async () => {
    await senv?.close();
  });

  it('each schema target runs the down steps in its own schema, its ledger row goes; one tenant, then the whole fleet', async () => {
    await senv.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('${TS}', true, 1);
                            INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('${A}', 1), ('${B}', 1)`);
    await senv.addScript({
      id: 1, description: 'orders',
      sql: [{ seq: 1, body: `CREATE TABLE ${TS}.orders (id bigint PRIMARY KEY)` }],
      down: [{ seq: 1, body: `DROP TABLE ${TS}.orders` }],
    });
    await senv.admin.query('CALL admmgt.create_schema()');
    await senv.admin.query('CALL admmgt.applyScripts(0)');
    const at1 = { [TS]: await schemaCatalog(TS), [A]: await schemaCatalog(A), [B]: await schemaCatalog(B) };
    expect(at1[A]).toContain('table orders');
    await senv.addScript({
      id: 2, description: 'customers',
      sql: [{ seq: 1, body: `ALTER TABLE ${TS}.orders ADD COLUMN customer_id bigint; CREATE INDEX orders_c ON ${TS}.orders (customer_id)` }],
      down: [{ seq: 1, body: `DROP INDEX ${TS}.orders_c; ALTER TABLE ${TS}.orders DROP COLUMN customer_id` }],
    });
    await senv.addScript({
      id: 3, description: 'notes',
      sql: [{ seq: 1, body: `CREATE TABLE ${TS}.notes (id int)` }],
      down: [{ seq: 1, body: `DROP TABLE ${TS}.notes` }],
    });
    await senv.admin.query('CALL admmgt.applyScripts(0)');
    const at3 = { [TS]: await schemaCatalog(TS), [A]: await schemaCatalog(A), [B]: await schemaCatalog(B) };
    expect(at3[B]).toContain(`index CREATE INDEX orders_c ON ${B}.orders USING btree (customer_id)`);

    await senv.admin.query(`CALL admmgt.rollbackScripts(p_to => 1, t_separatedb => 0, p_tenants => ARRAY['${A}'])`);
    expect(await schemaCatalog(A)).toEqual(at1[A]);
    expect(await schemaCatalog(B)).toEqual(at3[B]);
    expect(await schemaCatalog(TS)).toEqual(at3[TS]);
    expect(await schemaLedger(A)).toEqual([1]);
    expect(await schemaLedger(B)).toEqual([1, 2, 3]);

    await senv.admin.query(`CALL admmgt.unpin_tenant('${A}')`);
    await senv.admin.query('CALL admmgt.rollbackScripts(p_to => 1, t_separatedb => 0)');
    for (const s of [TS, A, B]) {
      expect(await schemaCatalog(s), s).toEqual(at1[s]);
      expect(await schemaLedger(s), s).toEqual([1]);
    }
    expect(await senv.versions({ nullAs: 0 })).toEqual({ [TS]: 1, [A]: 1, [B]: 1 });
    // A tenant made now is made at 1.
    await senv.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('${P}_late', 1)`);
    await senv.admin.query('CALL admmgt.create_schema()');
    expect(await schemaCatalog(`${P}_late`)).toEqual(at1[A]!.map((l) => l.replaceAll(A, `${P}_late`)));
  });
});
