// Targets on a second registered server. Schema tenants in a database of that server run the
// later original tool's psql workflow beside a schema tenant of the admin database, and are read,
// checked and offboarded there; a typed default that would share the template's sequence is
// refused. Then a database fleet that spans both servers (a copy of the template on the other
// one) rolls two scripts back, and a tenant made afterwards on the other server starts at the
// lower version.
// Every database of this file, on either cluster, starts with schsrv.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, stopCluster, type Cluster } from '../src/cluster.js';
import type { ScriptSpec } from '../templates/script.js';
import { cli } from './support/cli.js';
import { addScript, createEnv, type TestEnv } from './support/env.js';
import { ONE, THREE, TWO } from './support/rollback-scripts.js';
import { expectOwnObjects, psqlSession, schemaCatalog, schemaWorkflow } from './support/original-workflow.js';

const PASSWORD = 'schsrv-far-pw';
const T = 'unitemplate';
const SHARD = 'schsrv_shard';

// Another server reaches the admin cluster's 127.0.0.1 only when both run on this machine.
const remoteAdmin = Boolean(process.env.ADMMGT_TEST_URL) || process.env.ADMMGT_TEST_PROVIDER === 'testcontainers';

let tmp: string;
let far: Cluster | undefined;
let schemaEnv: TestEnv;
let dbEnv: TestEnv;

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>;

/** A query in a database of the other server (a fresh connection, closed after). */
const onFar = (database: string): Query => async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
  const c = new pg.Client({ connectionString: far!.urlFor(database) });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
};

async function register(env: TestEnv): Promise<void> {
  await env.rows(`SELECT admmgt.add_server('far', '127.0.0.1', $1, 'postgres', $2)`, [far!.port, PASSWORD]);
}

beforeAll(async () => {
  if (remoteAdmin) return;
  tmp = await mkdtemp(path.join(os.tmpdir(), 'admmgt-test-schsrv-'));
  // The server runs as the postgres OS user when this runs as root: it must reach its folder.
  await chmod(tmp, 0o755);
  far = await startCluster({
    dir: path.join(tmp, 'far'),
    binDir: process.env.ADMMGT_TEST_BINDIR || undefined,
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
  });
  // Over 127.0.0.1 it asks for a password (scram-sha-256).
  await onFar('postgres')(`SET log_statement = 'none'; ALTER ROLE postgres PASSWORD '${PASSWORD}'`);
  schemaEnv = await createEnv('schsrv');
  dbEnv = await createEnv('schsrvdb');
}, 180_000);

afterAll(async () => {
  if (remoteAdmin) return;
  const steps: (() => Promise<unknown>)[] = [
    () => far!.stop('immediate'),
    () => stopCluster(path.join(tmp, 'far')),
    () => schemaEnv?.close(),
    () => dbEnv?.close(),
    () => rm(tmp, { recursive: true, force: true }),
  ];
  for (const step of steps) await step().catch(() => {});
});

