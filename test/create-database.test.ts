// CALL admmgt.create_database() against a real cluster: which tenants become databases, what they
// hold, how the registry moves, and what is refused before anything is created.
// Every database of this file starts with createdb_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'createdb_tpl';

const admin = <T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) => env.rows<T>(text, values);

const adminError = (text: string) => env.errorOf(text);

/** Every database of the cluster (not only this file's): a refused name must not appear anywhere. */
async function allDatabases(): Promise<string[]> {
  return (await admin<{ datname: string }>('SELECT datname FROM pg_database ORDER BY datname')).map((r) => r.datname);
}

async function register(dbname: string, extra: { status?: number; deleted?: boolean } = {}): Promise<number> {
  const [row] = await admin<{ id: string }>(
    `INSERT INTO admmgt.vendor_db_settings (dbname, status, deleted) VALUES ($1, $2, $3) RETURNING id::text`,
    [dbname, extra.status ?? 1, extra.deleted ?? false]);
  return Number(row!.id);
}

async function tenant(dbname: string): Promise<{ status: number; scriptversion: number | null } | undefined> {
  return (await admin<{ status: number; scriptversion: number | null }>(
    `SELECT status, scriptversion FROM admmgt.vendor_db_settings WHERE dbname = $1`, [dbname]))[0];
}

