// The warm pool: refill_pool() keeps spare copies of the template on local, applyScripts, the
// refreshes and maintenance keep them up, nothing lists them as tenants, and create_database()
// hands one to a new tenant by renaming it, atomically.
// Every database of this file starts with pool_ (the pool's own: pool_admin_pool_<id>).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { TableSpec } from '../templates/script.js';
import { cli } from './support/cli.js';
import { createEnv, urlFor, type TestEnv } from './support/env.js';

const TPL = 'pool_tpl';
const PREFIX = 'pool_admin_pool_';
let env: TestEnv;

const dayTable = (schema: string, name: string): TableSpec => ({
  schema, name,
  columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'at', type: 'date', nullable: false }],
  partitions: [{ column: 'at', type: 'range', value: 'day' }],
});

interface PoolRow { id: string; dbname: string; status: number; version: number; ready: boolean; deleted: boolean }

/** Every pool row, deleted ones too, with what the registry says of it. */
async function poolRows(): Promise<PoolRow[]> {
  return env.rows<PoolRow>(
    `SELECT v.id::text, lower(v.dbname) AS dbname, v.status, coalesce(v.scriptversion, 0) AS version, coalesce(p.ready, false) AS ready,
            coalesce(v.deleted, false) AS deleted
       FROM admmgt.vendor_db_settings v LEFT JOIN admmgt.pool_databases p ON p.id = v.id
      WHERE v.pool ORDER BY v.id`);
}

async function livePool(): Promise<PoolRow[]> {
  return (await poolRows()).filter((r) => !r.deleted);
}

async function poolDatabases(): Promise<string[]> {
  return (await env.databases()).filter((d) => d.startsWith(PREFIX));
}

async function body(db: string, fn: string): Promise<string | undefined> {
  const rows = await env.queryIn<{ src: string }>(db, `SELECT prosrc AS src FROM pg_proc WHERE oid = to_regprocedure($1)`, [fn]);
  return rows[0]?.src;
}

/** What a database holds, without its name: tables, columns, indexes, routines and the ledger, from its catalogs. */
async function catalogs(db: string) {
  return {
    inventory: (await env.rows<{ kind: string; name: string; detail: string }>(
      'SELECT kind, name, detail FROM admmgt.inventory($1) ORDER BY kind, name', [db])),
    ledger: (await env.queryIn<{ scriptid: number }>(db, 'SELECT scriptid FROM admmgt.applied_scripts ORDER BY 1')).map((r) => r.scriptid),
    publicConnect: (await env.rows<{ ok: boolean }>(`SELECT has_database_privilege('public', $1, 'CONNECT') AS ok`, [db]))[0]!.ok,
  };
}

async function register(dbname: string, loginrole?: string): Promise<string> {
  const [row] = await env.rows<{ id: string }>(
    `INSERT INTO admmgt.vendor_db_settings (dbname, status, loginrole) VALUES ($1, 1, $2) RETURNING id::text`, [dbname, loginrole ?? null]);
  return row!.id;
}

async function tenantRow(dbname: string) {
  return (await env.rows<{ status: number; scriptversion: number | null; baseversion: number | null }>(
    'SELECT status, scriptversion, baseversion FROM admmgt.vendor_db_settings WHERE dbname = $1 AND NOT deleted', [dbname]))[0];
}

