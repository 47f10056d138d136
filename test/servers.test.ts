// Several PostgreSQL servers: three more clusters on their own ports stand in for database hosts.
// They are registered (SQL and CLI), 30 tenants are placed across them, the demo scripts,
// maintenance and refresh run, and every tenant's catalog is read on its own server. Then one
// server stops in the middle of an applyScripts(): its tenants fail naming it, the others finish,
// and a rerun after it is back completes them. No password shows up anywhere after all that.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCluster, stopCluster, type Cluster } from '../src/cluster.js';
import { DEMO, script1, script2, script3, testProc1Sql } from '../templates/demo.js';
import { cli } from './support/cli.js';
import { addScript, createEnv, type TestEnv } from './support/env.js';

const NAMES = ['east', 'north', 'west'] as const;
type Name = (typeof NAMES)[number] | 'south';
// Quotes, a backslash and spaces: the connection string must quote it right, and it must show up nowhere.
const PASSWORD = `Srv pa'ss\\wo"rd 7731`;
const OP_PASSWORD = `Op-${randomBytes(9).toString('hex')}`;
const TPL = 'srv_tpl';
const TENANTS = Array.from({ length: 30 }, (_, i) => `srv_t${String(i + 1).padStart(2, '0')}`);

// Another server reaches the admin cluster's 127.0.0.1 only when both run on this machine.
const remoteAdmin = Boolean(process.env.ADMMGT_TEST_URL) || process.env.ADMMGT_TEST_PROVIDER === 'testcontainers';

let env: TestEnv;
let tmp: string;
const clusters = {} as Record<Name, Cluster>;


async function on<T extends pg.QueryResultRow>(server: Name, database: string, text: string, values?: unknown[]): Promise<T[]> {
  const c = new pg.Client({ connectionString: clusters[server].urlFor(database) });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

const admin = async <T extends pg.QueryResultRow>(text: string, values?: unknown[]) => env.rows<T>(text, values);

async function placement(): Promise<Record<string, string>> {
  const rows = await admin<{ dbname: string; server: string }>(
    `SELECT dbname, server FROM admmgt.vendor_db_settings WHERE NOT servertemplate AND NOT istemplate ORDER BY dbname`);
  return Object.fromEntries(rows.map((r) => [r.dbname, r.server]));
}

/** Script versions of the created databases; a server's copy of the template is server:dbname. */
const versions = () => env.versions({ nullAs: 0, createdOnly: true });

/** What a database holds of the demo, read from its own catalogs. */
const CATALOG = `
SELECT json_build_object(
  'tables', (SELECT json_agg(c.relname || ':' || c.relkind::text ORDER BY c.relname) FROM pg_class c
              WHERE c.relnamespace = 'mgttest'::regnamespace AND c.relkind IN ('r', 'p')),
  'partitions', (SELECT json_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) ORDER BY c.relname) FROM pg_class c
                  WHERE c.relnamespace = 'mgttest'::regnamespace AND c.relispartition),
  'newcolumn', (SELECT format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                  FROM pg_attribute a WHERE a.attrelid = 'mgttest.parenttable'::regclass AND a.attname = 'newcolumn'),
  'fkeys', (SELECT json_agg(pg_get_constraintdef(k.oid) ORDER BY k.conname) FROM pg_constraint k
             WHERE k.contype = 'f' AND k.connamespace = 'mgttest'::regnamespace),
  'routines', (SELECT json_agg(p.proname || ':' || p.prokind::text ORDER BY p.proname) FROM pg_proc p
                WHERE p.pronamespace = 'mgttest'::regnamespace),
  'ledger', (SELECT json_agg(scriptid ORDER BY scriptid) FROM admmgt.applied_scripts),
  'parentrows', (SELECT count(*) FROM mgttest.parenttable)) AS catalog`;

async function catalogOn(server: Name | 'local', database: string): Promise<unknown> {
  const rows = server === 'local'
    ? await env.queryIn<{ catalog: unknown }>(database, CATALOG)
    : await on<{ catalog: unknown }>(server, database, CATALOG);
  return rows[0]?.catalog;
}

beforeAll(async () => {
  if (remoteAdmin) return;
  env = await createEnv('srv');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'admmgt-test-servers-'));
  // The servers run as the postgres OS user when this runs as root: it must reach their folders.
  await chmod(tmp, 0o755);
  // Each one is recorded as soon as it runs, so that afterAll stops it whatever fails next.
  await Promise.all(NAMES.map(async (n) => {
    clusters[n] = await startServer(n);
  }));
  for (const n of NAMES) {
    const c = new pg.Client({ connectionString: clusters[n].url });
    await c.connect();
    // Over 127.0.0.1 these clusters ask for a password (scram-sha-256).
    await c.query(`SET log_statement = 'none'; ALTER ROLE postgres PASSWORD ${c.escapeLiteral(PASSWORD)}`);
    await c.end();
  }
  await env.makeTemplate(TPL);
  // Every statement of a new session in the admin database is logged: the password test reads the log.
  await admin(`ALTER DATABASE ${env.adminDb} SET log_statement = 'all'`);
}, 180_000);

function startServer(name: Name): Promise<Cluster> {
  return startCluster({
    dir: path.join(tmp, name),
    binDir: process.env.ADMMGT_TEST_BINDIR || undefined,
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', log_statement: "'all'" },
  });
}

