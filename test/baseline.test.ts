// Baseline: a database made outside admmgt, with the app's objects, joins the fleet at a version.
// The hand-made databases here are copies of the template without its ledger, as a restore of a
// pre-admmgt backup would be. Every database of this file starts with base_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { script1, script2 } from '../templates/demo.js';
import { baseline } from '../src/commands/baseline.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'base_tpl';

/** A database with the template's objects and data but no ledger: what a DBA had before admmgt. */
async function handMade(name: string): Promise<void> {
  await env.admin.query(`CREATE DATABASE ${name} TEMPLATE ${TPL}`);
  await env.queryIn(name, 'DROP SCHEMA admmgt CASCADE');
  await env.queryIn(name, 'GRANT CONNECT ON DATABASE ' + name + ' TO PUBLIC');
}

beforeAll(async () => {
  env = await createEnv('base');
  await env.makeTemplate(TPL);
  await env.addScript(script1);
  await env.addScript(script2);
  await env.admin.query('CALL admmgt.applyScripts()');
});
afterAll(async () => {
  await env.close();
});

describe('baseline', () => {
  it('registers a database that matches the template at the version, gives it its ledger and takes CONNECT from PUBLIC; applyScripts() then brings it further', async () => {
    await handMade('base_same');
    await env.admin.query(`CALL admmgt.baseline('base_same', 2)`);
    expect(await env.rows(`SELECT r.kind, r.status, r.scriptversion AS v, v.baseversion AS b FROM admmgt.registry r JOIN admmgt.vendor_db_settings v USING (id) WHERE v.dbname = 'base_same'`))
      .toEqual([{ kind: 'database', status: 2, v: 2, b: 2 }]);
    expect(await env.queryIn('base_same', 'SELECT array_agg(scriptid ORDER BY scriptid) AS s FROM admmgt.applied_scripts')).toEqual([{ s: [1, 2] }]);
    expect(await env.rows(`SELECT has_database_privilege('public', 'base_same', 'CONNECT') AS c`)).toEqual([{ c: false }]);
    expect(await env.rows(`SELECT commstat FROM admmgt.script_log WHERE operation = 'baseline' AND dbname = 'base_same'`))
      .toEqual([{ commstat: 'baselined at version 2' }]);

    await env.addScript({ id: 3, description: 'one more', addColumns: [{ schema: 'mgttest', table: 'parenttable', column: { name: 'later', type: 'int' } }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.queryIn('base_same', `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'mgttest.parenttable'::regclass AND attname = 'later'`))
      .toEqual([{ n: 1 }]);
    expect(await env.rows(`SELECT scriptversion AS v FROM admmgt.vendor_db_settings WHERE dbname = 'base_same'`)).toEqual([{ v: 3 }]);
  });

  it('refuses a database that differs, listing what differs, and changes nothing; p_force takes it as it is', async () => {
    await handMade('base_diff');
    await env.queryIn('base_diff', 'ALTER TABLE mgttest.parenttable DROP COLUMN newcolumn; CREATE TABLE mgttest.own (id int)');
    const err = await env.errorOf(`CALL admmgt.baseline('base_diff', 3)`);
    expect([err.code, err.message]).toEqual(['55000', 'admmgt: database base_diff differs from the template at version 3 in 2 object(s)']);
    expect(err.detail).toBe('missing column mgttest.parenttable.newcolumn\nextra table mgttest.own');
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.vendor_db_settings WHERE dbname = 'base_diff'`)).toEqual([{ n: 0 }]);
    expect(await env.queryIn('base_diff', `SELECT to_regclass('admmgt.applied_scripts') AS t`)).toEqual([{ t: null }]);

    await baseline(env.admin, 'base_diff', 3, { force: true });
    expect(await env.rows(`SELECT scriptversion AS v FROM admmgt.vendor_db_settings WHERE dbname = 'base_diff'`)).toEqual([{ v: 3 }]);
    expect(await env.rows(`SELECT commstat FROM admmgt.script_log WHERE operation = 'baseline' AND dbname = 'base_diff'`))
      .toEqual([{ commstat: 'baselined at version 3 (p_force: not compared)' }]);
  });

  it('refuses a registered name, a version the template never had, a database that is not there and a copy that has a ledger', async () => {
    const cases: [string, string, RegExp][] = [
      [`CALL admmgt.baseline('base_same', 3)`, '42710', /^admmgt: base_same is registered already$/],
      [`CALL admmgt.baseline('base_none', 9)`, '22023', /^admmgt: baseline at version 9 is not possible: the template is at version 3$/],
      [`CALL admmgt.baseline('base_none', 1)`, '3D000', /^admmgt: database base_none is not on server local$/],
      [`CALL admmgt.baseline('${TPL}', 1)`, '42710', /registered already/],
    ];
    for (const [call, code, message] of cases) {
      const err = await env.errorOf(call);
      expect([err.code, err.message]).toEqual([code, expect.stringMatching(message)]);
    }
    await env.admin.query(`CREATE DATABASE base_copy TEMPLATE ${TPL}`);
    const err = await env.errorOf(`CALL admmgt.baseline('base_copy', 3)`);
    expect([err.code, err.message]).toEqual(['55000', 'admmgt: database base_copy has a ledger already (ledger:3)']);
    expect(err.hint).toMatch(/create_database\(\) adopts it/);
  });
});
