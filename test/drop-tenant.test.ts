// Offboarding (CALL admmgt.drop_tenant, admmgt drop-tenant): the plan it prints by default, the
// rows it refuses, a database tenant archived (its open session ended) or dropped, a schema tenant
// archived or dropped with its ledger rows, and a new tenant of an archived one's name.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;

/** The archive name a tenant gets today. */
async function archiveOf(name: string): Promise<string> {
  const [r] = await env.rows<{ a: string }>(`SELECT admmgt._archive_name($1, current_date) AS a`, [name]);
  return r!.a;
}

async function registry() {
  return env.rows(`SELECT id::int, lower(dbname) AS name, status, coalesce(deleted, false) AS deleted, deletedon IS NOT NULL AS gone_on
                     FROM admmgt.vendor_db_settings ORDER BY id`);
}

async function dropLog(name: string) {
  return (await env.rows<{ commstat: string; outcome: string }>(
    `SELECT commstat, outcome FROM admmgt.script_log WHERE operation = 'drop' AND dbname = $1 ORDER BY id`, [name]));
}

async function schemas(): Promise<string[]> {
  return (await env.rows<{ n: string }>(`SELECT nspname AS n FROM pg_namespace WHERE nspname LIKE 'offb\\_%' ORDER BY 1`)).map((r) => r.n);
}

async function ledger() {
  return env.rows(`SELECT s.schemaname::text AS schema, s.scriptid,
                          (SELECT count(*)::int FROM admmgt.applied_schema_parts p WHERE p.schemaname = s.schemaname AND p.scriptid = s.scriptid) AS parts
                     FROM admmgt.applied_schema_scripts s ORDER BY 1, 2`);
}

beforeAll(async () => {
  env = await createEnv('offb');
  await env.makeTemplate('offb_tpl');
  await env.makeTenants(['offb_a', 'offb_b', 'offb_c', 'offb_d']);
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, kind) VALUES ('offb_stpl', true, 1, 'schema')`);
  await env.admin.query('DROP ROLE IF EXISTS offb_login');
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, kind, loginrole) VALUES ('offb_sa', 1, 'schema', 'offb_login'), ('offb_sb', 1, 'schema', NULL)`);
  await env.admin.query('CALL admmgt.create_schema()');
  // Ledger rows of the schema targets, as applyScripts() leaves them.
  await env.admin.query(`INSERT INTO admmgt.applied_schema_scripts (schemaname, scriptid)
                         SELECT s, i FROM unnest(ARRAY['offb_stpl', 'offb_sa', 'offb_sb']) s, generate_series(1, 2) i`);
  await env.admin.query(`INSERT INTO admmgt.applied_schema_parts (schemaname, scriptid, part, finished_at)
                         SELECT s, 2, 1, now() FROM unnest(ARRAY['offb_stpl', 'offb_sa', 'offb_sb']) s`);
});
afterAll(async () => {
  await env?.admin.query('DROP OWNED BY offb_login; DROP ROLE IF EXISTS offb_login').catch(() => {});
  await env?.close();
});