describe.skipIf(remoteAdmin)('schema tenants in a database of another server', () => {
  let psqlRun: Awaited<ReturnType<typeof psqlSession>>;
  const env = () => schemaEnv;
  const shard = () => onFar(SHARD);

  beforeAll(async () => {
    psqlRun = await psqlSession();
    await register(schemaEnv);
    // The database that holds them is made by its DBA, as on the admin's own server.
    await onFar('postgres')(`CREATE DATABASE ${SHARD}`);
  });
  afterAll(() => psqlRun?.close());

  it('run the psql workflow of the original tool: every object in their own schema at version 5, reported by status and check', async () => {
    const out = await psqlRun.run(env().adminUrl, `
      INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('${T}', true, 1);
      INSERT INTO admmgt.vendor_db_settings (dbname, server, schema_db) VALUES ('BigClient', 'far', '${SHARD}');
      INSERT INTO admmgt.vendor_db_settings (dbname) VALUES ('HomeClient');
      UPDATE admmgt.vendor_db_settings SET status = 1 WHERE dbname IN ('BigClient', 'HomeClient');
      ${schemaWorkflow(T, `INSERT INTO admmgt.vendor_db_settings (dbname, status, server, schema_db) VALUES ('LateClient', 1, 'far', '${SHARD}');`)}
    `);
    expect(out).not.toMatch(/WARNING|ERROR/);
    expect(await env().rows('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await env().rows(`SELECT lower(dbname) AS name, kind, server, status, scriptversion AS version FROM admmgt.vendor_db_settings ORDER BY id`)).toEqual([
      { name: T, kind: 'schema', server: 'local', status: 2, version: 5 },
      { name: 'bigclient', kind: 'schema', server: 'far', status: 2, version: 5 },
      { name: 'homeclient', kind: 'schema', server: 'local', status: 2, version: 5 },
      { name: 'lateclient', kind: 'schema', server: 'far', status: 2, version: 5 },
    ]);

    const template = await schemaCatalog(env().rows, T);
    const where: [string, Query][] = [[T, env().rows], ['homeclient', env().rows], ['bigclient', shard()], ['lateclient', shard()]];
    for (const [schema, query] of where) {
      expectOwnObjects(await schemaCatalog(query, schema), template, schema, T);
    }
    // The far tenants' ledger is in the database that holds them, on their server; none of them in the admin database.
    expect(await shard()(`SELECT schemaname::text AS s, array_agg(scriptid ORDER BY scriptid) AS ids FROM admmgt.applied_schema_scripts GROUP BY 1 ORDER BY 1`))
      .toEqual([{ s: 'bigclient', ids: [1, 2, 3, 4, 5] }, { s: 'lateclient', ids: [1, 2, 3, 4, 5] }]);
    expect(await env().rows(`SELECT to_regnamespace('bigclient') AS b, to_regnamespace('lateclient') AS l`)).toEqual([{ b: null, l: null }]);
    // No template copy and no database is made for schema tenants: they need none.
    expect(await env().rows(`SELECT count(*)::int AS n FROM admmgt.vendor_db_settings WHERE servertemplate`)).toEqual([{ n: 0 }]);
    expect(await onFar('postgres')(`SELECT datname FROM pg_database WHERE datname LIKE 'schsrv%' ORDER BY 1`)).toEqual([{ datname: SHARD }]);

    expect(await env().rows(`SELECT dbname, server, kind, scriptversion, failures::int FROM admmgt.tenant_status ORDER BY id`)).toEqual([
      { dbname: T, server: 'local', kind: 'schema', scriptversion: 5, failures: 0 },
      { dbname: 'bigclient', server: 'far', kind: 'schema', scriptversion: 5, failures: 0 },
      { dbname: 'homeclient', server: 'local', kind: 'schema', scriptversion: 5, failures: 0 },
      { dbname: 'lateclient', server: 'far', kind: 'schema', scriptversion: 5, failures: 0 },
    ]);
    expect(await env().rows(`SELECT dbname, server, registry_version, ledger_version, public_connect, problem FROM admmgt.check_targets(p_server => 'far') ORDER BY 1`))
      .toEqual(['bigclient', 'lateclient'].map((dbname) => ({ dbname, server: 'far', registry_version: 5, ledger_version: 5, public_connect: false, problem: null })));
    const status = await cli('status', '--url', env().adminUrl);
    expect(status.code).toBe(0);
    for (const t of ['bigclient', 'lateclient']) expect(status.stdout).toMatch(new RegExp(`\\n  ${t} +schema +far +created +version 5 `));
    expect(status.stdout).toMatch(/\n {2}far +127\.0\.0\.1:\d+ +2 tenants, schema targets only \(they need no copy of the template\)\n/);
    const check = await cli('check', '--url', env().adminUrl);
    expect([check.code, check.stdout]).toEqual([0, expect.stringMatching(/^checked 4 target\(s\): 0 with a problem/)]);
  }, 120_000);

  it('a check on the far server finds a tenant whose ledger there disagrees with the registry', async () => {
    await shard()(`DELETE FROM admmgt.applied_schema_scripts WHERE schemaname = 'lateclient' AND scriptid = 5`);
    try {
      expect(await env().rows(`SELECT dbname, ledger_version, problem IS NOT NULL AS problem FROM admmgt.check_targets('lateclient')`))
        .toEqual([{ dbname: 'lateclient', ledger_version: 4, problem: true }]);
    } finally {
      await shard()(`INSERT INTO admmgt.applied_schema_scripts (schemaname, scriptid) VALUES ('lateclient', 5)`);
    }
  });
  it("refuses a typed column whose default is nextval('<template schema>.seq'), which every tenant would share, before any schema is touched", async () => {
    const before = await env().rows(`SELECT dbname, scriptversion FROM admmgt.vendor_db_settings ORDER BY id`);
    await env().addScript({ id: 6, description: 'a sequence', sql: [{ seq: 1, body: `CREATE SEQUENCE ${T}.ticket_seq` }] });
    const numbered = (column: ScriptSpec['tables']) => ({ id: 7, description: 'numbered tickets', tables: column });
    await env().addScript(numbered([{ schema: T, name: 'tickets', columns: [{ name: 'n', type: 'bigint', default: `nextval('${T}.ticket_seq')` }] }]));
    const err = await env().errorOf('CALL admmgt.applyScripts(0)');
    expect([err.code, err.message]).toEqual(['3F000',
      expect.stringMatching(new RegExp(`^admmgt: admmgt\\.script_tables id \\d+ names the template schema ${T} inside a string: '${T}\\.ticket_seq'$`))]);
    expect(err.hint).toContain('identity column');
    expect(await env().rows(`SELECT dbname, scriptversion FROM admmgt.vendor_db_settings ORDER BY id`)).toEqual(before);
    expect(await env().rows(`SELECT to_regclass('homeclient.ticket_seq') AS s, to_regclass('${T}.ticket_seq') AS t`)).toEqual([{ s: null, t: null }]);

    // What the hint says: an identity column, whose sequence each tenant's table owns.
    await env().admin.query(`DELETE FROM admmgt.script_table_columns WHERE scriptid = 7; DELETE FROM admmgt.script_tables WHERE scriptid = 7;
                             DELETE FROM admmgt.scripts WHERE id = 7`);
    await env().addScript(numbered([{ schema: T, name: 'tickets', columns: [{ name: 'n', type: 'bigint', identity: true }, { name: 'note', type: 'text' }] }]));
    await env().admin.query('CALL admmgt.applyScripts(0)');
    expect(await env().rows('SELECT * FROM admmgt.failures')).toEqual([]);
    const where: [string, Query][] = [[T, env().rows], ['homeclient', env().rows], ['bigclient', shard()]];
    for (const [schema, query] of where) {
      expect(await query(`SELECT pg_get_serial_sequence('${schema}.tickets', 'n') AS s, to_regclass('${schema}.ticket_seq')::text AS own`))
        .toEqual([{ s: `${schema}.tickets_n_seq`, own: `${schema}.ticket_seq` }]);
    }
  });
  it('inventory reads a far tenant on its server, and drop_tenant archives one there with its ledger rows', async () => {
    const inv = await env().rows<{ kind: string; name: string; detail: string }>(`SELECT kind, name, detail FROM admmgt.inventory('bigclient')`);
    expect(inv).toContainEqual({ kind: 'rows', name: 'bigclient.parenttable', detail: '5' });
    expect(inv.filter((r) => r.kind === 'partition').length).toBeGreaterThan(3);
    expect(inv.filter((r) => !r.name.startsWith('bigclient.'))).toEqual([]);

    await env().admin.query(`CALL admmgt.drop_tenant('lateclient', p_confirm => 'lateclient')`);
    const [{ day }] = await env().rows<{ day: string }>(`SELECT to_char(current_date, 'YYYYMMDD') AS day`) as [{ day: string }];
    expect(await shard()(`SELECT nspname::text AS n FROM pg_namespace WHERE nspname LIKE 'lateclient%'`)).toEqual([{ n: `lateclient_archived_${day}` }]);
    expect(await shard()(`SELECT count(*)::int AS n FROM admmgt.applied_schema_scripts WHERE schemaname = 'lateclient'`)).toEqual([{ n: 0 }]);
    expect(await env().rows(`SELECT deleted FROM admmgt.vendor_db_settings WHERE dbname = 'LateClient'`)).toEqual([{ deleted: true }]);
    expect(await env().rows('SELECT * FROM admmgt.failures')).toEqual([]);
  });
});

