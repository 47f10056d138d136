// Fleet control: choosing the targets of applyScripts() (by name, server and tag), the stop rule
// (p_max_failures), canaries, pins and p_upto, a script that failed on the template retried, and a
// tenant fixed by hand marked as having a script. Every database of this file starts with fleet_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'fleet_tpl';
const { admin, adminError, fresh, hasTable, ledger } = applyHelpers(() => env, TPL);
const TENANTS = ['fleet_a', 'fleet_b', 'fleet_c', 'fleet_d'];

beforeAll(async () => {
  env = await createEnv('fleet');
});
afterAll(async () => {
  await env?.close();
});

const table = (id: number): ScriptSpec => ({
  id, description: `table t${id}`, tables: [{ schema: S, name: `t${id}`, columns: [{ name: 'id', type: 'int' }] }],
});

async function versions(): Promise<Record<string, number>> {
  return env.versions({ nullAs: 0 });
}

describe('choosing the targets', () => {
  beforeAll(async () => {
    await fresh(TENANTS);
    await admin(`UPDATE admmgt.vendor_db_settings SET tags = '{canary}' WHERE dbname = 'fleet_c'`);
    await env.addScript(table(1));
  });

  it('applies to the named tenants only, the template first; the others keep their catalogs', async () => {
    await admin(`CALL admmgt.applyScripts(p_tenants => ARRAY['fleet_a', 'FLEET_B'])`);
    expect(await versions()).toEqual({ [TPL]: 1, fleet_a: 1, fleet_b: 1, fleet_c: 0, fleet_d: 0 });
    for (const db of ['fleet_c', 'fleet_d']) {
      expect(await hasTable(db, 't1')).toBe(false);
      expect(await ledger(db)).toEqual([]);
    }
    // Not everywhere yet: the script stays ready.
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 1')).toEqual([{ status: 1 }]);
  });

  it('applies to the tenants with a tag, and then by server', async () => {
    await admin(`CALL admmgt.applyScripts(p_tag => 'canary')`);
    expect(await versions()).toMatchObject({ fleet_c: 1, fleet_d: 0 });
    await admin(`CALL admmgt.applyScripts(p_server => 'local')`);
    expect(await versions()).toMatchObject({ fleet_d: 1 });
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 1')).toEqual([{ status: 2 }]);
  });

  it('refuses a name, server or tag that matches nothing, before any target is touched', async () => {
    await env.addScript(table(2));
    const runs = (await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n;
    let e = await adminError(`CALL admmgt.applyScripts(p_tenants => ARRAY['fleet_a', 'fleet_zz', 'nobody'])`);
    expect([e.code, e.message]).toEqual(['42704', 'admmgt: applyScripts was asked for fleet_zz, nobody, which are not a created target']);
    e = await adminError(`CALL admmgt.applyScripts(p_server => 'mars')`);
    expect([e.code, e.message]).toEqual(['42704', 'admmgt: applyScripts was asked for server mars, which is not registered']);
    e = await adminError(`CALL admmgt.applyScripts(p_tag => 'nope')`);
    expect([e.code, e.message]).toEqual(['42704', 'admmgt: applyScripts was asked for tag nope, which no created target has']);
    e = await adminError(`CALL admmgt.applyScripts(p_max_failures => 0)`);
    expect([e.code, e.message]).toEqual(['22023', 'admmgt: applyScripts was given p_max_failures => 0']);
    expect((await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n).toBe(runs);
    expect(await versions()).toEqual({ [TPL]: 1, fleet_a: 1, fleet_b: 1, fleet_c: 1, fleet_d: 1 });
  });

  it('takes the same choice from the CLI: --tenant (repeated), --tag, --server', async () => {
    const r = await cli('apply', '--url', env.adminUrl, '--tenant', 'fleet_a', '--tenant', 'fleet_d', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'apply', targets: 3, failed: 0 });
    expect(await versions()).toEqual({ [TPL]: 2, fleet_a: 2, fleet_b: 1, fleet_c: 1, fleet_d: 2 });
    expect((await cli('apply', '--url', env.adminUrl, '--tag', 'canary')).code).toBe(0);
    expect((await cli('apply', '--url', env.adminUrl, '--server', 'local')).code).toBe(0);
    expect(await versions()).toEqual({ [TPL]: 2, fleet_a: 2, fleet_b: 2, fleet_c: 2, fleet_d: 2 });
  });
});

describe('waves: the stop rule and canaries', () => {
  beforeAll(async () => {
    await fresh(TENANTS);
    // Three tenants already have a table of that name: script 1 fails in them.
    for (const db of ['fleet_a', 'fleet_b', 'fleet_c']) await env.queryIn(db, `CREATE TABLE ${S}.t1 (x text)`);
    await env.addScript(table(1));
  });

  it('stops starting targets after p_max_failures failed, leaves the rest untouched and says so', async () => {
    env.notices.length = 0;
    await admin('CALL admmgt.applyScripts(p_parallel => 1, p_max_failures => 1)');
    expect(await versions()).toEqual({ [TPL]: 1, fleet_a: 0, fleet_b: 0, fleet_c: 0, fleet_d: 0 });
    expect(await admin(`SELECT DISTINCT dbname FROM admmgt.script_log WHERE scriptid = 1 ORDER BY 1`))
      .toEqual([{ dbname: 'fleet_a' }, { dbname: TPL }]);
    expect(env.notices.join('\n')).toContain('WARNING: admmgt apply: stopped after 1 failed target(s) (p_max_failures => 1): 3 target(s) left untouched');
    expect(await admin(`SELECT targets, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`)).toEqual([{ targets: 2, failed: 1 }]);
  });

  it('applies to the canaries first and stops there when one fails', async () => {
    env.notices.length = 0;
    await admin('CALL admmgt.applyScripts(p_canary => 1)');
    expect(await versions()).toEqual({ [TPL]: 1, fleet_a: 0, fleet_b: 0, fleet_c: 0, fleet_d: 0 });
    expect(env.notices.join('\n')).toContain('WARNING: admmgt apply: a canary target failed (p_canary => 1): the other 3 target(s) are left untouched');
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE operation = 'apply' AND dbname IN ('fleet_b', 'fleet_c', 'fleet_d')`))
      .toEqual([{ n: 0 }]);
  });

  it('goes on to the rest when every canary succeeded', async () => {
    for (const db of ['fleet_a', 'fleet_b', 'fleet_c']) await env.queryIn(db, `DROP TABLE ${S}.t1`);
    const r = await cli('apply', '--url', env.adminUrl, '--canary', '2', '--max-failures', '1');
    expect(r.code).toBe(0);
    expect(await versions()).toEqual({ [TPL]: 1, fleet_a: 1, fleet_b: 1, fleet_c: 1, fleet_d: 1 });
  });
});

describe('pins and p_upto', () => {
  beforeAll(async () => {
    await fresh(TENANTS);
    await env.addScript(table(1));
    await admin('CALL admmgt.applyScripts()');
  });

  it('keeps a pinned tenant at its version while the fleet moves on', async () => {
    await admin(`CALL admmgt.pin_tenant('fleet_b', 1)`);
    await env.addScript(table(2));
    await admin('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 2, fleet_a: 2, fleet_b: 1, fleet_c: 2, fleet_d: 2 });
    expect(await hasTable('fleet_b', 't2')).toBe(false);
    // Not applied everywhere while a pinned tenant lacks it.
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 2')).toEqual([{ status: 1 }]);
    const e = await adminError(`CALL admmgt.pin_tenant('fleet_a', 1)`);
    expect([e.code, e.message]).toEqual(['22023', 'admmgt: fleet_a is at version 2, above the pin 1']);
  });

  it('brings chosen tenants up to a given version only (p_upto), then all the way after unpin', async () => {
    await env.addScript(table(3));
    await admin(`CALL admmgt.unpin_tenant('fleet_b')`);
    await admin(`CALL admmgt.applyScripts(p_upto => 2)`);
    expect(await versions()).toEqual({ [TPL]: 2, fleet_a: 2, fleet_b: 2, fleet_c: 2, fleet_d: 2 });
    const r = await cli('pin', 'fleet_c', '2', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect((await cli('apply', '--url', env.adminUrl, '--to', '3')).code).toBe(0);
    expect(await versions()).toEqual({ [TPL]: 3, fleet_a: 3, fleet_b: 3, fleet_c: 2, fleet_d: 3 });
    expect((await cli('unpin', 'fleet_c', '--url', env.adminUrl)).code).toBe(0);
    expect((await cli('apply', '--url', env.adminUrl)).code).toBe(0);
    expect(await versions()).toEqual({ [TPL]: 3, fleet_a: 3, fleet_b: 3, fleet_c: 3, fleet_d: 3 });
  });
});

describe('repair', () => {
  beforeAll(async () => {
    await fresh(['fleet_a', 'fleet_b']);
    await env.addScript(table(1));
    await admin('CALL admmgt.applyScripts()');
  });

  it('a script that failed on the template is an error on every later run, not nothing to do; retried once fixed', async () => {
    await env.queryIn(TPL, `CREATE TABLE ${S}.t2 (x text)`);
    await env.addScript(table(2));
    // The run in which the template fails the script reports it as its failure (a WARNING, failed 1).
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 2')).toEqual([{ status: 3 }]);
    expect(await versions()).toEqual({ [TPL]: 1, fleet_a: 1, fleet_b: 1 });
    const e = await adminError('CALL admmgt.applyScripts()');
    expect(e.code).toBe('55000');
    expect(e.message).toMatch(/^admmgt: script 2 failed on the template and holds back every script after it: admmgt\.script_tables id \d+: relation "t2" already exists/);
    expect(e.hint).toBe('Fix its cause (its rows, or the template), then CALL admmgt.retry_script(2) (admmgt retry 2).');
    const r = await cli('apply', '--url', env.adminUrl);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('script 2 failed on the template');
    // The cause is fixed in the template; the script is retried.
    await env.queryIn(TPL, `DROP TABLE ${S}.t2`);
    expect((await cli('retry', '2', '--url', env.adminUrl)).code).toBe(0);
    await admin('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 2, fleet_a: 2, fleet_b: 2 });
    expect(await admin(`SELECT operation, outcome FROM admmgt.script_log WHERE operation = 'retry'`)).toEqual([{ operation: 'retry', outcome: 'ok' }]);
  });

  it('marks a tenant fixed by hand as having a script: ledger, version and log, without running it', async () => {
    await env.queryIn('fleet_b', `CREATE TABLE ${S}.t3 (id int)`);
    await env.addScript(table(3));
    await admin('CALL admmgt.applyScripts()');
    expect(await versions()).toEqual({ [TPL]: 3, fleet_a: 3, fleet_b: 2 });
    // The DBA looks: fleet_b's t3 is what script 3 makes. Mark it.
    const r = await cli('mark-applied', 'fleet_b', '3', '--note', 'made by hand in ticket 42', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(await versions()).toEqual({ [TPL]: 3, fleet_a: 3, fleet_b: 3 });
    expect(await ledger('fleet_b')).toEqual([1, 2, 3]);
    expect(await admin(`SELECT commstat, outcome FROM admmgt.script_log WHERE operation = 'mark-applied'`))
      .toEqual([{ commstat: 'marked applied by hand: made by hand in ticket 42', outcome: 'marked applied' }]);
    expect(await admin('SELECT count(*)::int AS n FROM admmgt.failures')).toEqual([{ n: 0 }]);
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 3')).toEqual([{ status: 2 }]);
    const e = await adminError(`CALL admmgt.mark_script_applied('fleet_a', 5)`);
    expect([e.code, e.message]).toEqual(['22023', 'admmgt: fleet_a is at version 3: the next script it lacks is none, not 5']);
  });
});

describe('choosing the targets of maintenance, retention and refresh', () => {
  beforeAll(async () => {
    await fresh(['fleet_a', 'fleet_b']);
    await env.addScript({
      id: 1, description: 'events',
      tables: [{ schema: S, name: 'events', lifecycle: { at: 'current_date-400' },
        columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'at', type: 'date', nullable: false }],
        partitions: [{ column: 'at', type: 'range', value: 'month' }] }],
    });
    await admin('CALL admmgt.applyScripts()');
  });

  const partitionNames = async (db: string) => (await env.partitions(db, `${S}.events`)).map((p) => p.name);

  it('maintains only the chosen targets', async () => {
    const before = { tpl: await partitionNames(TPL), b: await partitionNames('fleet_b') };
    const r = await cli('maintain', '--url', env.adminUrl, '--days', '150', '--tenant', 'fleet_a');
    expect(r.code).toBe(0);
    expect((await partitionNames('fleet_a')).length).toBeGreaterThan(before.b.length);
    expect(await partitionNames(TPL)).toEqual(before.tpl);
    expect(await partitionNames('fleet_b')).toEqual(before.b);
    const e = await adminError(`CALL admmgt.applyMaintenance(t_numdays => 10, p_tenants => ARRAY['nobody'])`);
    expect(e.code).toBe('42704');
  });

  it('refreshes the routines of the chosen tenants only', async () => {
    await env.queryIn(TPL, `CREATE FUNCTION ${S}.answer() RETURNS int LANGUAGE sql AS 'SELECT 42'`);
    expect((await cli('refresh-procs', '--url', env.adminUrl, '--tenant', 'fleet_b')).code).toBe(0);
    const has = async (db: string) => (await env.queryIn<{ ok: boolean }>(db, `SELECT to_regproc('${S}.answer') IS NOT NULL AS ok`))[0]!.ok;
    expect([await has('fleet_a'), await has('fleet_b')]).toEqual([false, true]);
  });

  it('applies retention to the chosen tenants only', async () => {
    // A partition far in the past in both tenants; retention drops it only where chosen.
    for (const db of ['fleet_a', 'fleet_b']) {
      await env.queryIn(db, `CREATE TABLE ${S}.events_p20000101 PARTITION OF ${S}.events FOR VALUES FROM ('2000-01-01') TO ('2000-02-01')`);
    }
    expect((await cli('lifecycle', '--url', env.adminUrl, '--tenant', 'fleet_a')).code).toBe(0);
    expect((await partitionNames('fleet_a')).includes('events_p20000101')).toBe(false);
    expect((await partitionNames('fleet_b')).includes('events_p20000101')).toBe(true);
  });
});