describe('drop_tenant', () => {
  it('without a confirmation, or with p_plan, only says what it would do and changes nothing', async () => {
    const before = { registry: await registry(), databases: await env.databases(), schemas: await schemas(), ledger: await ledger() };
    const [{ id }] = await env.rows<{ id: number }>(`SELECT id::int FROM admmgt.vendor_db_settings WHERE dbname = 'offb_a'`) as [{ id: number }];
    const archive = await archiveOf('offb_a');
    env.notices.length = 0;
    await env.admin.query(`CALL admmgt.drop_tenant('offb_a')`);
    expect(env.notices).toEqual([
      'NOTICE: admmgt drop: plan for tenant offb_a (database on server local)',
      'NOTICE: admmgt drop: would end 0 session(s) connected to database offb_a on server local',
      `NOTICE: admmgt drop: would rename database offb_a to ${archive}`,
      `NOTICE: admmgt drop: would mark registry row id ${id} (offb_a) deleted`,
      `NOTICE: admmgt drop: nothing was changed; to do it, retype the name: CALL admmgt.drop_tenant('offb_a', p_confirm => 'offb_a')`,
    ]);
    env.notices.length = 0;
    await env.admin.query(`CALL admmgt.drop_tenant('offb_sa', p_confirm => 'offb_sa', p_plan => true, p_archive => false)`);
    expect(env.notices).toEqual([
      `NOTICE: admmgt drop: plan for tenant offb_sa (schema of database ${env.adminDb} on server local)`,
      `NOTICE: admmgt drop: would end no session: schema offb_sa shares database ${env.adminDb} with other targets (its statements wait up to admmgt.lock_timeout for their locks)`,
      `NOTICE: admmgt drop: would drop schema offb_sa of database ${env.adminDb} (DROP SCHEMA ... CASCADE), and delete its rows in that database's ledger`,
      expect.stringMatching(/^NOTICE: admmgt drop: would mark registry row id \d+ \(offb_sa\) deleted$/),
      'NOTICE: admmgt drop: nothing was changed (plan)',
    ]);
    expect({ registry: await registry(), databases: await env.databases(), schemas: await schemas(), ledger: await ledger() }).toEqual(before);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'drop'`)).toEqual([{ n: 0 }]);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE operation = 'drop'`)).toEqual([{ n: 0 }]);
  });

  it('refuses the template, the schema template, a pending, an unknown name and a wrong confirmation, changing nothing', async () => {
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('offb_pending', 1)`);
    const before = { registry: await registry(), databases: await env.databases() };
    let e = await env.errorOf(`CALL admmgt.drop_tenant('offb_tpl', p_confirm => 'offb_tpl')`);
    expect([e.code, e.message]).toEqual(['42939', 'admmgt: drop_tenant offb_tpl: it is the template']);
    expect(e.hint).toMatch(/never drops a template/);
    e = await env.errorOf(`CALL admmgt.drop_tenant('offb_stpl', p_confirm => 'offb_stpl')`);
    expect([e.code, e.message]).toEqual(['42939', 'admmgt: drop_tenant offb_stpl: it is the template']);
    e = await env.errorOf(`CALL admmgt.drop_tenant('offb_pending', p_confirm => 'offb_pending')`);
    expect([e.code, e.message]).toEqual(['55000', 'admmgt: drop_tenant offb_pending: it is not created (status 1)']);
    expect(e.hint).toMatch(/^A pending row has nothing to drop: DELETE FROM admmgt\.vendor_db_settings WHERE id = \d+;$/);
    e = await env.errorOf(`CALL admmgt.drop_tenant('offb_nope', p_confirm => 'offb_nope')`);
    expect([e.code, e.message]).toEqual(['42704', 'admmgt: drop_tenant offb_nope: no such tenant']);
    e = await env.errorOf(`CALL admmgt.drop_tenant('offb_c', p_confirm => 'offb_d')`);
    expect([e.code, e.message]).toEqual(['22023', `admmgt: drop_tenant offb_c: the confirmation 'offb_d' is not its name; nothing was changed`]);
    expect(e.hint).toBe(`Retype the tenant's name: CALL admmgt.drop_tenant('offb_c', p_confirm => 'offb_c');`);
    expect({ registry: await registry(), databases: await env.databases() }).toEqual(before);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'drop'`)).toEqual([{ n: 0 }]);
    await env.admin.query(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'offb_pending'`);
  });

  it('refuses an archive name that is taken, and waits for a running create or apply (their lock)', async () => {
    const archive = await archiveOf('offb_c');
    await env.admin.query(`CREATE DATABASE ${archive}`);
    try {
      const e = await env.errorOf(`CALL admmgt.drop_tenant('offb_c', p_confirm => 'offb_c')`);
      expect([e.code, e.message]).toEqual(['42P04', `admmgt: drop_tenant offb_c: its archive name ${archive} is a database of server local already`]);
    } finally {
      await env.admin.query(`DROP DATABASE ${archive}`);
    }
    const other = new pg.Client({ connectionString: env.adminUrl });
    await other.connect();
    try {
      await other.query(`SELECT pg_advisory_lock(admmgt._lock_class(), admmgt._lock_key('create'))`);
      const e = await env.errorOf(`CALL admmgt.drop_tenant('offb_c', p_confirm => 'offb_c')`);
      expect(e.code).toBe('55P03');
      expect(e.message).toMatch(/^admmgt\.drop_tenant /);
    } finally {
      await other.end();
    }
    expect(await env.databases()).toContain('offb_c');
    expect(await env.rows(`SELECT deleted FROM admmgt.vendor_db_settings WHERE dbname = 'offb_c'`)).toEqual([{ deleted: false }]);
  });

  it('archives a database tenant: its open session ended, the database renamed, the row deleted, every step logged', async () => {
    const archive = await archiveOf('offb_a');
    const session = new pg.Client({ connectionString: env.urlFor('offb_a') });
    const lost: Error[] = [];
    session.on('error', (e) => lost.push(e));
    await session.connect();
    await session.query('CREATE TABLE mgttest.keep (id int); INSERT INTO mgttest.keep VALUES (7)');
    const [{ id }] = await env.rows<{ id: number }>(`SELECT id::int FROM admmgt.vendor_db_settings WHERE dbname = 'offb_a'`) as [{ id: number }];

    await env.admin.query(`CALL admmgt.drop_tenant('offb_a', p_confirm => 'offb_a')`);

    await expect(session.query('SELECT 1')).rejects.toThrow();
    await session.end().catch(() => {});
    expect(lost.length).toBeGreaterThan(0);
    const dbs = await env.databases();
    expect(dbs).toContain(archive);
    expect(dbs).not.toContain('offb_a');
    expect(await env.rows(`SELECT deleted, deletedon IS NOT NULL AS on FROM admmgt.vendor_db_settings WHERE id = $1`, [id]))
      .toEqual([{ deleted: true, on: true }]);
    expect(await dropLog('offb_a')).toEqual([
      { commstat: 'ended 1 session(s) connected to database offb_a', outcome: 'ok' },
      { commstat: `ALTER DATABASE offb_a RENAME TO ${archive}`, outcome: 'ok' },
      { commstat: `registry row id ${id} marked deleted; archive: database ${archive} on server local`, outcome: 'ok' },
    ]);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'drop' AND finished_at IS NOT NULL`)).toEqual([{ n: 1 }]);
    // The archive keeps the tenant's data.
    expect(await env.queryIn(archive, `SELECT id FROM mgttest.keep`)).toEqual([{ id: 7 }]);
    // Gone from every operation's targets; a second drop is refused.
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.targets WHERE dbname = 'offb_a'`)).toEqual([{ n: 0 }]);
    const e = await env.errorOf(`CALL admmgt.drop_tenant('offb_a', p_confirm => 'offb_a')`);
    expect([e.code, e.message]).toEqual(['42704', expect.stringMatching(/^admmgt: drop_tenant offb_a: it is deleted already \(on .+\)$/)]);
  });

  it('drops a database tenant with p_archive => false', async () => {
    await env.admin.query(`CALL admmgt.drop_tenant('offb_b', p_confirm => 'offb_b', p_archive => false)`);
    const dbs = await env.databases();
    expect(dbs.filter((d) => d.startsWith('offb_b'))).toEqual([]);
    const [{ id }] = await env.rows<{ id: number }>(`SELECT id::int FROM admmgt.vendor_db_settings WHERE dbname = 'offb_b' AND deleted`) as [{ id: number }];
    expect(await dropLog('offb_b')).toEqual([
      { commstat: 'ended 0 session(s) connected to database offb_b', outcome: 'ok' },
      { commstat: 'DROP DATABASE offb_b WITH (FORCE)', outcome: 'ok' },
      { commstat: `registry row id ${id} marked deleted; database offb_b dropped`, outcome: 'ok' },
    ]);
  });

  it('archives one schema tenant and drops another, with their rows in the ledger of their database', async () => {
    const archive = await archiveOf('offb_sa');
    await env.admin.query(`CREATE TABLE offb_sa.keep (id int)`);
    await env.admin.query(`INSERT INTO offb_sa.keep VALUES (7)`);
    expect(await env.rows(`SELECT has_schema_privilege('offb_login', 'offb_sa', 'USAGE') AS u`)).toEqual([{ u: true }]);
    await env.admin.query(`CALL admmgt.drop_tenant('offb_sa', p_confirm => 'offb_sa')`);
    // The archive is no longer the tenant's: its login role lost its grants on it.
    expect(await env.rows(`SELECT has_schema_privilege('offb_login', '${archive}', 'USAGE') AS u`)).toEqual([{ u: false }]);
    await env.admin.query(`CALL admmgt.drop_tenant('offb_sb', p_confirm => 'OFFB_SB', p_archive => false)`);
    expect(await schemas()).toEqual([archive, 'offb_stpl']);
    expect(await env.rows(`SELECT id FROM ${archive}.keep`)).toEqual([{ id: 7 }]);
    expect(await ledger()).toEqual([
      { schema: archive, scriptid: 1, parts: 0 }, { schema: archive, scriptid: 2, parts: 1 },
      { schema: 'offb_stpl', scriptid: 1, parts: 0 }, { schema: 'offb_stpl', scriptid: 2, parts: 1 },
    ]);
    expect(await env.rows(`SELECT lower(dbname) AS name, deleted FROM admmgt.vendor_db_settings WHERE kind = 'schema' ORDER BY id`)).toEqual([
      { name: 'offb_stpl', deleted: false }, { name: 'offb_sa', deleted: true }, { name: 'offb_sb', deleted: true },
    ]);
    const ids = await env.rows<{ id: number }>(`SELECT id::int FROM admmgt.vendor_db_settings WHERE dbname IN ('offb_sa', 'offb_sb') ORDER BY id`);
    expect(await dropLog('offb_sa')).toEqual([
      { commstat: `ALTER SCHEMA offb_sa RENAME TO ${archive}`, outcome: 'ok' },
      { commstat: `UPDATE admmgt.applied_schema_scripts SET schemaname = '${archive}' WHERE schemaname = 'offb_sa'`, outcome: 'ok' },
      { commstat: `UPDATE admmgt.applied_schema_parts SET schemaname = '${archive}' WHERE schemaname = 'offb_sa'`, outcome: 'ok' },
      { commstat: `REVOKE ALL ON SCHEMA ${archive} FROM offb_login`, outcome: 'ok' },
      { commstat: `registry row id ${ids[0]!.id} marked deleted; archive: schema ${archive} in database ${env.adminDb} on server local`, outcome: 'ok' },
    ]);
    expect(await dropLog('offb_sb')).toEqual([
      { commstat: 'DROP SCHEMA offb_sb CASCADE', outcome: 'ok' },
      { commstat: `DELETE FROM admmgt.applied_schema_scripts WHERE schemaname = 'offb_sb'`, outcome: 'ok' },
      { commstat: `DELETE FROM admmgt.applied_schema_parts WHERE schemaname = 'offb_sb'`, outcome: 'ok' },
      { commstat: `registry row id ${ids[1]!.id} marked deleted; schema offb_sb dropped`, outcome: 'ok' },
    ]);
  });

  it('lets a new tenant take an archived one\'s name: the old database has another name', async () => {
    const archive = await archiveOf('offb_a');
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('offb_a', 1)`);
    // Made from the database template, not from the schema template this file has too.
    await env.admin.query('CALL admmgt.create_database()');
    expect(await env.rows(`SELECT status, coalesce(deleted, false) AS deleted FROM admmgt.vendor_db_settings WHERE dbname = 'offb_a' ORDER BY id`))
      .toEqual([{ status: 2, deleted: true }, { status: 2, deleted: false }]);
    expect(await env.databases()).toEqual(expect.arrayContaining(['offb_a', archive]));
    // The new tenant is the one drop_tenant would work on now; archived the same day, its archive
    // name would be the first one's, so only a drop is possible today.
    const e = await env.errorOf(`CALL admmgt.drop_tenant('offb_a')`);
    expect([e.code, e.message]).toEqual(['42P04', `admmgt: drop_tenant offb_a: its archive name ${archive} is a database of server local already`]);
    env.notices.length = 0;
    await env.admin.query(`CALL admmgt.drop_tenant('offb_a', p_archive => false)`);
    const [{ id }] = await env.rows<{ id: number }>(`SELECT id::int FROM admmgt.vendor_db_settings WHERE dbname = 'offb_a' AND NOT deleted`) as [{ id: number }];
    expect(env.notices).toContain(`NOTICE: admmgt drop: would mark registry row id ${id} (offb_a) deleted`);
  });
});

describe('admmgt drop-tenant', () => {
  it('prints the plan and exits 0 without --yes, refuses a wrong --yes, and drops with --yes NAME --drop', async () => {
    let r = await cli('drop-tenant', 'offb_c', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`admmgt drop: would rename database offb_c to ${await archiveOf('offb_c')}`);
    expect(r.stderr).toMatch(/plan only, nothing was changed: rerun with --yes offb_c to do it\n$/);
    expect(await env.databases()).toContain('offb_c');

    r = await cli('drop-tenant', 'offb_c', '--yes', 'offb_d', '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the confirmation 'offb_d' is not its name; nothing was changed/);
    expect(await env.databases()).toContain('offb_c');

    r = await cli('drop-tenant', 'offb_c', '--yes', 'offb_c', '--drop', '--plan', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('admmgt drop: would drop database offb_c (DROP DATABASE ... WITH (FORCE))');
    expect(await env.databases()).toContain('offb_c');

    r = await cli('drop-tenant', 'offb_c', '--yes', 'offb_c', '--drop', '--json', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'drop', targets: 1, failed: 0 });
    expect(r.stderr).toContain('admmgt drop: tenant offb_c is dropped');
    expect(await env.databases()).not.toContain('offb_c');
    expect(await env.rows(`SELECT deleted FROM admmgt.vendor_db_settings WHERE dbname = 'offb_c'`)).toEqual([{ deleted: true }]);
  });
});