/** What a database's app schema holds, with its ledger, read on its own server. */
async function dbCatalog(query: Query): Promise<string[]> {
  return (await query<{ line: string }>(`
    SELECT 'table ' || c.relname AS line FROM pg_class c WHERE c.relnamespace = 'mgttest'::regnamespace AND c.relkind IN ('r', 'p')
    UNION ALL
    SELECT format('column %s.%s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod))
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'mgttest'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     WHERE c.relnamespace = 'mgttest'::regnamespace
    UNION ALL
    SELECT 'ledger ' || scriptid FROM admmgt.applied_scripts
    ORDER BY 1`)).map((r) => r.line);
}

describe.skipIf(remoteAdmin)('a rollback on a fleet over two servers', () => {
  const env = () => dbEnv;
  const TPL = 'schsrvdb_tpl';
  const HOME = 'schsrvdb_home';
  const AWAY = 'schsrvdb_away';
  const LATE = 'schsrvdb_late';
  const at = async () => ({
    template: await dbCatalog((t, v) => env().queryIn(TPL, t, v)),
    home: await dbCatalog((t, v) => env().queryIn(HOME, t, v)),
    copy: await dbCatalog(onFar(TPL)),
    away: await dbCatalog(onFar(AWAY)),
  });

  it('takes the template, its copy on the other server and the tenants on both back two scripts; a tenant made there afterwards starts at 1', async () => {
    await register(env());
    await env().makeTemplate(TPL);
    await addScript(env().admin, ONE);
    await env().admin.query('CALL admmgt.applyScripts()');
    await env().admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, server) VALUES ($1, 1, 'local'), ($2, 1, 'far')`, [HOME, AWAY]);
    await env().admin.query('CALL admmgt.create_database()');
    expect(await env().rows('SELECT dbname, server, message FROM admmgt.failures')).toEqual([]);
    const at1 = await at();
    expect(at1.template).toEqual(['column orders.id bigint', 'column orders.total numeric', 'index CREATE UNIQUE INDEX orders_pkey ON mgttest.orders USING btree (id)',
      'ledger 1', 'table orders']);
    expect(at1).toEqual({ template: at1.template, home: at1.template, copy: at1.template, away: at1.template });

    await addScript(env().admin, TWO);
    await addScript(env().admin, THREE);
    await env().admin.query('CALL admmgt.applyScripts()');
    expect(await env().versions({ nullAs: 0, createdOnly: true })).toEqual({ [TPL]: 3, [HOME]: 3, [`far:${TPL}`]: 3, [AWAY]: 3 });
    const at3 = await at();
    expect(at3.copy).toContain('table customers');
    expect(at3).toEqual({ template: at3.template, home: at3.template, copy: at3.template, away: at3.template });

    await env().admin.query('CALL admmgt.rollbackScripts(p_to => 1)');
    expect(await env().rows('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await env().versions({ nullAs: 0, createdOnly: true })).toEqual({ [TPL]: 1, [HOME]: 1, [`far:${TPL}`]: 1, [AWAY]: 1 });
    expect(await at()).toEqual(at1);
    // On each target, the copy on the other server among them.
    expect(await env().rows(`SELECT server, dbname, array_agg(DISTINCT scriptid ORDER BY scriptid) AS ids FROM admmgt.script_log
                              WHERE operation = 'rollback' AND outcome = 'ok' GROUP BY 1, 2 ORDER BY 1, 2`)).toEqual([
      { server: 'far', dbname: AWAY, ids: [2, 3] },
      { server: 'far', dbname: TPL, ids: [2, 3] },
      { server: 'local', dbname: HOME, ids: [2, 3] },
      { server: 'local', dbname: TPL, ids: [2, 3] },
    ]);

    // A tenant made now on the other server is a copy of that server's copy: at 1.
    await env().admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, server) VALUES ($1, 1, 'far')`, [LATE]);
    await env().admin.query('CALL admmgt.create_database()');
    expect(await env().rows(`SELECT status, scriptversion FROM admmgt.vendor_db_settings WHERE dbname = $1`, [LATE])).toEqual([{ status: 2, scriptversion: 1 }]);
    expect(await dbCatalog(onFar(LATE))).toEqual(at1.template);
    expect(await env().rows(`SELECT dbname, ledger_version, problem FROM admmgt.check_targets(p_server => 'far') ORDER BY 1`)).toEqual([
      { dbname: AWAY, ledger_version: 1, problem: null },
      { dbname: LATE, ledger_version: 1, problem: null },
      { dbname: TPL, ledger_version: 1, problem: null },
    ]);
  }, 120_000);
});