beforeAll(async () => {
  env = await createEnv('pool');
  // Roles are cluster-wide: those of an earlier run go (their databases went with createEnv).
  await env.admin.query('DROP ROLE IF EXISTS pool_role_ok, pool_role_ok2, pool_role_priv');
  await env.makeTemplate(TPL, ['app']);
  await env.queryIn(TPL, `CREATE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
  await env.addScript({ id: 1, description: 'a daily table', tables: [dayTable('app', 'events')] });
  await env.admin.query('CALL admmgt.applyScripts()');
  await env.waitIdle(TPL);
});
afterAll(async () => {
  await env?.close();
});

describe('pool size 0 (the default)', () => {
  it('makes no database, and create_database() copies the template as before', async () => {
    expect(await env.rows('SELECT pool_size FROM admmgt.servers')).toEqual([{ pool_size: 0 }]);
    await env.admin.query('CALL admmgt.refill_pool()');
    expect(await poolRows()).toEqual([]);
    expect(await poolDatabases()).toEqual([]);
    expect(await env.rows('SELECT * FROM admmgt.pool_status')).toEqual([]);
    expect(await env.rows(`SELECT name FROM admmgt.metrics() WHERE name LIKE 'admmgt\\_pool%'`)).toEqual([]);
    await register('pool_plain');
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database()');
    expect(env.notices.filter((n) => /pool database/.test(n))).toEqual([]);
    expect(await tenantRow('pool_plain')).toEqual({ status: 2, scriptversion: 1, baseversion: 1 });
    expect(await env.rows(`SELECT operation, dbname, outcome FROM admmgt.script_log WHERE dbname = 'pool_plain' AND operation = 'create' AND commstat LIKE 'CREATE DATABASE%'`))
      .toHaveLength(1);
  });

  it('refuses a pool size out of range and a pool on another server, before anything is made', async () => {
    const err = await env.errorOf('CALL admmgt.refill_pool(p_size => -1)');
    expect(err.code).toBe('22023');
    expect(err.message).toMatch(/p_size must be between 0 and 1000/);
    await env.admin.query(`INSERT INTO admmgt.servers (name, fdwserver) VALUES ('pool_other', 'nowhere')`);
    const bad = await env.errorOf(`UPDATE admmgt.servers SET pool_size = 1 WHERE name = 'pool_other'`);
    expect(bad.code).toBe('23514');
    await env.admin.query(`DELETE FROM admmgt.servers WHERE name = 'pool_other'`);
    expect(await poolRows()).toEqual([]);
  });

  it('refuses a tenant named like a pool database', async () => {
    const id = await register(`${PREFIX}99`);
    const err = await env.errorOf('CALL admmgt.create_database()');
    expect(err.code).toBe('42939');
    expect(err.message).toMatch(/names the reserved database pool_admin_pool_99/);
    expect(err.hint).toMatch(/begin with pool_admin_pool_/);
    expect(await poolDatabases()).toEqual([]);
    await env.admin.query('DELETE FROM admmgt.vendor_db_settings WHERE id = $1', [id]);
  });
});

describe('the warm pool', () => {
  let pool: PoolRow[];

  it('refill_pool makes pool_size spare copies of the template, closed to PUBLIC, at its version', async () => {
    await env.admin.query('CALL admmgt.refill_pool(p_size => 3)');
    pool = await livePool();
    expect(pool.map((p) => ({ ...p, id: undefined }))).toEqual(
      pool.map((p) => ({ id: undefined, dbname: `${PREFIX}${p.id}`, status: 2, version: 1, ready: true, deleted: false })));
    expect(pool).toHaveLength(3);
    expect(await poolDatabases()).toEqual(pool.map((p) => p.dbname).sort());
    for (const p of pool) {
      const c = await catalogs(p.dbname);
      expect(c.ledger).toEqual([1]);
      expect(c.publicConnect).toBe(false);
    }
    expect(await env.rows('SELECT server, pool_size, ready::int, not_ready::int, pending::int FROM admmgt.pool_status'))
      .toEqual([{ server: 'local', pool_size: 3, ready: 3, not_ready: 0, pending: 0 }]);
    // A second refill has nothing to do.
    await env.admin.query('CALL admmgt.refill_pool()');
    expect((await livePool()).map((p) => p.dbname)).toEqual(pool.map((p) => p.dbname));
  });

  it('is never listed or chosen as a tenant', async () => {
    const names = pool.map((p) => p.dbname);
    const listed = (await env.rows<{ dbname: string }>('SELECT dbname FROM admmgt.tenant_status')).map((r) => r.dbname);
    expect(listed.filter((d) => names.includes(d))).toEqual([]);
    expect(listed).toContain('pool_plain');
    expect(await env.rows(`SELECT tenants::int, pending::int FROM admmgt.server_status WHERE server = 'local'`)).toEqual([{ tenants: 1, pending: 0 }]);
    const metrics = await env.rows<{ labels: { kind?: string }; value: number }>(
      `SELECT labels, value FROM admmgt.metrics() WHERE name = 'admmgt_targets' AND labels ->> 'kind' = 'tenant'`);
    expect(metrics.reduce((n, m) => n + m.value, 0)).toBe(1);
    expect(await env.rows(`SELECT name, labels, value FROM admmgt.metrics() WHERE name LIKE 'admmgt\\_pool\\_%' ORDER BY name`))
      .toEqual([{ name: 'admmgt_pool_ready', labels: { server: 'local' }, value: 3 }, { name: 'admmgt_pool_size', labels: { server: 'local' }, value: 3 }]);
    const checked = (await env.rows<{ dbname: string }>('SELECT dbname FROM admmgt.check_targets()')).map((r) => r.dbname);
    expect(checked.filter((d) => names.includes(d))).toEqual([]);
    await env.admin.query('CALL admmgt.detectDrift()');
    expect(await env.rows('SELECT dbname FROM admmgt.target_fingerprints WHERE dbname = ANY ($1)', [names])).toEqual([]);
    // Named as a tenant, or by a tag, a pool database is refused like a name that does not exist.
    const named = await env.errorOf(`CALL admmgt.applyScripts(p_tenants => ARRAY['${names[0]}'])`);
    expect(named.code).toBe('42704');
    expect(named.message).toMatch(/not a created target/);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET tags = '{pooltag}' WHERE id = $1`, [pool[0]!.id]);
    expect((await env.errorOf(`CALL admmgt.applyMaintenance(p_tag => 'pooltag')`)).code).toBe('42704');
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET tags = '{}' WHERE id = $1`, [pool[0]!.id]);
    expect((await env.errorOf(`CALL admmgt.pin_tenant('${names[0]}', 5)`)).code).toBe('42704');
    expect((await env.errorOf(`CALL admmgt.drop_tenant('${names[0]}', '${names[0]}')`)).message).toMatch(/no such tenant|not a tenant|is not registered/);
    const status = await cli('status', '--url', env.adminUrl);
    expect(status.code).toBe(0);
    for (const n of names) expect(status.stdout).not.toContain(n);
    expect(status.stdout).toMatch(/pool: 3 ready of 3/);
  });

  it('is brought up with the template by applyScripts, refresh and maintenance', async () => {
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
    await env.addScript({ id: 2, description: 'a second daily table', tables: [dayTable('app', 'clicks')] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect((await livePool()).map((p) => [p.version, p.ready])).toEqual([[2, true], [2, true], [2, true]]);
    await env.admin.query('CALL admmgt.refesh_stored_procedures()');
    await env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 40)');
    const want = (await env.rows<{ n: string }>(
      `SELECT 'clicks_p' || to_char(d, 'YYYYMMDD') AS n FROM generate_series(current_date, current_date + 40, interval '1 day') d`)).map((r) => r.n);
    for (const p of pool) {
      expect(await body(p.dbname, 'app.f_v()'), p.dbname).toBe('SELECT 2');
      expect((await catalogs(p.dbname)).ledger, p.dbname).toEqual([1, 2]);
      const have = Object.keys(await env.partitionBounds(p.dbname, 'app.clicks'));
      expect(want.filter((n) => !have.includes(n)), p.dbname).toEqual([]);
    }
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.upkeep_partitions WHERE target_id = ANY ($1::bigint[])`, [pool.map((p) => p.id)]))
      .toEqual([{ n: 3 }]);
  });

  it('create_database() takes the oldest ready one: renamed, granted, registered at its version with its partition reach', async () => {
    const id = await register('pool_fast', 'pool_role_ok');
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database()');
    expect(env.notices.join('\n')).toContain(`pool_fast created from pool database ${pool[0]!.dbname} at version 2`);
    expect(await tenantRow('pool_fast')).toEqual({ status: 2, scriptversion: 2, baseversion: 2 });
    expect((await poolRows())[0]).toMatchObject({ dbname: pool[0]!.dbname, deleted: true });
    expect(await poolDatabases()).toEqual([pool[1]!.dbname, pool[2]!.dbname].sort());
    expect(await env.rows(`SELECT has_database_privilege('pool_role_ok', 'pool_fast', 'CONNECT') AS role,
                                  has_database_privilege('public', 'pool_fast', 'CONNECT') AS public`)).toEqual([{ role: true, public: false }]);
    // What maintenance made sure of in the pool database holds for the tenant: it is left alone.
    expect(await env.rows(`SELECT scriptversion FROM admmgt.upkeep_partitions WHERE target_id = $1`, [id])).toEqual([{ scriptversion: 2 }]);
    expect(await env.rows(`SELECT ok FROM admmgt.target_results WHERE target_id = $1 AND operation = 'create'`, [id])).toEqual([{ ok: true }]);
    expect(await env.rows(`SELECT commstat FROM admmgt.script_log WHERE dbname = 'pool_fast' AND operation = 'create' ORDER BY id`))
      .toEqual([{ commstat: `ALTER DATABASE ${pool[0]!.dbname} RENAME TO pool_fast` },
                { commstat: 'REVOKE CONNECT, TEMPORARY ON DATABASE pool_fast FROM PUBLIC' },
                { commstat: 'GRANT CONNECT ON DATABASE pool_fast TO pool_role_ok' }]);
  });

  it('gives a pooled tenant the catalogs of a tenant copied from the template', async () => {
    await env.admin.query(`UPDATE admmgt.servers SET pool_size = 0 WHERE name = 'local'`);
    // The plain path: no ready pool database left to take (they are all in use by a session).
    const holders = await Promise.all(pool.slice(1).map(async (p) => {
      const c = new pg.Client({ connectionString: urlFor(env.adminUrl, p.dbname) });
      await c.connect();
      return c;
    }));
    try {
      await register('pool_slow', 'pool_role_ok2');
      env.notices.length = 0;
      await env.admin.query('CALL admmgt.create_database()');
      expect(env.notices.filter((n) => /could not take pool database/.test(n))).toHaveLength(2);
    } finally {
      await Promise.all(holders.map((c) => c.end()));
    }
    expect(await poolDatabases()).toEqual([pool[1]!.dbname, pool[2]!.dbname].sort());
    await env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 40)');
    const fast = await catalogs('pool_fast');
    const slow = await catalogs('pool_slow');
    expect(fast).toEqual(slow);
    await env.admin.query(`CALL admmgt.detectDrift(p_tenants => ARRAY['pool_fast', 'pool_slow'])`);
    expect(await env.rows(`SELECT dbname, kind, object FROM admmgt.drift WHERE dbname IN ('pool_fast', 'pool_slow')`)).toEqual([]);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.target_fingerprints WHERE dbname IN ('pool_fast', 'pool_slow')`)).toEqual([{ n: 2 }]);
    await env.admin.query(`UPDATE admmgt.servers SET pool_size = 3 WHERE name = 'local'`);
  });

  it('passes over a pool database someone is connected to, for the next one', async () => {
    const ready = await livePool();
    const holder = new pg.Client({ connectionString: urlFor(env.adminUrl, ready[0]!.dbname) });
    await holder.connect();
    try {
      await register('pool_next');
      env.notices.length = 0;
      await env.admin.query('CALL admmgt.create_database()');
      expect(env.notices.join('\n')).toMatch(new RegExp(`pool_next could not take pool database ${ready[0]!.dbname}: .*\\(SQLSTATE 55006\\)`));
      expect(env.notices.join('\n')).toContain(`pool_next created from pool database ${ready[1]!.dbname}`);
    } finally {
      await holder.end();
    }
    expect((await livePool()).map((p) => p.dbname)).toEqual([ready[0]!.dbname]);
    await env.admin.query('CALL admmgt.refill_pool()');
    expect(await livePool()).toHaveLength(3);
  });

  it('hands out no pool database behind the template, until an upkeep call brings it up', async () => {
    // An apply that names tenants leaves the pool at the old version.
    await env.addScript({ id: 3, description: 'a third daily table', tables: [dayTable('app', 'views')] });
    await env.admin.query(`CALL admmgt.applyScripts(p_tenants => ARRAY['pool_fast'])`);
    expect((await livePool()).map((p) => [p.version, p.ready])).toEqual([[2, false], [2, false], [2, false]]);
    expect(await env.rows('SELECT ready::int, not_ready::int FROM admmgt.pool_status')).toEqual([{ ready: 0, not_ready: 3 }]);
    await register('pool_behind');
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database()');
    expect(env.notices.filter((n) => /pool database/.test(n))).toEqual([]);
    expect(await tenantRow('pool_behind')).toEqual({ status: 2, scriptversion: 3, baseversion: 3 });
    expect(await livePool()).toHaveLength(3);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect((await livePool()).map((p) => [p.version, p.ready])).toEqual([[3, true], [3, true], [3, true]]);
  });

  it('is atomic: a take that fails after the rename leaves the pool database and the registry as they were', async () => {
    const before = await livePool();
    const [first] = before;
    const results = async () => env.rows('SELECT operation, scriptid, target_id::text, ok FROM admmgt.target_results ORDER BY 1, 2, 3');
    const resultsBefore = await results();
    // The last step of a take marks the pool row deleted: make exactly that fail, and say
    // whether the rename had happened by then.
    await env.admin.query(`CREATE FUNCTION public.pool_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'refused by test (renamed: %)', EXISTS (SELECT 1 FROM pg_database WHERE datname = 'pool_atomic')
            USING ERRCODE = 'check_violation';
      END $$`);
    await env.admin.query(`CREATE TRIGGER pool_refuse BEFORE UPDATE ON admmgt.vendor_db_settings FOR EACH ROW
      WHEN (OLD.pool AND NEW.deleted AND NOT OLD.deleted) EXECUTE FUNCTION public.pool_refuse()`);
    try {
      const id = await register('pool_atomic');
      env.notices.length = 0;
      await env.admin.query('CALL admmgt.create_database()');
      expect(env.notices.join('\n')).toMatch(new RegExp(`pool_atomic could not take pool database ${first!.dbname}: refused by test \\(renamed: t\\)`));
      // The tenant was created from the template instead; the pool is untouched.
      expect(await tenantRow('pool_atomic')).toEqual({ status: 2, scriptversion: 3, baseversion: 3 });
      expect(await env.rows(`SELECT commstat FROM admmgt.script_log WHERE dbname = 'pool_atomic' AND commstat LIKE 'ALTER DATABASE%'`)).toEqual([]);
      expect(await livePool()).toEqual(before);
      expect(await poolDatabases()).toEqual(before.map((p) => p.dbname).sort());
      expect((await catalogs(first!.dbname)).ledger).toEqual([1, 2, 3]);
      expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.upkeep_partitions WHERE target_id = $1`, [id])).toEqual([{ n: 0 }]);
      expect((await results()).filter((r) => (r as { target_id: string }).target_id !== id)).toEqual(resultsBefore);
    } finally {
      await env.admin.query('DROP TRIGGER pool_refuse ON admmgt.vendor_db_settings; DROP FUNCTION public.pool_refuse()');
    }
    // Nothing was lost: the next tenant takes that very pool database.
    await register('pool_after');
    await env.admin.query('CALL admmgt.create_database()');
    expect(await tenantRow('pool_after')).toEqual({ status: 2, scriptversion: 3, baseversion: 3 });
    expect((await poolRows()).find((p) => p.dbname === first!.dbname)).toMatchObject({ deleted: true });
    expect(await poolDatabases()).toEqual(before.slice(1).map((p) => p.dbname).sort());
  });

  it('refills what tenants took, and forgets a pool database dropped by hand', async () => {
    const left = await livePool();
    expect(left).toHaveLength(2);
    await env.admin.query(`DROP DATABASE ${left[0]!.dbname}`);
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.refill_pool()');
    expect(env.notices.join('\n')).toContain(`${left[0]!.dbname} no longer exist`);
    const now = await livePool();
    expect(now).toHaveLength(3);
    expect(now.every((p) => p.ready && p.version === 3)).toBe(true);
    expect(now.map((p) => p.dbname)).not.toContain(left[0]!.dbname);
    expect(await poolDatabases()).toEqual(now.map((p) => p.dbname).sort());
    const json = await cli('pool', '--url', env.adminUrl, '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ pools: [{ server: 'local', pool_size: 3, ready: 3 }] });
  });

  it('admmgt pool refill --size N resizes and refills; admmgt pool shows it', async () => {
    const r = await cli('pool', 'refill', '--size', '4', '--url', env.adminUrl);
    expect(r.stderr).toMatch(/admmgt pool: 4 of 4 spare database\(s\) ready on local at version 3\nrun \d+: 1 target\(s\), 1 done, 0 failed/);
    expect(r.code).toBe(0);
    const shown = await cli('pool', '--url', env.adminUrl);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^pool: 4 ready of 4 on local\n/);
    for (const p of await livePool()) expect(shown.stdout).toContain(p.dbname);
    expect((await cli('pool', 'refill', '--size', '-1', '--url', env.adminUrl)).code).toBe(2);
  });
});
