// Installing: twice changes nothing, a newer version upgrades in place without losing rows, and
// the `admmgt sql` file installs through psql to the same result, by hand, as the original demo.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { applyMigrations, assembleInstallSql, installControlPlane, loadMigrations, OPERATION_LOCKS } from '../src/install.js';
import { migrationsDir } from '../src/paths.js';
import { createEnv, urlFor, type TestEnv } from './support/env.js';

const run = promisify(execFile);
let env: TestEnv;

beforeAll(async () => {
  env = await createEnv('inst');
});
afterAll(async () => {
  await env.close();
});

async function fingerprint(client: pg.Client) {
  const routines = await client.query(
    `SELECT p.oid::regprocedure::text AS sig, md5(pg_get_functiondef(p.oid)) AS def
       FROM pg_proc p WHERE p.pronamespace = 'admmgt'::regnamespace ORDER BY 1`);
  const tables = await client.query(
    `SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = 'admmgt'::regnamespace ORDER BY 1`);
  const ledger = await client.query('SELECT id, name, hash FROM admmgt.migrations ORDER BY id');
  return { routines: routines.rows, tables: tables.rows, ledger: ledger.rows };
}

async function newAdminDb(name: string): Promise<pg.Client> {
  await env.admin.query(`CREATE DATABASE ${name}`);
  const c = new pg.Client({ connectionString: env.urlFor(name) });
  await c.connect();
  return c;
}

async function psql(database: string, args: string[], input?: string): Promise<string> {
  const url = urlFor(inject('pgUrl'), database);
  const file = input ? path.join(await mkdtemp(path.join(os.tmpdir(), 'admmgt-psql-')), 'in.sql') : undefined;
  if (file && input) await writeFile(file, input);
  try {
    const { stdout, stderr } = await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, ...args, ...(file ? ['-f', file] : [])]);
    return stdout + stderr;
  } finally {
    if (file) await rm(path.dirname(file), { recursive: true, force: true });
  }
}

