// The CLI on a fleet of both kinds: a database template with a database tenant, and the schema
// template mgttest with a schema tenant in the admin database (scripts naming mgttest reach both).
// create-schemas, --kind database|schema (t_separatedb), refresh-views, --since-script (t_scriptid)
// and the kind in status.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const DB_TPL = 'clikind_tpl';
const DB_TENANT = 'clikind_db1';
const SCHEMA_TENANT = 'clikind_s1';

beforeAll(async () => {
  env = await createEnv('clikind');
  await env.makeTemplate(DB_TPL);
  await env.makeTenants([DB_TENANT]);
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, kind) VALUES ('mgttest', true, 1, 'schema');
                         INSERT INTO admmgt.vendor_db_settings (dbname, status, kind) VALUES ('${SCHEMA_TENANT}', 1, 'schema')`);
});
afterAll(async () => {
  await env.close();
});

const hasRel = async (db: string, name: string) =>
  (await env.queryIn<{ ok: boolean }>(db, 'SELECT to_regclass($1) IS NOT NULL AS ok', [name]))[0]!.ok;
const hasRoutine = async (db: string, name: string) =>
  (await env.queryIn<{ ok: boolean }>(db, 'SELECT to_regproc($1) IS NOT NULL AS ok', [name]))[0]!.ok;
const runCount = async () => (await env.rows<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n;

describe('admmgt CLI with database and schema targets', () => {
  it('create-schemas creates the pending schema targets in the admin database, with a JSON summary', async () => {
    const r = await cli('create-schemas', '--url', env.adminUrl, '--json');
    expect(r.code).toBe(0);
    // The ledger of the admin database's schemas, the template schema, then its tenant.
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'create', targets: 3, failed: 0 });
    expect(r.stderr).toMatch(/admmgt create: mgttest done .*\nadmmgt create: clikind_s1 done /);
    expect(await env.rows(`SELECT nspname FROM pg_namespace WHERE nspname IN ('mgttest', $1) ORDER BY 1`, [SCHEMA_TENANT]))
      .toEqual([{ nspname: SCHEMA_TENANT }, { nspname: 'mgttest' }]);
    expect(await env.rows(`SELECT lower(dbname) AS name, kind, status FROM admmgt.registry ORDER BY id`)).toEqual([
      { name: DB_TPL, kind: 'database', status: 2 },
      { name: DB_TENANT, kind: 'database', status: 2 },
      { name: 'mgttest', kind: 'schema', status: 2 },
      { name: SCHEMA_TENANT, kind: 'schema', status: 2 },
    ]);
    // No database of that name was made.
    expect(await env.rows(`SELECT datname FROM pg_database WHERE datname = $1`, [SCHEMA_TENANT])).toEqual([]);
  });

  it('status shows each target\'s kind and both templates', async () => {
    const r = await cli('status', '--url', env.adminUrl, '--json');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.template).toEqual({ dbname: DB_TPL, scriptversion: 0 });
    expect(s.templates).toEqual([
      { dbname: DB_TPL, scriptversion: 0, kind: 'database' },
      { dbname: 'mgttest', scriptversion: 0, kind: 'schema' },
    ]);
    expect(s.tenants.map((t: { dbname: string; kind: string }) => [t.dbname, t.kind])).toEqual([[DB_TENANT, 'database'], [SCHEMA_TENANT, 'schema']]);
    const text = await cli('status', '--url', env.adminUrl);
    expect(text.stdout).toContain(`template: ${DB_TPL} (database) at version 0\ntemplate: mgttest (schema) at version 0\n`);
    expect(text.stdout).toMatch(new RegExp(`  ${SCHEMA_TENANT} +schema +local +created`));
    expect(text.stdout).toMatch(new RegExp(`  ${DB_TENANT} +database +local +created`));
  });

  it.each([['apply'], ['maintain'], ['refresh-procs'], ['refresh-views']])('%s --kind bogus is a usage error (exit code 2) before anything is called', async (cmd) => {
    const before = await runCount();
    const r = await cli(cmd, '--url', env.adminUrl, '--kind', 'bogus');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERROR: Invalid values:\n\s*Argument: kind, Given: "bogus", Choices: "database", "schema"/);
    expect(await runCount()).toBe(before);
  });

  it('--kind schema reaches only the schema targets, --kind database only the databases', async () => {
    await env.addScript({
      id: 1, description: 'both kinds',
      tables: [{ schema: 'mgttest', name: 'events', columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'at', type: 'date', nullable: false }], partitions: [{ column: 'at', type: 'range', value: 'month' }] }],
    });
    let r = await cli('apply', '--url', env.adminUrl, '--kind', 'schema', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'apply', targets: 2, failed: 0 });
    expect(await hasRel(env.adminDb, `${SCHEMA_TENANT}.events`)).toBe(true);
    expect(await hasRel(DB_TPL, 'mgttest.events')).toBe(false);
    expect(await hasRel(DB_TENANT, 'mgttest.events')).toBe(false);
    expect(await env.versions()).toEqual({ [DB_TPL]: null, [DB_TENANT]: 0, mgttest: 1, [SCHEMA_TENANT]: 1 });

    r = await cli('maintain', '--url', env.adminUrl, '--kind', 'schema', '--days', '31', '--as-of', '2030-01-15', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'maintain', targets: 2, failed: 0 });
    expect((await env.partitions(env.adminDb, `${SCHEMA_TENANT}.events`)).map((p) => p.name).filter((n) => n.startsWith('events_p2030')))
      .toEqual(['events_p20300101', 'events_p20300201']);

    r = await cli('apply', '--url', env.adminUrl, '--kind', 'database');
    expect(r.code).toBe(0);
    expect(await hasRel(DB_TENANT, 'mgttest.events')).toBe(true);
    expect(await env.versions()).toEqual({ [DB_TPL]: 1, [DB_TENANT]: 1, mgttest: 1, [SCHEMA_TENANT]: 1 });
    // Maintenance of the schema targets did not reach the databases.
    expect((await env.partitions(DB_TENANT, 'mgttest.events')).map((p) => p.name).filter((n) => n.startsWith('events_p2030'))).toEqual([]);
  });

  it('refresh-procs and refresh-views --kind schema copy the template schema\'s routines and views to the schema tenants only', async () => {
    await env.admin.query(`CREATE FUNCTION mgttest.answer() RETURNS int LANGUAGE sql AS 'SELECT 42';
                           CREATE VIEW mgttest.recent AS SELECT id FROM mgttest.events`);
    await env.queryIn(DB_TPL, `CREATE FUNCTION mgttest.answer() RETURNS int LANGUAGE sql AS 'SELECT 7'`);
    let r = await cli('refresh-procs', '--url', env.adminUrl, '--kind', 'schema', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'refresh', targets: 1, failed: 0 });
    expect(await env.rows(`SELECT ${SCHEMA_TENANT}.answer() AS a`)).toEqual([{ a: 42 }]);
    expect(await hasRoutine(DB_TENANT, 'mgttest.answer')).toBe(false);

    await env.admin.query(`DROP VIEW IF EXISTS ${SCHEMA_TENANT}.recent`);
    r = await cli('refresh-views', '--url', env.adminUrl, '--kind', 'schema', '--since-script', '1', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'refresh', targets: 1, failed: 0 });
    expect(await hasRel(env.adminDb, `${SCHEMA_TENANT}.recent`)).toBe(true);

    // --since-script N: only the targets at version N or above; the others are left as they are.
    await env.admin.query(`DROP FUNCTION ${SCHEMA_TENANT}.answer()`);
    r = await cli('refresh-procs', '--url', env.adminUrl, '--kind', 'schema', '--since-script', '2');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/admmgt refresh: 1 target\(s\) below version 2 \(t_scriptid\) are left as they are/);
    expect(await hasRoutine(env.adminDb, `${SCHEMA_TENANT}.answer`)).toBe(false);

    // Without --kind: every kind, as before. The schema tenant's routine was dropped by hand, which
    // its upkeep record cannot know: without --verify the refresh leaves it out.
    r = await cli('refresh-procs', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/admmgt refresh: 1 target\(s\) already hold the template's routines as they are now/);
    expect(await hasRoutine(env.adminDb, `${SCHEMA_TENANT}.answer`)).toBe(false);
    r = await cli('refresh-procs', '--url', env.adminUrl, '--verify');
    expect(r.code).toBe(0);
    expect(await env.rows(`SELECT ${SCHEMA_TENANT}.answer() AS a`)).toEqual([{ a: 42 }]);
    expect(await env.queryIn(DB_TENANT, 'SELECT mgttest.answer() AS a')).toEqual([{ a: 7 }]);
  });

  it('refuses a --since-script that is not an integer with exit code 2', async () => {
    const r = await cli('refresh-views', '--url', env.adminUrl, '--since-script', 'x');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--since-script must be an integer from 0 to \d+, not x/);
  });
});