afterAll(async () => {
  if (remoteAdmin) return;
  const steps: (() => Promise<unknown>)[] = [
    ...Object.values(clusters).map((c) => () => c.stop('immediate')),
    // A cluster whose start was cut short is not in clusters: stop whatever runs in the folders.
    ...(['east', 'north', 'west', 'south'] as const).map((n) => () => stopCluster(path.join(tmp, n))),
    () => env?.close(),
    ...['DROP OWNED BY srv_op', 'DROP ROLE IF EXISTS srv_op', 'DROP ROLE IF EXISTS srv_dba'].map((q) => async () => {
      const server = new pg.Client({ connectionString: inject('pgUrl') });
      await server.connect();
      try {
        await server.query(q);
      } finally {
        await server.end();
      }
    }),
    () => (tmp ? rm(tmp, { recursive: true, force: true }) : Promise.resolve()),
  ];
  for (const step of steps) await step().catch(() => {});
});

describe.skipIf(remoteAdmin)('three more servers', () => {
  it('registers a server with SQL and another with the CLI; a wrong password registers nothing', async () => {
    const [east] = await admin<{ v: string }>(`SELECT admmgt.add_server('East', '127.0.0.1', $1, 'postgres', $2) AS v`,
      [clusters.east.port, PASSWORD]);
    expect(east!.v).toMatch(/^PostgreSQL \d+/);
    await admin(`SELECT admmgt.add_server('north', '127.0.0.1', $1, 'postgres', $2)`, [clusters.north.port, PASSWORD]);

    const bad = await env.errorOf(`SELECT admmgt.add_server('bad', '127.0.0.1', ${clusters.west.port}, 'postgres', 'wrong')`);
    expect(bad.code).toBe('08001');
    expect(bad.message).toMatch(/^admmgt: server bad \(host 127\.0\.0\.1, port \d+\) cannot be reached as user postgres \(the mapping of role postgres\): could not establish connection: .*password authentication failed/);
    expect(bad.detail).toBe('Nothing was registered.');
    expect(await admin(`SELECT name FROM admmgt.servers WHERE name = 'bad'`)).toEqual([]);
    expect(await admin(`SELECT srvname FROM pg_foreign_server WHERE srvname = 'admmgt_srv_bad'`)).toEqual([]);

    // One cluster under a second name (here east again, by another address) is refused.
    const twice = await admin(`SELECT admmgt.add_server('e10', 'localhost', $1, 'postgres', $2)`, [clusters.east.port, PASSWORD])
      .then(() => { throw new Error('e10 was registered'); }, (e: pg.DatabaseError) => e);
    expect([twice.code, twice.detail]).toEqual(['42710', 'Nothing was registered.']);
    expect(twice.message).toMatch(/^admmgt: server e10 is the cluster that is registered as server east already \(system identifier \d+\)$/);
    expect(await admin(`SELECT name FROM admmgt.servers WHERE name = 'e10'`)).toEqual([]);
    expect(await admin(`SELECT srvname FROM pg_foreign_server WHERE srvname = 'admmgt_srv_e10'`)).toEqual([]);

    // The password from the environment, not the URL; the URL's libpq parameters go onto the foreign server.
    const url = `postgresql://postgres@127.0.0.1:${clusters.west.port}/postgres?sslmode=disable&connect_timeout=5`;
    process.env.ADMMGT_SERVER_PASSWORD = PASSWORD;
    let r;
    try {
      r = await cli('cluster', 'add', 'west', '--url', url, '--admin-url', env.adminUrl);
    } finally {
      delete process.env.ADMMGT_SERVER_PASSWORD;
    }
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^registered server west: PostgreSQL \d+/);
    expect(await admin(`SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'admmgt_srv_west'`)).toEqual([
      { srvoptions: expect.arrayContaining(['host=127.0.0.1', `port=${clusters.west.port}`, 'sslmode=disable', 'connect_timeout=5']) },
    ]);
    const badOption = await cli('cluster', 'add', 'west', '--url', `${url}&Bad;Key=1`, '--admin-url', env.adminUrl);
    expect(badOption.code).toBe(1);
    expect(badOption.stderr).toMatch(/^ERROR 22023: admmgt: 'Bad;Key' is not an option admmgt stores on the foreign server admmgt_srv_west/);
    expect(await admin(`SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'admmgt_srv_west'`)).toEqual([
      { srvoptions: expect.not.arrayContaining([expect.stringMatching(/Bad/)]) },
    ]);

    // Registering again without a password (to change an option) keeps the stored one.
    const [again] = await admin<{ v: string }>(
      `SELECT admmgt.add_server('west', '127.0.0.1', $1, 'postgres', p_options => '{"connect_timeout": "7"}') AS v`, [clusters.west.port]);
    expect(again!.v).toMatch(/^PostgreSQL \d+/);
    const notUrl = await cli('cluster', 'add', 'west', '--url', 'no url at all', '--admin-url', env.adminUrl);
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toMatch(/must name a host and a user|is not a connection URL/);
    for (const [host, port] of [['NULL', '5432'], [`'127.0.0.1'`, '70000']]) {
      const e = await env.errorOf(`SELECT admmgt.add_server('nohost', ${host}, ${port}, 'postgres')`);
      expect(e.code).toBe('22023');
      expect(e.message).toBe('admmgt: server nohost needs a host, a port between 1 and 65535 and a user');
    }
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.servers WHERE name = 'nohost'`)).toEqual([{ n: 0 }]);

    // The original setup: only the admin's own cluster is registered; it takes no tenants here.
    await admin(`UPDATE admmgt.servers SET accepts_tenants = false WHERE name = 'local'`);
    const list = await cli('cluster', 'list', '--url', env.adminUrl, '--json');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({ server: 'local', host: null, accepts_tenants: false, tenants: 0 }),
      ...NAMES.map((n) => expect.objectContaining({
        server: n, host: '127.0.0.1', port: clusters[n].port, fdwserver: `admmgt_srv_${n}`, accepts_tenants: true, tenants: 0,
      })),
    ]);
    expect(list.stdout + r.stdout).not.toContain('wo"rd');
  });

  it.each([
    ['a quote', `ea"st`, '42602'],
    ['a semicolon', 'east;drop', '42602'],
    ['a space', 'ea st', '42602'],
    ['unicode', 'öst', '42602'],
    ['a leading digit', '1east', '42602'],
    ['49 bytes', 'e'.repeat(49), '42602'],
    ['the local cluster', ' Local ', '42939'],
  ])('refuses a server name with %s (%j) with SQLSTATE %s and registers nothing', async (_what, name, code) => {
    const e = await env.errorOf(`SELECT admmgt.add_server(${env.admin.escapeLiteral(name)}, '127.0.0.1', ${clusters.east.port}, 'postgres', 'x')`);
    expect(e.code).toBe(code);
    if (code === '42602') expect(e.message).toContain(`invalid server name ${env.admin.escapeLiteral(name)}`);
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.servers`)).toEqual([{ n: 4 }]);
    expect(await admin(`SELECT count(*)::int AS n FROM pg_foreign_server`)).toEqual([{ n: 3 }]);
  });

  it('refuses a bad server name inserted by hand (CHECK servers_name_check)', async () => {
    const e = await env.errorOf(`INSERT INTO admmgt.servers (name, fdwserver) VALUES ('x"; DROP TABLE admmgt.scripts; --', 'x')`);
    expect(e.code).toBe('23514');
    expect(e.constraint).toBe('servers_name_check');
  });

  it('refuses a pending tenant that names an unregistered server, naming the value, before anything is made', async () => {
    const e = await env.errorOf(`INSERT INTO admmgt.vendor_db_settings (dbname, status, server) VALUES ('srv_x', 1, 'nowhere')`);
    expect(e.code).toBe('23503');
    expect(e.detail).toMatch(/\(server\)=\(nowhere\) is not present in table "servers"/);
  });

  it('refuses unplaced tenants when no server accepts new ones, before anything is made', async () => {
    await admin(`UPDATE admmgt.servers SET accepts_tenants = false WHERE name <> 'local'`);
    const [{ id }] = await admin<{ id: string }>(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('srv_nowhere', 1) RETURNING id::text`) as [{ id: string }];
    try {
      const e = await env.errorOf('CALL admmgt.create_database()');
      expect(e.code).toBe('55000');
      expect(e.message).toBe('admmgt: pending tenants name no server, and no server accepts new tenants');
      expect(await admin(`SELECT server FROM admmgt.vendor_db_settings WHERE id = $1`, [id])).toEqual([{ server: null }]);
      expect(await admin(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'create'`)).toEqual([{ n: 0 }]);
    } finally {
      await admin(`DELETE FROM admmgt.vendor_db_settings WHERE id = $1`, [id]);
      await admin(`UPDATE admmgt.servers SET accepts_tenants = true WHERE name <> 'local'`);
    }
  });

  it("refuses a tenant named like its server's maintenance database before anything is made", async () => {
    await admin(`UPDATE admmgt.servers SET maintdb = 'srv_maint' WHERE name = 'north'`);
    const [{ id }] = await admin<{ id: string }>(`INSERT INTO admmgt.vendor_db_settings (dbname, status, server) VALUES ('SRV_Maint', 1, 'north') RETURNING id::text`) as [{ id: string }];
    try {
      const e = await env.errorOf('CALL admmgt.create_database()');
      expect(e.code).toBe('42939');
      expect(e.message).toBe(`admmgt: admmgt.vendor_db_settings id ${id} names the reserved database srv_maint`);
      expect(await admin(`SELECT count(*)::int AS n FROM admmgt.vendor_db_settings WHERE servertemplate`)).toEqual([{ n: 0 }]);
    } finally {
      await admin(`DELETE FROM admmgt.vendor_db_settings WHERE id = $1`, [id]);
      await admin(`UPDATE admmgt.servers SET maintdb = NULL WHERE name = 'north'`);
    }
  });

  it('places 30 tenants on the server with the fewest, builds a copy of the template on each and creates every tenant from it', async () => {
    // The template gets scripts 1 and 2 and the procedure of script 3 before any tenant exists.
    await env.addScript(script1);
    await env.addScript(script2);
    await env.admin.query('CALL admmgt.applyScripts()');
    await env.queryIn(TPL, testProc1Sql().text);

    // The rule on its own, with local accepting too: rows not placed yet count nowhere.
    await env.admin.query('BEGIN');
    try {
      await admin(`UPDATE admmgt.servers SET accepts_tenants = true WHERE name = 'local'`);
      await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT 'srv_dry' || g, 1 FROM generate_series(1, 8) g`);
      await admin('SELECT admmgt._place_tenants()');
      expect(await admin(`SELECT server, count(*)::int AS n, min(id) < max(id) AS two FROM admmgt.vendor_db_settings
                           WHERE dbname LIKE 'srv_dry%' GROUP BY server ORDER BY server`))
        .toEqual(['east', 'local', 'north', 'west'].map((server) => ({ server, n: 2, two: true })));
      expect(await admin(`SELECT server FROM admmgt.vendor_db_settings WHERE dbname LIKE 'srv_dry%' ORDER BY id LIMIT 4`))
        .toEqual(['east', 'local', 'north', 'west'].map((server) => ({ server })));
    } finally {
      await env.admin.query('ROLLBACK');
    }

    // Two name their server (one with its own login role); the other 28 are placed.
    await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status, server, loginrole) VALUES ($1, 1, 'east', 'srv_role_a'), ($2, 1, 'east', NULL)`,
      [TENANTS[0], TENANTS[1]]);
    await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT unnest($1::text[]), 1`, [TENANTS.slice(2)]);
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database(p_parallel => 4)');

    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    // The copies share the template's name: messages add the server.
    for (const n of NAMES) expect(env.notices).toContainEqual(expect.stringMatching(new RegExp(`^NOTICE: admmgt create: ${TPL}@${n} done `)));
    expect(env.notices).toContainEqual(expect.stringMatching(new RegExp(`^NOTICE: admmgt create: ${TENANTS[0]}@east done `)));
    const placed = await placement();
    const count = (n: string) => Object.values(placed).filter((s) => s === n).length;
    expect(NAMES.map(count)).toEqual([10, 10, 10]);
    expect(placed[TENANTS[0]!]).toBe('east');
    expect(await admin(`SELECT server, tenants::int, pending::int, template_version FROM admmgt.server_status ORDER BY server`)).toEqual([
      { server: 'east', tenants: 10, pending: 0, template_version: 2 },
      { server: 'local', tenants: 0, pending: 0, template_version: 2 },
      { server: 'north', tenants: 10, pending: 0, template_version: 2 },
      { server: 'west', tenants: 10, pending: 0, template_version: 2 },
    ]);

    const v = await versions();
    expect(Object.keys(v)).toHaveLength(34);
    expect(new Set(Object.values(v))).toEqual(new Set([2]));
    for (const n of NAMES) {
      const here = TENANTS.filter((t) => placed[t] === n);
      const dbs = await on<{ datname: string; public_connect: boolean }>(n, 'postgres',
        `SELECT datname, has_database_privilege('public', datname, 'CONNECT') AS public_connect
           FROM pg_database WHERE datname LIKE 'srv\\_%' ORDER BY datname`);
      // Its own tenants and its copy of the template, nothing else; PUBLIC may connect to none.
      expect(dbs.map((d) => d.datname)).toEqual([...here, TPL].sort());
      expect(dbs.filter((d) => d.public_connect)).toEqual([]);
    }
    // The copy was built by the scripts and holds the template's procedure; its tenants are copies of it.
    expect(await catalogOn('west', TPL)).toEqual(await catalogOn('local', TPL));
  });

  it("keeps a tenant's login role to its own database on its server", async () => {
    const own = await on<{ ok: number }>('east', TENANTS[0]!, 'SELECT 1 AS ok').catch((e: Error) => e);
    expect(own).toEqual([{ ok: 1 }]);
    const asRole = async (db: string) => {
      const c = new pg.Client({ connectionString: clusters.east.urlFor(db, 'srv_role_a') });
      try {
        await c.connect();
        return 'connected';
      } catch (e) {
        return (e as pg.DatabaseError).code;
      } finally {
        await c.end().catch(() => {});
      }
    };
    expect(await asRole(TENANTS[0]!)).toBe('connected');
    expect(await asRole(TENANTS[1]!)).toBe('42501');
    expect(await on('east', 'postgres', `SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'srv_role_a'`))
      .toEqual([{ rolsuper: false, rolcreatedb: false, rolcreaterole: false }]);
  });

  it('fails a tenant alone whose login role is privileged on its own server, and never marks it created', async () => {
    // Not a role on the admin's cluster, so only its server can tell.
    await on('north', 'postgres', 'CREATE ROLE srv_priv LOGIN CREATEDB');
    await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status, server, loginrole) VALUES ('srv_priv_t', 1, 'north', 'srv_priv')`);
    await env.admin.query('CALL admmgt.create_database()');
    expect(await admin(`SELECT dbname, server, sqlstate, message FROM admmgt.failures`)).toEqual([
      { dbname: 'srv_priv_t', server: 'north', sqlstate: '42939', message: 'admmgt: login role srv_priv is privileged on this server' },
    ]);
    expect(await admin(`SELECT status FROM admmgt.vendor_db_settings WHERE dbname = 'srv_priv_t'`)).toEqual([{ status: 1 }]);
    // Its database exists on north, but the registry never counted it as created.
    expect(await on('north', 'postgres', `SELECT count(*)::int AS n FROM pg_database WHERE datname = 'srv_priv_t'`)).toEqual([{ n: 1 }]);
    // The DBA gives up on it: the row goes, and its database with it.
    await admin(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'srv_priv_t'`);
    await on('north', 'postgres', 'DROP DATABASE srv_priv_t');
    await on('north', 'postgres', 'DROP ROLE srv_priv');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });

  it("refuses a new tenant named like a deleted one whose database is still on its server", async () => {
    const [{ id: old }] = await admin<{ id: string }>(`SELECT id::text FROM admmgt.vendor_db_settings WHERE dbname = $1`, [TENANTS[5]]) as [{ id: string }];
    const server = (await placement())[TENANTS[5]!];
    await admin(`UPDATE admmgt.vendor_db_settings SET deleted = true WHERE id = $1`, [old]);
    const [{ id }] = await admin<{ id: string }>(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ($1, 1) RETURNING id::text`, [TENANTS[5]]) as [{ id: string }];
    try {
      const e = await env.errorOf('CALL admmgt.create_database()');
      expect(e.code).toBe('42P04');
      expect(e.message).toBe(`admmgt: database ${TENANTS[5]} of admmgt.vendor_db_settings id ${id} still holds a deleted tenant's data`);
      expect(e.hint).toContain(`on server ${server}`);
    } finally {
      await admin(`DELETE FROM admmgt.vendor_db_settings WHERE id = $1`, [id]);
      await admin(`UPDATE admmgt.vendor_db_settings SET deleted = false WHERE id = $1`, [old]);
    }
  });

  it("applies script 3, runs maintenance and refreshes procedures on every server; each tenant's catalog matches the template's", async () => {
    await env.addScript(script3);
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => ${DEMO.lookaheadDays}, p_parallel => 4)`);
    await env.queryIn(TPL, `CREATE FUNCTION mgttest.tenant_label() RETURNS text LANGUAGE sql AS $$ SELECT current_database()::text $$`);
    await env.admin.query('CALL admmgt.refesh_stored_procedures(p_parallel => 4)');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(new Set(Object.values(await versions()))).toEqual(new Set([3]));
    expect(await admin('SELECT id, status FROM admmgt.scripts ORDER BY id')).toEqual([1, 2, 3].map((id) => ({ id, status: 2 })));

    const expected = await catalogOn('local', TPL);
    expect(expected).toMatchObject({
      ledger: [1, 2, 3],
      newcolumn: 'character varying(10) not null',
      routines: ['tenant_label:f', 'testproc1:p'],
      parentrows: 5,
    });
    expect((expected as { partitions: string[] }).partitions.length).toBeGreaterThan(3);
    const placed = await placement();
    for (const t of TENANTS) {
      expect({ t, catalog: await catalogOn(placed[t] as Name, t) }).toEqual({ t, catalog: expected });
    }
    for (const n of NAMES) expect(await catalogOn(n, TPL)).toEqual(expected);

    // Reading a target through the control plane finds it on its own server.
    const inventory = async (...args: string[]) => (await admin<{ kind: string; name: string; detail: string }>(
      `SELECT * FROM admmgt.inventory(${args.map((_, i) => `$${i + 1}`).join(', ')}) ORDER BY 1, 2`, args));
    const tplInventory = await inventory(TPL);
    expect(tplInventory.some((r) => r.kind === 'partition')).toBe(true);
    expect(await inventory(TPL, 'west')).toEqual(tplInventory);
    expect(await inventory(TENANTS[4]!)).toEqual(tplInventory);

    // Retention runs on every server too (a plan: it only logs).
    await env.admin.query('CALL admmgt.applyLifecycle(p_plan => true, p_parallel => 4)');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await admin(`SELECT targets, failed FROM admmgt.runs WHERE operation = 'lifecycle' ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ targets: 34, failed: 0 }]);
  });

  it('a server that stops in the middle of a run: its tenants fail naming it, the others finish; a rerun completes them', async () => {
    const placed = await placement();
    const onWest = TENANTS.filter((t) => placed[t] === 'west');
    // One west tenant's batch waits until the server goes: it is cut off in the middle, whatever the machine's speed.
    const inFlight = onWest[4]!;
    await env.queryIn(TPL, `CREATE PROCEDURE mgttest.slow() LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(CASE WHEN current_database() = ${env.admin.escapeLiteral(inFlight)} THEN 120 ELSE 0.05 END); END $$`);
    await env.admin.query('CALL admmgt.refesh_stored_procedures(p_parallel => 4)');
    await env.addScript({ id: 4, description: 'slow', calls: ['call mgttest.slow()'] });
    expect(await admin(`SELECT server, count(DISTINCT dbname)::int AS n FROM admmgt.plan_scripts() GROUP BY 1 ORDER BY 1`)).toEqual([
      { server: 'east', n: 11 }, { server: 'local', n: 1 }, { server: 'north', n: 11 }, { server: 'west', n: 11 },
    ]);

    const runner = new pg.Client({ connectionString: env.adminUrl });
    const notices: string[] = [];
    runner.on('notice', (n) => notices.push(`${n.severity}: ${n.message}`));
    await runner.connect();
    const run = runner.query('CALL admmgt.applyScripts(p_parallel => 2)');
    try {
      // Stop west once its chosen tenant's batch runs there and two others of it have the script.
      let ready = false;
      for (let i = 0; i < 6000 && !ready; i++) {
        const [r] = await admin<{ n: number }>(
          `SELECT count(*)::int AS n FROM admmgt.vendor_db_settings WHERE server = 'west' AND NOT servertemplate AND scriptversion = 4`);
        const active = await on<{ n: number }>('west', 'postgres',
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'admmgt' AND state = 'active'`, [inFlight]);
        ready = r!.n >= 2 && active[0]!.n === 1;
        if (!ready) await new Promise((res) => setTimeout(res, 20));
      }
      expect(ready).toBe(true);
      await clusters.west.stop('fast');
      await run;
    } finally {
      await run.catch(() => {});
      await runner.end();
    }

    const v = await versions();
    for (const t of TENANTS.filter((x) => placed[x] !== 'west')) expect({ t, v: v[t] }).toEqual({ t, v: 4 });
    const westDone = onWest.filter((t) => v[t] === 4);
    const westLeft = onWest.filter((t) => v[t] === 3);
    expect(westDone.length).toBeGreaterThanOrEqual(2);
    expect(westLeft.length).toBeGreaterThan(0);
    expect(westDone.length + westLeft.length).toBe(10);
    const failed = await admin<{ dbname: string; server: string; message: string }>(
      `SELECT dbname, server, message FROM admmgt.failures WHERE operation = 'apply' ORDER BY dbname`);
    expect(failed.map((f) => f.dbname).sort()).toEqual([...westLeft, ...(v[`west:${TPL}`] === 3 ? [TPL] : [])].sort());
    // The tenant whose batch was cut off lost its connection; the later ones could not connect.
    expect(westLeft).toContain(inFlight);
    expect(failed.find((f) => f.dbname === inFlight)!.message).toMatch(/terminating connection due to administrator command/);
    for (const f of failed) {
      expect(f.server).toBe('west');
      expect(f.message).toMatch(new RegExp(`^server west, database ${f.dbname}: `));
    }
    expect(notices.filter((n) => n.startsWith('WARNING')).length).toBe(failed.length);
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 4')).toEqual([{ status: 1 }]);

    const status = await cli('status', '--url', env.adminUrl);
    expect(status.stdout).toMatch(/west\s+127\.0\.0\.1:\d+\s+10 tenants, template at version [34]\s+\d+ failure\(s\)/);
    expect(status.stdout).toMatch(/\(server west\) apply script 4: server west, database srv_t\d+: /);

    clusters.west = await startServer('west');
    // Its batch was rolled back as a whole: the tenant is at version 3 on both sides.
    expect(await on('west', inFlight, 'SELECT max(scriptid) AS v FROM admmgt.applied_scripts')).toEqual([{ v: 3 }]);
    await env.queryIn(TPL, `CREATE OR REPLACE PROCEDURE mgttest.slow() LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.05); END $$`);
    await env.admin.query('CALL admmgt.refesh_stored_procedures(p_parallel => 4)');
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 2)');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(new Set(Object.values(await versions()))).toEqual(new Set([4]));
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 4')).toEqual([{ status: 2 }]);
    for (const t of westLeft) {
      expect(await on<{ s: number[] }>('west', t, 'SELECT array_agg(scriptid ORDER BY scriptid) AS s FROM admmgt.applied_scripts'))
        .toEqual([{ s: [1, 2, 3, 4] }]);
    }
  });

  it('a server that is down when its first tenant is created: the copy fails naming it, the tenant waits; once it is up a rerun builds both', async () => {
    const south = await startServer('south');
    const c = new pg.Client({ connectionString: south.url });
    await c.connect();
    await c.query(`SET log_statement = 'none'; ALTER ROLE postgres PASSWORD ${c.escapeLiteral(PASSWORD)}`);
    await c.end();
    await south.stop('fast');
    // Registered while down, and closed to placement: only a row that names it goes there.
    await admin(`SELECT admmgt.add_server('south', '127.0.0.1', $1, 'postgres', $2, p_accepts_tenants => false, p_check => false)`,
      [south.port, PASSWORD]);
    await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status, server) VALUES ('srv_s1', 1, 'south')`);
    await admin(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('srv_p1', 1)`);
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.create_database()');

    const failed = await admin<{ dbname: string; server: string; operation: string; message: string }>(
      'SELECT dbname, server, operation, message FROM admmgt.failures');
    expect(failed).toEqual([{ dbname: TPL, server: 'south', operation: 'create',
      message: expect.stringMatching(/^server south, database postgres: could not establish connection: .*Connection refused/) }]);
    expect(env.notices).toContain('WARNING: admmgt create: tenant srv_s1 waits: the copy of the template on server south is not created yet');
    expect(await admin(`SELECT dbname, status, server FROM admmgt.vendor_db_settings WHERE dbname IN ('srv_s1', 'srv_p1') ORDER BY 1`)).toEqual([
      { dbname: 'srv_p1', status: 2, server: 'east' },
      { dbname: 'srv_s1', status: 1, server: 'south' },
    ]);

    clusters.south = await startCluster({ dir: south.dir });
    // While maintenance runs (here: another session holds its lock), no copy is built: it would meet it half built.
    const upkeep = new pg.Client({ connectionString: env.adminUrl });
    await upkeep.connect();
    try {
      await upkeep.query(`SELECT pg_advisory_lock(admmgt._lock_class(), admmgt._lock_key('maintain'))`);
      env.notices.length = 0;
      await env.admin.query('CALL admmgt.create_database()');
      expect(env.notices).toContainEqual(expect.stringMatching(
        new RegExp(`^WARNING: admmgt create: the copies of the template are not built now: maintenance or refresh is running: pid \\d+ `)));
      expect(await admin(`SELECT status FROM admmgt.vendor_db_settings WHERE dbname = 'srv_s1'`)).toEqual([{ status: 1 }]);
    } finally {
      await upkeep.end();
    }
    await env.admin.query('CALL admmgt.create_database()');
    // Building the copy let go of maintenance and refresh again: another session takes both at once.
    const other = new pg.Client({ connectionString: env.adminUrl });
    await other.connect();
    try {
      expect((await other.query(`SELECT pg_try_advisory_lock(admmgt._lock_class(), admmgt._lock_key('maintain')) AS m,
                                       pg_try_advisory_lock(admmgt._lock_class(), admmgt._lock_key('refresh')) AS r`)).rows)
        .toEqual([{ m: true, r: true }]);
    } finally {
      await other.end();
    }
    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => ${DEMO.lookaheadDays})`);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await admin(`SELECT k, v FROM (SELECT server || ':' || dbname AS k, scriptversion AS v, status FROM admmgt.vendor_db_settings
                          WHERE server = 'south') x WHERE status = 2 ORDER BY k`))
      .toEqual([{ k: 'south:srv_s1', v: 4 }, { k: `south:${TPL}`, v: 4 }]);
    const expected = await catalogOn('local', TPL);
    expect(await catalogOn('south', TPL)).toEqual(expected);
    expect(await catalogOn('south', 'srv_s1')).toEqual(expected);
  });

  it('a non-superuser operator (admmgt_operator + CREATEDB) runs every operation on every server through its own user mappings', async () => {
    const base = new URL(inject('pgUrl'));
    const port = Number(base.port || base.searchParams.get('port') || 5432);
    await admin(`DROP ROLE IF EXISTS srv_op; DROP ROLE IF EXISTS srv_dba`);
    await admin(`CREATE ROLE srv_op LOGIN CREATEDB PASSWORD ${env.admin.escapeLiteral(OP_PASSWORD)}; GRANT admmgt_operator TO srv_op`);
    // The role that owns the template and the tenants on local, as postgres does on the other servers.
    await admin(`CREATE ROLE srv_dba LOGIN SUPERUSER PASSWORD ${env.admin.escapeLiteral(PASSWORD)}`);
    // A DBA gives the operator its mappings, for local and for each server: which role it becomes
    // there is the DBA's choice; the caller itself stays an ordinary role.
    await admin(`SELECT admmgt.set_connection('127.0.0.1', $1, 'srv_dba', $2, 'srv_op')`, [port, PASSWORD]);
    for (const n of [...NAMES, 'south'] as Name[]) {
      await admin(`SELECT admmgt.add_server($1, '127.0.0.1', $2, 'postgres', $3, p_for_role => 'srv_op')`, [n, clusters[n].port, PASSWORD]);
    }
    // Registering again changes how a server is reached, not whether it is drained.
    expect(await admin(`SELECT name FROM admmgt.servers WHERE NOT accepts_tenants ORDER BY name`)).toEqual([{ name: 'local' }, { name: 'south' }]);
    const op = new pg.Client({ connectionString: `postgresql://srv_op:${encodeURIComponent(OP_PASSWORD)}@127.0.0.1:${port}/${env.adminDb}` });
    await op.connect();
    try {
      expect((await op.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows).toEqual([{ rolsuper: false }]);
      await op.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('srv_op1', 1), ('srv_op2', 1)`);
      await op.query('CALL admmgt.create_database()');
      await addScript(op, { id: 5, description: 'by the operator', addColumns: [
        { schema: 'mgttest', table: 'parenttable', column: { name: 'op_note', type: 'text' } }] });
      await op.query('CALL admmgt.applyScripts(p_parallel => 4)');
      await op.query(`CALL admmgt.applyMaintenance(t_numdays => ${DEMO.lookaheadDays}, p_parallel => 4)`);
      await op.query('CALL admmgt.refesh_stored_procedures(p_parallel => 4)');
    } finally {
      await op.end();
    }
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(new Set(Object.values(await versions()))).toEqual(new Set([5]));
    const placed = await placement();
    expect([placed.srv_op1, placed.srv_op2].sort()).toEqual(['north', 'west']);
    for (const t of ['srv_op1', 'srv_op2']) {
      expect(await on(placed[t] as Name, t, `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'mgttest.parenttable'::regclass AND attname = 'op_note'`))
        .toEqual([{ n: 1 }]);
    }
  });

  it('moving a tenant by hand: check_targets() and admmgt check report what disagrees with the row until it is right', async () => {
    const check = async (tenant?: string) => admin<{ dbname: string; server: string; problem: string | null }>(
      'SELECT dbname, server, problem FROM admmgt.check_targets($1)', [tenant ?? null]);
    expect(await check('srv_t02')).toEqual([{ dbname: 'srv_t02', server: 'east', problem: null }]);
    // The row is updated before the database is there.
    await admin(`UPDATE admmgt.vendor_db_settings SET server = 'north' WHERE dbname = 'srv_t02'`);
    expect((await check('srv_t02'))[0]!.problem)
      .toMatch(/^server north, database srv_t02: could not establish connection: .*database "srv_t02" does not exist/);
    // Restored without its database's privileges (here: a copy made by hand from north's copy of the template).
    await on('north', 'postgres', `CREATE DATABASE srv_t02 TEMPLATE ${TPL}`);
    expect(await check('srv_t02')).toEqual([{ dbname: 'srv_t02', server: 'north',
      problem: 'PUBLIC may connect: run REVOKE CONNECT, TEMPORARY ON DATABASE srv_t02 FROM PUBLIC on server north' }]);
    const r = await cli('check', '--server', 'north', '--url', env.adminUrl);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^checked 1\d target\(s\): 1 with a problem\n  srv_t02 \(server north\): PUBLIC may connect/);

    await on('north', 'postgres', 'REVOKE CONNECT, TEMPORARY ON DATABASE srv_t02 FROM PUBLIC');
    await on('east', 'postgres', 'DROP DATABASE srv_t02');
    const all = await check();
    expect(all.length).toBe(await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.targets').then((x) => x[0]!.n));
    expect(all.filter((x) => x.problem)).toEqual([]);
    expect((await cli('check', '--url', env.adminUrl)).code).toBe(0);
    await env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 1)');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await catalogOn('north', 'srv_t02')).toEqual(await catalogOn('north', TPL));
  });

  it('shows no password anywhere: not in a routine, the logs, the run records, a notice or a CLI output', async () => {
    const outputs: string[] = [];
    // One at a time: each replaces process.stdout.write while it runs.
    for (const args of [['status', '--json'], ['cluster', 'list'], ['apply', '--plan'], ['check']]) {
      const o = await cli(...args, '--url', env.adminUrl);
      expect(o.code).toBe(0);
      outputs.push(o.stdout + o.stderr);
    }
    const install = await cli('sql');
    expect(install.stdout).toMatch(/CREATE OR REPLACE FUNCTION admmgt\.add_server/);
    outputs.push(install.stdout);
    // The servers' password sits in 9 user mappings (postgres on 4 servers, srv_op on those and local); the operator's in none.
    for (const [needle, mappings] of [[PASSWORD, 9], [OP_PASSWORD, 0]] as const) {
      const hits = await admin<{ source: string; n: number }>(`
        SELECT 'routine' AS source, count(*)::int AS n FROM pg_proc WHERE pronamespace = 'admmgt'::regnamespace AND strpos(prosrc, $1) > 0
        UNION ALL SELECT 'script_log', count(*)::int FROM admmgt.script_log l WHERE strpos(l::text, $1) > 0
        UNION ALL SELECT 'target_results', count(*)::int FROM admmgt.target_results r WHERE strpos(r::text, $1) > 0
        UNION ALL SELECT 'runs', count(*)::int FROM admmgt.runs r WHERE strpos(r::text, $1) > 0
        UNION ALL SELECT 'servers', count(*)::int FROM admmgt.servers s WHERE strpos(s::text, $1) > 0
        UNION ALL SELECT 'server_status', count(*)::int FROM admmgt.server_status s WHERE strpos(s::text, $1) > 0
        UNION ALL SELECT 'foreign servers', count(*)::int FROM pg_foreign_server s WHERE strpos(s::text, $1) > 0`, [needle]);
      expect(hits.filter((h) => h.n > 0)).toEqual([]);
      const [m] = await admin<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_user_mappings WHERE strpos(array_to_string(umoptions, ' '), $1) > 0`, [needle]);
      expect(m!.n).toBe(mappings);
      expect(env.notices.filter((n) => n.includes(needle))).toEqual([]);
      for (const o of outputs) expect(o).not.toContain(needle);
    }
    // Nor in a server log, though every statement of the admin database's sessions since the first
    // test, and of the other servers, was logged (log_statement = all).
    const [{ dir }] = await admin<{ dir: string }>(`SELECT current_setting('data_directory') AS dir`) as [{ dir: string }];
    const logs = [path.join(path.dirname(dir), 'postgres.log'), ...Object.values(clusters).map((c) => path.join(c.dir, 'postgres.log'))];
    for (const file of logs) {
      const text = await readFile(file, 'utf8');
      expect(text.length, file).toBeGreaterThan(0);
      for (const needle of [PASSWORD, OP_PASSWORD]) expect(text.includes(needle), file).toBe(false);
    }
    expect(await readFile(path.join(clusters.east.dir, 'postgres.log'), 'utf8')).toMatch(/LOG: {2}statement: /);
    expect(await readFile(logs[0]!, 'utf8')).toContain('statement: CALL admmgt.applyScripts(p_parallel => 2)');
    // Also not in a form the URL or a quoting step could have made of it.
    for (const o of [...outputs, ...env.notices]) expect(o).not.toMatch(/wo"rd|wo%22rd|pa''ss/);
  });
});