async function runCount(op = 'create'): Promise<number> {
  return (await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = $1', [op]))[0]!.n;
}

/** What a copy of the template must hold: its table with its row, its procedure, its ledger. */
async function templateContent(db: string) {
  return {
    tables: (await env.queryIn<{ t: string }>(db,
      `SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'mgttest' AND c.relkind IN ('r', 'p') ORDER BY 1`)).map((r) => r.t),
    marker: (await env.queryIn<{ note: string }>(db, 'SELECT note FROM mgttest.base ORDER BY id')).map((r) => r.note),
    procs: (await env.queryIn<{ p: string }>(db,
      `SELECT p.proname AS p FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'mgttest'`)).map((r) => r.p),
    ledger: (await env.queryIn<{ scriptid: number }>(db, 'SELECT scriptid FROM admmgt.applied_scripts ORDER BY 1')).map((r) => r.scriptid),
  };
}

const EXPECTED_CONTENT = { tables: ['base', 'from_script'], marker: ['made in the template'], procs: ['hello'], ledger: [1] };

beforeAll(async () => {
  env = await createEnv('createdb');
});
afterAll(async () => {
  await env?.close();
});

describe('create_database without a usable template', () => {
  it('refuses when no template is registered (SQLSTATE P0002) and creates nothing', async () => {
    const id = await register('createdb_early');
    const err = await adminError('CALL admmgt.create_database()');
    expect(err.code).toBe('P0002');
    expect(err.message).toMatch(/no template database is registered/);
    expect(err.hint).toMatch(/istemplate/);
    expect(await env.databases()).toEqual([env.adminDb]);
    expect(await runCount()).toBe(0);
    await admin('DELETE FROM admmgt.vendor_db_settings WHERE id = $1', [id]);
  });
});

describe('create_database', () => {
  beforeAll(async () => {
    // The template: a table with a row and a procedure made by hand, and script 1 applied to it,
    // so that it is at version 1 with a ledger.
    await env.makeTemplate(TPL);
    await env.queryIn(TPL, `CREATE TABLE mgttest.base (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
      INSERT INTO mgttest.base (note) VALUES ('made in the template');
      CREATE PROCEDURE mgttest.hello() LANGUAGE sql AS 'SELECT 1'`);
    await env.addScript({ id: 1, description: 'one table', tables: [{ schema: 'mgttest', name: 'from_script', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await tenant(TPL)).toEqual({ status: 2, scriptversion: 1 });
  });

  it('refuses while the template is not created (status <> 2) with SQLSTATE 55000', async () => {
    const id = await register('createdb_waits');
    await admin(`UPDATE admmgt.vendor_db_settings SET status = 1 WHERE istemplate`);
    try {
      const err = await adminError('CALL admmgt.create_database()');
      expect(err.code).toBe('55000');
      expect(err.message).toMatch(/template createdb_tpl has status 1, not 2/);
      expect(await env.databases()).toEqual([env.adminDb, TPL]);
    } finally {
      await admin(`UPDATE admmgt.vendor_db_settings SET status = 2 WHERE istemplate`);
      await admin('DELETE FROM admmgt.vendor_db_settings WHERE id = $1', [id]);
    }
  });

  it('creates every pending tenant as a copy of the template: lower-case name, status 2, the template\'s version', async () => {
    await register('createdb_BigOne');
    await register('createdb_small');
    await register('createdb_designing', { status: 0 });
    await register('createdb_gone', { deleted: true });
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database()');

    expect(await env.databases()).toEqual([env.adminDb, 'createdb_bigone', 'createdb_small', TPL]);
    expect(await allDatabases()).not.toContain('createdb_BigOne');
    expect(await tenant('createdb_BigOne')).toEqual({ status: 2, scriptversion: 1 });
    expect(await tenant('createdb_small')).toEqual({ status: 2, scriptversion: 1 });
    expect(await tenant('createdb_designing')).toEqual({ status: 0, scriptversion: null });
    expect(await tenant('createdb_gone')).toEqual({ status: 1, scriptversion: null });
    for (const db of ['createdb_bigone', 'createdb_small']) {
      expect(await templateContent(db)).toEqual(EXPECTED_CONTENT);
    }
    expect(await admin(`SELECT operation, targets, failed, finished_at IS NOT NULL AS finished FROM admmgt.runs WHERE operation = 'create'`))
      .toEqual([{ operation: 'create', targets: 2, failed: 0, finished: true }]);
    expect(await admin(`SELECT dbname, outcome, commstat FROM admmgt.script_log WHERE operation = 'create' ORDER BY dbname, id`)).toEqual([
      { dbname: 'createdb_bigone', outcome: 'ok', commstat: 'CREATE DATABASE createdb_bigone TEMPLATE createdb_tpl' },
      { dbname: 'createdb_bigone', outcome: 'ok', commstat: 'REVOKE CONNECT, TEMPORARY ON DATABASE createdb_bigone FROM PUBLIC' },
      { dbname: 'createdb_small', outcome: 'ok', commstat: 'CREATE DATABASE createdb_small TEMPLATE createdb_tpl' },
      { dbname: 'createdb_small', outcome: 'ok', commstat: 'REVOKE CONNECT, TEMPORARY ON DATABASE createdb_small FROM PUBLIC' },
    ]);
    // Tenants do not reach each other's databases: PUBLIC may not connect to a new one.
    expect(await admin(`SELECT datname, has_database_privilege('public', datname, 'CONNECT') AS public_connect FROM pg_database
                         WHERE datname IN ('createdb_bigone', 'createdb_small') ORDER BY 1`)).toEqual([
      { datname: 'createdb_bigone', public_connect: false },
      { datname: 'createdb_small', public_connect: false },
    ]);
    expect(env.notices.join('\n')).toMatch(/admmgt create: createdb_\w+ done {2}\(2\/2 done, 0 failed\)/);
  });

  it('leaves new tenants at the template\'s version, so applyScripts has nothing to do', async () => {
    env.notices.length = 0;
    const before = await runCount('apply');
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(env.notices.join('\n')).toMatch(/nothing to do.*at version 1/);
    expect(await runCount('apply')).toBe(before);
  });

  it('says no tenant is pending when none is, and starts no run', async () => {
    env.notices.length = 0;
    const before = await runCount();
    await env.admin.query('CALL admmgt.create_database(p_parallel => 4)');
    expect(env.notices).toContain('NOTICE: admmgt create: no tenant is pending (status 1)');
    expect(await runCount()).toBe(before);
  });

  it('accepts a name of exactly 63 bytes and one with a hyphen, and creates them under those names', async () => {
    const long = 'createdb_' + 'x'.repeat(54);
    expect(Buffer.byteLength(long)).toBe(63);
    await register(long);
    await register('createdb_with-Dash');
    await env.admin.query('CALL admmgt.create_database(p_parallel => 1)');
    const dbs = await env.databases();
    expect(dbs).toContain(long);
    expect(dbs).toContain('createdb_with-dash');
    expect(await templateContent('createdb_with-dash')).toEqual(EXPECTED_CONTENT);
    expect(await tenant(long)).toEqual({ status: 2, scriptversion: 1 });
  });

  describe('refuses the whole call, naming the row, when a pending tenant has a bad name', () => {
    const invalid: [string, string][] = [
      ['a double quote', 'createdb_a"b'],
      ['a semicolon', 'createdb_a;b'],
      ['a space', 'createdb_a b'],
      ['unicode letters', 'createdb_ünï'],
      ['an injection attempt', `x"; DROP DATABASE ${TPL}; --`],
      ['64 bytes', 'createdb_' + 'x'.repeat(55)],
      ['63 characters but more bytes', 'createdb_' + 'é'.repeat(54)],
      ['a leading digit', '1createdb'],
      ['an empty name', ''],
      ['a single quote', "createdb_o'hara"],
    ];
    const reserved: [string, string][] = [
      ['postgres', 'postgres'],
      ['template1', 'Template1'],
      ['template0', 'template0'],
      ['the admin database', 'createdb_admin'],
    ];
    const cases = [
      ...invalid.map(([what, name]) => ({ what, name, code: '42602', message: /invalid database name/ })),
      ...reserved.map(([what, name]) => ({ what, name, code: '42939', message: /names the reserved database/ })),
    ];

    it.each(cases)('$what ($name): SQLSTATE $code, no database created', async ({ name, code, message }) => {
      const good = await register('createdb_innocent');
      const bad = await register(name);
      const before = await env.databases();
      const runsBefore = await runCount();
      try {
        const err = await adminError('CALL admmgt.create_database(p_parallel => 4)');
        expect(err.code).toBe(code);
        expect(err.message).toMatch(message);
        expect(err.message).toContain(`admmgt.vendor_db_settings id ${bad}`);
        expect(err.hint).toBeTruthy();
        expect(await env.databases()).toEqual(before);
        expect(before).not.toContain('createdb_innocent');
        expect(before).toContain(TPL);
        if (code === '42602') {
          // Nothing under the name as written, folded or trimmed, anywhere in the cluster.
          const all = await allDatabases();
          for (const variant of [name, name.toLowerCase(), name.trim().toLowerCase()]) expect(all).not.toContain(variant);
        }
        expect(await tenant('createdb_innocent')).toEqual({ status: 1, scriptversion: null });
        expect(await runCount()).toBe(runsBefore);
        expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
      } finally {
        await admin('DELETE FROM admmgt.vendor_db_settings WHERE id IN ($1, $2)', [good, bad]);
      }
    });

    it('quotes the bad name in the message so it can be found', async () => {
      const bad = await register('createdb_a;b');
      try {
        const err = await adminError('CALL admmgt.create_database()');
        expect(err.message).toBe(`admmgt: invalid database name 'createdb_a;b' in admmgt.vendor_db_settings id ${bad}`);
      } finally {
        await admin('DELETE FROM admmgt.vendor_db_settings WHERE id = $1', [bad]);
      }
    });
  });

  it('fails only the tenant whose existing database holds objects of its own (42P04 in admmgt.failures) and creates the others', async () => {
    await env.admin.query('CREATE DATABASE createdb_exists');
    await env.queryIn('createdb_exists', `CREATE TABLE mine (v text); INSERT INTO mine VALUES ('not the template''s')`);
    await register('createdb_exists');
    await register('createdb_new1');
    await register('createdb_new2');
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database(p_parallel => 4)');

    expect(await tenant('createdb_new1')).toEqual({ status: 2, scriptversion: 1 });
    expect(await tenant('createdb_new2')).toEqual({ status: 2, scriptversion: 1 });
    expect(await templateContent('createdb_new2')).toEqual(EXPECTED_CONTENT);
    expect(await tenant('createdb_exists')).toEqual({ status: 1, scriptversion: null });
    expect(await admin('SELECT operation, scriptid, dbname, sqlstate, message, statement FROM admmgt.failures')).toEqual([{
      operation: 'adopt', scriptid: null, dbname: 'createdb_exists', sqlstate: '42P04',
      message: 'database createdb_exists already exists and holds 1 objects that did not come from the template',
      statement: 'look into the existing database',
    }]);
    expect(env.notices.join('\n')).toMatch(/WARNING: admmgt adopt: createdb_exists failed: database createdb_exists already exists and holds 1 objects/);
    // The existing database is left as it was: not replaced by a copy of the template.
    expect(await env.queryIn('createdb_exists', 'SELECT v FROM mine')).toEqual([{ v: "not the template's" }]);
    expect(await env.queryIn('createdb_exists', `SELECT to_regnamespace('mgttest') AS n`)).toEqual([{ n: null }]);

    // Once the obstacle is gone, the next call creates just that tenant and clears the failure.
    await env.admin.query('DROP DATABASE createdb_exists');
    await env.admin.query(`DELETE FROM admmgt.target_results WHERE operation = 'adopt'`);
    await env.admin.query('CALL admmgt.create_database()');
    expect(await tenant('createdb_exists')).toEqual({ status: 2, scriptversion: 1 });
    expect(await templateContent('createdb_exists')).toEqual(EXPECTED_CONTENT);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await admin(`SELECT targets, failed FROM admmgt.runs WHERE operation = 'create' ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ targets: 1, failed: 0 }]);
  });

  it("never adopts the database of a deleted tenant: the call is refused, naming the row", async () => {
    await register('createdb_gone');
    await env.admin.query('CALL admmgt.create_database()');
    await admin(`UPDATE admmgt.vendor_db_settings SET deleted = true WHERE dbname = 'createdb_gone'`);
    const id = await register('createdb_gone');
    const err = await adminError('CALL admmgt.create_database()');
    expect(err.code).toBe('42P04');
    expect(err.message).toBe(`admmgt: database createdb_gone of admmgt.vendor_db_settings id ${id} still holds a deleted tenant's data`);
    expect(await admin(`SELECT status FROM admmgt.vendor_db_settings WHERE id = $1`, [id])).toEqual([{ status: 1 }]);
    await admin(`DELETE FROM admmgt.vendor_db_settings WHERE id = $1`, [id]);
  });

  it('adopts an existing database that is a template copy (at its ledger version) or empty (at version 0)', async () => {
    // A copy made by a create whose bookkeeping was lost, and an empty database a DBA made beforehand.
    await env.admin.query(`CREATE DATABASE createdb_copy TEMPLATE ${TPL}`);
    await env.admin.query('CREATE DATABASE createdb_empty');
    await register('createdb_copy');
    const empty = await register('createdb_empty');
    // An empty database of that name may be somebody else's: refused until the row says to adopt it.
    await env.admin.query('CALL admmgt.create_database()');
    expect(await tenant('createdb_empty')).toEqual({ status: 1, scriptversion: null });
    expect(await admin(`SELECT sqlstate, message FROM admmgt.failures WHERE dbname = 'createdb_empty'`)).toEqual([
      { sqlstate: '42P04', message: 'database createdb_empty already exists; it is empty, but not a copy of the template' }]);
    await admin(`UPDATE admmgt.vendor_db_settings SET adopt_empty = true WHERE id = $1`, [empty]);
    await env.admin.query('CALL admmgt.create_database()');
    expect(await tenant('createdb_copy')).toEqual({ status: 2, scriptversion: 1 });
    expect(await tenant('createdb_empty')).toEqual({ status: 2, scriptversion: 0 });
    expect(await admin(`SELECT dbname, commstat FROM admmgt.script_log WHERE operation = 'adopt' AND outcome = 'ok' ORDER BY dbname, id`)).toEqual([
      { dbname: 'createdb_copy', commstat: 'adopted the existing database at version 1' },
      { dbname: 'createdb_copy', commstat: 'REVOKE CONNECT, TEMPORARY ON DATABASE createdb_copy FROM PUBLIC' },
      { dbname: 'createdb_empty', commstat: 'adopted the existing database at version 0' },
      { dbname: 'createdb_empty', commstat: 'REVOKE CONNECT, TEMPORARY ON DATABASE createdb_empty FROM PUBLIC' },
    ]);
    expect(await admin(`SELECT count(*)::int AS n FROM pg_database WHERE datname IN ('createdb_copy', 'createdb_empty')
                          AND has_database_privilege('public', datname, 'CONNECT')`)).toEqual([{ n: 0 }]);
    // The adopted empty database then receives every script, schema included.
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await tenant('createdb_empty')).toEqual({ status: 2, scriptversion: 1 });
    expect(await env.queryIn('createdb_empty', 'SELECT scriptid FROM admmgt.applied_scripts')).toEqual([{ scriptid: 1 }]);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    await admin(`UPDATE admmgt.vendor_db_settings SET deleted = true WHERE dbname IN ('createdb_copy', 'createdb_empty')`);
  });

  it('refuses a CALL inside a transaction block with SQLSTATE 25001 before creating anything', async () => {
    await register('createdb_inblock');
    const runsBefore = await runCount();
    // As in psql: BEGIN, then the CALL a moment later.
    await env.admin.query('BEGIN; SELECT pg_sleep(1.1)');
    const err = await adminError('CALL admmgt.create_database()');
    await env.admin.query('ROLLBACK');
    expect(err.code).toBe('25001');
    expect(err.message).toBe('admmgt.create_database cannot run inside a transaction block');
    expect(err.hint).toMatch(/autocommit/);
    expect(await env.databases()).not.toContain('createdb_inblock');
    expect(await tenant('createdb_inblock')).toEqual({ status: 1, scriptversion: null });
    expect(await runCount()).toBe(runsBefore);
  });

  it('refuses BEGIN and CALL sent as one query string too, before creating anything', async () => {
    const runsBefore = await runCount();
    const err = await adminError('BEGIN; CALL admmgt.create_database()');
    await env.admin.query('ROLLBACK');
    // 25001 from the check, or 2D000 from the COMMIT that follows it when the check cannot see the block.
    expect(['25001', '2D000']).toContain(err.code);
    expect(await env.databases()).not.toContain('createdb_inblock');
    expect(await tenant('createdb_inblock')).toEqual({ status: 1, scriptversion: null });
    expect(await runCount()).toBe(runsBefore);
    await admin(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'createdb_inblock'`);
  });

  it('refuses while someone is connected to the template (55006, naming the session) and creates nothing', async () => {
    await register('createdb_blocked');
    const holder = new pg.Client({ connectionString: env.urlFor(TPL) });
    await holder.connect();
    try {
      const [{ pid }] = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows as [{ pid: number }];
      const err = await adminError('CALL admmgt.create_database()');
      expect(err.code).toBe('55006');
      expect(err.message).toContain(`template database createdb_tpl has open connections: pid ${pid}`);
      expect(await env.databases()).not.toContain('createdb_blocked');
      expect(await tenant('createdb_blocked')).toEqual({ status: 1, scriptversion: null });
    } finally {
      await holder.end();
    }
    // Without the connection the same call goes through (the session's lock from the refused call is not in the way).
    await env.admin.query('CALL admmgt.create_database()');
    expect(await tenant('createdb_blocked')).toEqual({ status: 2, scriptversion: 1 });
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.runs WHERE finished_at IS NULL`)).toEqual([{ n: 0 }]);
  });

  it('creates several tenants with p_parallel => 3', async () => {
    const names = ['createdb_p1', 'createdb_p2', 'createdb_p3', 'createdb_p4', 'createdb_p5'];
    for (const n of names) await register(n);
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database(p_parallel => 3)');
    const dbs = await env.databases();
    for (const n of names) {
      expect(dbs).toContain(n);
      expect(await tenant(n)).toEqual({ status: 2, scriptversion: 1 });
      expect(await templateContent(n)).toEqual(EXPECTED_CONTENT);
    }
    expect(await admin(`SELECT targets, failed FROM admmgt.runs WHERE operation = 'create' ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ targets: 5, failed: 0 }]);
    expect(await admin(`SELECT count(DISTINCT dbname)::int AS n FROM admmgt.script_log WHERE operation = 'create' AND dbname = ANY ($1)`, [names]))
      .toEqual([{ n: 5 }]);
    expect(env.notices.join('\n')).toMatch(/\(5\/5 done, 0 failed\)/);
    // Every tenant now takes the next script, in parallel as well.
    await env.addScript({ id: 2, description: 'two', tables: [{ schema: 'mgttest', name: 'second', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 3)');
    for (const n of names) {
      expect(await tenant(n)).toEqual({ status: 2, scriptversion: 2 });
      expect((await env.queryIn<{ t: string | null }>(n, `SELECT to_regclass('mgttest.second')::text AS t`))[0]!.t).toBe('mgttest.second');
    }
  });
});
