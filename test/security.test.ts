// Least privilege and no credential anywhere: a non-superuser operator (admmgt_operator +
// CREATEDB, password authentication) runs every procedure; PUBLIC can run nothing and cannot
// connect to tenant databases; the operator's password appears nowhere but the user mapping.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { assembleInstallSql } from '../src/install.js';
import { inQuietTransaction } from '../src/quiet.js';
import { script1, script2, testProc1Sql } from '../templates/demo.js';
import { addScript, createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const password = `Op-${randomBytes(9).toString('hex')}`;
const plainPassword = `Pl-${randomBytes(9).toString('hex')}`;
let port: number;
let operator: pg.Client;
const notices: string[] = [];

function tcpUrl(user: string, pw: string, db: string): string {
  return `postgresql://${user}:${encodeURIComponent(pw)}@127.0.0.1:${port}/${db}`;
}

beforeAll(async () => {
  env = await createEnv('sec');
  const base = new URL(inject('pgUrl'));
  port = Number(base.port || base.searchParams.get('port') || 5432);
  await env.admin.query(`DROP ROLE IF EXISTS sec_op; DROP ROLE IF EXISTS sec_plain`);
  await env.admin.query(`CREATE ROLE sec_op LOGIN CREATEDB PASSWORD '${password}'`);
  await env.admin.query(`GRANT admmgt_operator TO sec_op`);
  await env.admin.query(`CREATE ROLE sec_plain LOGIN PASSWORD '${plainPassword}'`);
  await env.makeTemplate('sec_tpl');
  // A non-superuser may copy a database it owns; the app schema is the operator's to change.
  await env.admin.query('ALTER DATABASE sec_tpl OWNER TO sec_op');
  await env.queryIn('sec_tpl', 'ALTER SCHEMA mgttest OWNER TO sec_op');
  await env.admin.query(`SELECT admmgt.set_connection('127.0.0.1', $1, 'sec_op', $2, 'sec_op')`, [port, password]);
  operator = new pg.Client({ connectionString: tcpUrl('sec_op', password, env.adminDb) });
  operator.on('notice', (n) => notices.push(`${n.message} ${n.detail ?? ''} ${n.hint ?? ''}`));
  await operator.connect();
});

afterAll(async () => {
  await operator?.end().catch(() => {});
  await env.close();
  const server = new pg.Client({ connectionString: inject('pgUrl') });
  await server.connect();
  await server.query('DROP OWNED BY sec_op; DROP ROLE IF EXISTS sec_op; DROP ROLE IF EXISTS sec_plain').catch(() => {});
  await server.query('DROP ROLE IF EXISTS sec_role_a; DROP ROLE IF EXISTS sec_role_b').catch(() => {});
  await server.end();
});

describe('a non-superuser operator', () => {
  it('is not a superuser and reaches the tenants through its user mapping', async () => {
    const { rows } = await operator.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
    expect(rows).toEqual([{ rolsuper: false }]);
  });

  it('runs create_database, applyScripts, applyMaintenance and refesh_stored_procedures', async () => {
    await operator.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('sec_t1', 1), ('sec_t2', 1)`);
    await addScript(operator, script1);
    await operator.query('CALL admmgt.create_database()');
    await operator.query('CALL admmgt.applyScripts(p_parallel => 2)');
    await operator.query('CALL admmgt.applyMaintenance(t_numdays => 100)');
    await addScript(operator, script2);
    await operator.query('CALL admmgt.applyScripts()');
    const tpl = new pg.Client({ connectionString: tcpUrl('sec_op', password, 'sec_tpl') });
    await tpl.connect();
    await tpl.query(testProc1Sql().text);
    await tpl.end();
    await operator.query('CALL admmgt.refesh_stored_procedures()');

    expect((await operator.query('SELECT * FROM admmgt.failures')).rows).toEqual([]);
    for (const db of ['sec_t1', 'sec_t2']) {
      const owner = await env.queryIn(db, `SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()`);
      expect(owner).toEqual([{ owner: 'sec_op' }]);
      const cols = await env.queryIn(db,
        `SELECT attname FROM pg_attribute WHERE attrelid = 'mgttest.parenttable'::regclass AND attnum > 0 ORDER BY attnum`);
      expect(cols).toEqual([{ attname: 'id' }, { attname: 'newcolumn' }]);
      const procs = await env.queryIn(db, `SELECT proname FROM pg_proc WHERE pronamespace = 'mgttest'::regnamespace`);
      expect(procs).toEqual([{ proname: 'testproc1' }]);
      expect((await env.partitions(db, 'mgttest.test_table_x')).length).toBeGreaterThanOrEqual(2);
    }
  });

  it('leaves its password in no routine, log, result, message or generated file', async () => {
    const bodies = await env.admin.query(
      `SELECT p.oid::regprocedure::text AS sig FROM pg_proc p
        WHERE p.pronamespace = 'admmgt'::regnamespace AND (p.prosrc LIKE '%' || $1 || '%' OR array_to_string(p.proconfig, ',') LIKE '%' || $1 || '%')`,
      [password]);
    expect(bodies.rows).toEqual([]);
    for (const table of ['script_log', 'target_results', 'runs', 'scripts', 'vendor_db_settings']) {
      const { rows } = await env.admin.query(
        `SELECT count(*)::int AS n FROM admmgt.${table} t WHERE t::text LIKE '%' || $1 || '%'`, [password]);
      expect(rows, table).toEqual([{ n: 0 }]);
    }
    expect(notices.length).toBeGreaterThan(0);
    expect(notices.join('\n')).not.toContain(password);
    expect(await assembleInstallSql()).not.toContain(password);
    // Where it does belong: the operator's user mapping.
    const mapping = await env.admin.query(
      `SELECT count(*)::int AS n FROM pg_user_mappings WHERE srvname = 'admmgt_local' AND usename = 'sec_op'
          AND array_to_string(umoptions, ',') LIKE '%' || $1 || '%'`, [password]);
    expect(mapping.rows).toEqual([{ n: 1 }]);
  });

  it('never marks created a database whose PUBLIC CONNECT it could not revoke (it does not own it)', async () => {
    // An empty database a superuser made beforehand: adopted, but the operator's REVOKE only warns.
    await env.admin.query('CREATE DATABASE sec_foreign');
    await operator.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, adopt_empty) VALUES ('sec_foreign', 1, true)`);
    await operator.query('CALL admmgt.create_database()');
    const { rows } = await operator.query(`SELECT sqlstate, message, statement FROM admmgt.failures WHERE dbname = 'sec_foreign'`);
    expect(rows).toEqual([{ sqlstate: '42501', message: 'admmgt: PUBLIC may still connect to database sec_foreign', statement: expect.stringMatching(/^DO /) }]);
    expect((await operator.query(`SELECT status FROM admmgt.vendor_db_settings WHERE dbname = 'sec_foreign'`)).rows).toEqual([{ status: 1 }]);
    // Once its owner is the operator, the next call finishes it.
    await env.admin.query('ALTER DATABASE sec_foreign OWNER TO sec_op');
    await operator.query('CALL admmgt.create_database()');
    expect((await operator.query(`SELECT status FROM admmgt.vendor_db_settings WHERE dbname = 'sec_foreign'`)).rows).toEqual([{ status: 2 }]);
    expect(await env.rows(`SELECT has_database_privilege('public', 'sec_foreign', 'CONNECT') AS c`)).toEqual([{ c: false }]);
    expect((await operator.query(`SELECT * FROM admmgt.failures WHERE dbname = 'sec_foreign'`)).rows).toEqual([]);
    await operator.query(`UPDATE admmgt.vendor_db_settings SET deleted = true WHERE dbname = 'sec_foreign'`);
  });

  it('keeps the password out of the error of a tenant it cannot reach', async () => {
    await operator.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion) VALUES ('sec_gone', 2, 0)`);
    await operator.query('CALL admmgt.applyScripts()');
    const { rows } = await operator.query(`SELECT message, detail FROM admmgt.failures WHERE dbname = 'sec_gone'`);
    expect(rows).toHaveLength(1);
    expect(rows[0].message).toMatch(/sec_gone/);
    expect(JSON.stringify(rows)).not.toContain(password);
    expect(notices.join('\n')).not.toContain(password);
    await operator.query(`UPDATE admmgt.vendor_db_settings SET deleted = true WHERE dbname = 'sec_gone'`);
  });

  it('keeps the password out of the server log when auto_explain logs nested statements with their parameters', async () => {
    // auto_explain (PostgreSQL 16 and later) logs the parameters of every query it explains: nested
    // ones, which includes the body of an SQL-language function (a routine that takes a credential
    // as a parameter must not be one), and the client's own, which the CLI's quiet transaction
    // turns off for the call that carries the password. NOTICE level brings that log here.
    const from = env.notices.length;
    await env.admin.query(`LOAD 'auto_explain';
      SET auto_explain.log_min_duration = 0;
      SET auto_explain.log_nested_statements = on;
      SET auto_explain.log_level = notice`);
    try {
      await inQuietTransaction(env.admin, () =>
        env.admin.query(`SELECT admmgt.set_connection('127.0.0.1', $1, 'sec_op', $2, 'sec_op')`, [port, password]));
      await env.admin.query('SET ROLE sec_op');
      await env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 100, p_verify => true)');
      await env.admin.query('CALL admmgt.detectDrift()');
    } finally {
      await env.admin.query('RESET ROLE; SET auto_explain.log_min_duration = -1');
    }
    const logged = env.notices.slice(from);
    expect(logged.filter((n) => n.includes('Query Text')).length).toBeGreaterThan(50);
    const version = Number((await env.admin.query('SHOW server_version_num')).rows[0].server_version_num);
    expect(logged.some((n) => n.includes('Query Parameters'))).toBe(version >= 160000);
    expect(logged.filter((n) => n.includes(password)).map((n) => n.slice(0, 300))).toEqual([]);
    expect((await operator.query('SELECT * FROM admmgt.failures')).rows).toEqual([]);
  });
});

describe('PUBLIC', () => {
  it('cannot execute any admmgt routine or read its tables', async () => {
    const plain = new pg.Client({ connectionString: tcpUrl('sec_plain', plainPassword, env.adminDb) });
    await plain.connect();
    try {
      await expect(plain.query('CALL admmgt.applyScripts()')).rejects.toMatchObject({ code: '42501' });
      await expect(plain.query('SELECT * FROM admmgt.vendor_db_settings')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await plain.end();
    }
    const { rows } = await env.admin.query(
      `SELECT count(*)::int AS n FROM pg_proc p WHERE p.pronamespace = 'admmgt'::regnamespace
          AND has_function_privilege('sec_plain', p.oid, 'EXECUTE')`);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('cannot connect to a tenant database', async () => {
    const { rows } = await env.admin.query(
      `SELECT datname, has_database_privilege('sec_plain', datname, 'CONNECT') AS can FROM pg_database
        WHERE datname IN ('sec_t1', 'sec_t2') ORDER BY 1`);
    expect(rows).toEqual([{ datname: 'sec_t1', can: false }, { datname: 'sec_t2', can: false }]);
    const c = new pg.Client({ connectionString: tcpUrl('sec_plain', plainPassword, 'sec_t1') });
    await expect(c.connect()).rejects.toMatchObject({ code: '42501' });
  });
});

describe('tenant login roles', () => {
  it('may connect to their own tenant database and to no other', async () => {
    await env.admin.query('DROP ROLE IF EXISTS sec_role_a; DROP ROLE IF EXISTS sec_role_b');
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, loginrole) VALUES ('sec_ra', 1, 'sec_role_a'), ('sec_rb', 1, 'sec_role_b')`);
    try {
      await env.admin.query('CALL admmgt.create_database()');
      const { rows } = await env.admin.query(
        `SELECT rolname, rolcanlogin, rolsuper, rolcreatedb FROM pg_roles WHERE rolname IN ('sec_role_a', 'sec_role_b') ORDER BY 1`);
      expect(rows).toEqual([
        { rolname: 'sec_role_a', rolcanlogin: true, rolsuper: false, rolcreatedb: false },
        { rolname: 'sec_role_b', rolcanlogin: true, rolsuper: false, rolcreatedb: false },
      ]);
      // The DBA gives the role its password; admmgt never handles one.
      const pw = `Ta-${randomBytes(6).toString('hex')}`;
      await env.admin.query(`ALTER ROLE sec_role_a PASSWORD '${pw}'`);
      const own = new pg.Client({ connectionString: tcpUrl('sec_role_a', pw, 'sec_ra') });
      await own.connect();
      expect((await own.query('SELECT current_database() AS db')).rows).toEqual([{ db: 'sec_ra' }]);
      await own.end();
      const other = new pg.Client({ connectionString: tcpUrl('sec_role_a', pw, 'sec_rb') });
      await expect(other.connect()).rejects.toMatchObject({ code: '42501' });
    } finally {
      await env.admin.query(`UPDATE admmgt.vendor_db_settings SET deleted = true WHERE dbname IN ('sec_ra', 'sec_rb')`);
    }
  });

  it('refuses a privileged role as a login role before anything is created', async () => {
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, loginrole) VALUES ('sec_rc', 1, 'postgres')`);
    try {
      await expect(env.admin.query('CALL admmgt.create_database()')).rejects.toMatchObject({ code: '42939' });
      expect(await env.databases()).not.toContain('sec_rc');
    } finally {
      await env.admin.query(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'sec_rc'`);
    }
  });
});