describe('install', () => {
  it('keeps the migration ledger in schema admmgt and puts nothing of its own in public', async () => {
    const { rows } = await env.admin.query(
      `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'migrations'`);
    expect(rows).toEqual([{ nspname: 'admmgt' }]);
    const pub = await env.admin.query(
      `SELECT relname FROM pg_class c WHERE relnamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.reltype AND d.deptype = 'e')`);
    expect(pub.rows).toEqual([]);
  });

  it('changes nothing when run twice', async () => {
    const before = await fingerprint(env.admin);
    expect(before.routines.length).toBeGreaterThan(20);
    const report = await installControlPlane(env.admin);
    expect(report.applied).toEqual([]);
    expect(await fingerprint(env.admin)).toEqual(before);
  });

  it('names the same operation locks in SQL (_lock_class, _lock_keys) as the installer (OPERATION_LOCKS)', async () => {
    // The installer takes these locks before the SQL functions exist, so it cannot ask them.
    const { rows } = await env.admin.query<{ classId: number; keys: number[] }>(
      `SELECT admmgt._lock_class() AS "classId", admmgt._lock_keys() AS keys`);
    expect(rows).toEqual([OPERATION_LOCKS]);
  });

  it('waits for worker sessions that still hold their shared lock before it replaces the routines', async () => {
    // A worker of a run whose caller is gone keeps booking its target (072_workers.sql, _work).
    const worker = new pg.Client({ connectionString: env.urlFor(env.adminDb) });
    await worker.connect();
    try {
      const { rows } = await worker.query<{ key: number }>(`SELECT admmgt._worker_lock_key('apply') AS key`);
      await worker.query('SELECT pg_advisory_lock_shared(admmgt._lock_class(), $1)', [rows[0]!.key]);
      let done = false;
      const install = installControlPlane(env.admin).then(() => { done = true; });
      await new Promise((r) => setTimeout(r, 1500));
      expect(done).toBe(false);
      await worker.query('SELECT pg_advisory_unlock_shared(admmgt._lock_class(), $1)', [rows[0]!.key]);
      await install;
      expect(done).toBe(true);
    } finally {
      await worker.end();
    }
  });

  it('denies EXECUTE on every routine to PUBLIC', async () => {
    const { rows } = await env.admin.query(
      `SELECT p.oid::regprocedure::text AS sig FROM pg_proc p
        WHERE p.pronamespace = 'admmgt'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')`);
    expect(rows).toEqual([]);
  });

  it('upgrades an older install in place without losing rows', async () => {
    const client = await newAdminDb('inst_upgrade');
    const olderDir = await mkdtemp(path.join(os.tmpdir(), 'admmgt-mig-'));
    try {
      await cp(migrationsDir(), olderDir, { recursive: true });
      await installControlPlane(client, () => {}, olderDir);
      await client.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('inst_tpl', true, 2)`);
      await client.query(`INSERT INTO admmgt.scripts (id, description) VALUES (7, 'kept across the upgrade')`);
      // The newer version: one more migration.
      const next = `${(await loadMigrations(olderDir)).length}_test_upgrade.sql`;
      await writeFile(path.join(olderDir, next), 'ALTER TABLE admmgt.scripts ADD COLUMN upgraded_note text DEFAULT \'new\';\n');
      const report = await installControlPlane(client, () => {}, olderDir);
      expect(report.applied).toEqual([next]);
      const { rows } = await client.query('SELECT id, description, upgraded_note FROM admmgt.scripts');
      expect(rows).toEqual([{ id: 7, description: 'kept across the upgrade', upgraded_note: 'new' }]);
      expect((await client.query('SELECT dbname FROM admmgt.vendor_db_settings')).rows).toEqual([{ dbname: 'inst_tpl' }]);
    } finally {
      await client.end();
      await rm(olderDir, { recursive: true, force: true });
    }
  });

  it('upgrades an install from before servers: created rows and the template land on local, pending rows stay to be placed', async () => {
    const client = await newAdminDb('inst_servers');
    const olderDir = await mkdtemp(path.join(os.tmpdir(), 'admmgt-mig-'));
    try {
      await cp(migrationsDir(), olderDir, { recursive: true });
      // Before servers: migration 4 and every later one are not there yet.
      const later = (await readdir(migrationsDir())).filter((f) => parseInt(f, 10) >= 4).sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
      for (const f of later) await unlink(path.join(olderDir, f));
      await applyMigrations(client, olderDir);
      // inst_old_c: pending, but its database is already there (create_database() would adopt it).
      await env.admin.query('CREATE DATABASE inst_old_c');
      await client.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES
                            ('inst_old_tpl', true, 2, 3), ('inst_old_a', false, 2, 3), ('inst_old_b', false, 1, NULL),
                            ('Inst_Old_C', false, 1, NULL)`);
      const report = await installControlPlane(client);
      expect(report.applied).toEqual(later);
      expect(later[0]).toBe('4_servers.sql');
      expect((await client.query('SELECT name, fdwserver, accepts_tenants FROM admmgt.servers')).rows)
        .toEqual([{ name: 'local', fdwserver: null, accepts_tenants: true }]);
      expect((await client.query('SELECT dbname, server, servertemplate FROM admmgt.vendor_db_settings ORDER BY id')).rows).toEqual([
        { dbname: 'inst_old_tpl', server: 'local', servertemplate: false },
        { dbname: 'inst_old_a', server: 'local', servertemplate: false },
        { dbname: 'inst_old_b', server: null, servertemplate: false },
        { dbname: 'Inst_Old_C', server: 'local', servertemplate: false },
      ]);
      expect((await client.query('SELECT dbname, version, server FROM admmgt.targets ORDER BY id')).rows).toEqual([
        { dbname: 'inst_old_tpl', version: 3, server: 'local' },
        { dbname: 'inst_old_a', version: 3, server: 'local' },
      ]);
      // The template stays on the admin database's cluster.
      await client.query(`INSERT INTO admmgt.servers (name, fdwserver) VALUES ('elsewhere', 'admmgt_srv_elsewhere')`);
      const e2 = await client.query(`UPDATE admmgt.vendor_db_settings SET server = 'elsewhere' WHERE istemplate`).catch((x: pg.DatabaseError) => x);
      expect((e2 as pg.DatabaseError).constraint).toBe('vendor_db_settings_template_local');
    } finally {
      await client.end();
      await rm(olderDir, { recursive: true, force: true });
    }
  });

  it('refuses a migration that was changed after it was applied', async () => {
    const client = await newAdminDb('inst_tamper');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'admmgt-mig-'));
    try {
      await cp(migrationsDir(), dir, { recursive: true });
      await installControlPlane(client, () => {}, dir);
      await writeFile(path.join(dir, '1_control_plane.sql'), '-- edited\n', { flag: 'a' });
      await expect(installControlPlane(client, () => {}, dir)).rejects.toThrow(/Hashes don't match/);
    } finally {
      await client.end();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('admmgt sql | psql', () => {
  it('installs, reruns, and agrees with the TypeScript installer', async () => {
    const text = await assembleInstallSql();
    expect(text).toMatch(/^-- admmgt /);
    const client = await newAdminDb('inst_psql');
    try {
      await psql('inst_psql', [], text);
      const first = await fingerprint(client);
      await psql('inst_psql', [], text);
      expect(await fingerprint(client)).toEqual(first);
      // The ledger rows match what postgres-migrations records: nothing left to apply.
      expect((await installControlPlane(client)).applied).toEqual([]);
      expect(await fingerprint(client)).toEqual(first);
      // And the other way round: the psql file over a TypeScript install changes nothing.
      expect(await fingerprint(env.admin)).toEqual(first);
    } finally {
      await client.end();
    }
  });

  it('runs the original demo typed by hand in psql to the same result', async () => {
    await env.admin.query('CREATE DATABASE inst_byhand');
    await psql('inst_byhand', [], await assembleInstallSql());
    await psql('inst_byhand', ['-v', 'admin=inst_byhand', '-v', 'tpl=inst_unitemplate', '-v', 'tenant=inst_BigClient',
      '-f', path.join(import.meta.dirname, 'fixtures', 'original-demo.psql')]);
    for (const db of ['inst_unitemplate', 'inst_bigclient']) {
      const rows = await env.queryIn<{ n: string }>(db, 'SELECT count(*) AS n FROM mgttest.parenttable');
      expect(rows[0]?.n).toBe('5');
      expect((await env.partitions(db, 'mgttest.test_table_x')).length).toBeGreaterThanOrEqual(3);
      const col = await env.queryIn(db,
        `SELECT attnotnull FROM pg_attribute WHERE attrelid = 'mgttest.parenttable'::regclass AND attname = 'newcolumn'`);
      expect(col).toEqual([{ attnotnull: true }]);
    }
    const status = await env.queryIn('inst_byhand', 'SELECT id, status FROM admmgt.scripts ORDER BY id');
    expect(status).toEqual([{ id: 1, status: 2 }, { id: 2, status: 2 }, { id: 3, status: 2 }]);
  });
});

describe('no credential anywhere', () => {
  it('keeps a password given at install in the user mapping only', async () => {
    const secret = 'Sup3r-secret-pw';
    await env.admin.query(`SELECT admmgt.set_connection('127.0.0.1', 5432, 'someone', '${secret}')`);
    const bodies = await env.admin.query(
      `SELECT count(*)::int AS n FROM pg_proc WHERE pronamespace = 'admmgt'::regnamespace AND prosrc LIKE '%' || $1 || '%'`, [secret]);
    expect(bodies.rows[0].n).toBe(0);
    const mapping = await env.admin.query(
      `SELECT count(*)::int AS n FROM pg_user_mappings WHERE srvname = 'admmgt_local' AND array_to_string(umoptions, ',') LIKE '%' || $1 || '%'`, [secret]);
    expect(mapping.rows[0].n).toBe(1);
    expect(await assembleInstallSql()).not.toContain(secret);
    await env.admin.query('DROP SERVER admmgt_local CASCADE');
  });
});
