// An autovacuum worker in a database is not a session in the way: CREATE DATABASE ... TEMPLATE,
// ALTER DATABASE ... RENAME and DROP DATABASE end it themselves. admmgt's own checks for sessions
// in a template (create_database), a spare database (the pool) and a dropped tenant once counted
// it, so a create could fail with 55006 naming a session with no user whenever autovacuum was
// vacuuming the template (the bench met it on a template with 300 copies). Autovacuum needs a
// cluster of its own here: the test makes it visit every second and vacuum one table page by page
// with the longest cost delay, so that a worker stays in the database for minutes.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../src/cluster.js';
import { installControlPlane } from '../src/install.js';
import { until } from './support/sessions.js';

const TPL = 'av_tpl';
const T1 = 'av_t1';
const T2 = 'av_t2';

let tmp: string;
let cluster: Cluster;
let admin: pg.Client;

async function on<T extends pg.QueryResultRow>(db: string, text: string, values?: unknown[]): Promise<T[]> {
  const c = new pg.Client({ connectionString: cluster.urlFor(db) });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

/** Wait until an autovacuum worker is connected to a database, and no other session is. */
async function autovacuumIn(db: string): Promise<void> {
  await until(`an autovacuum worker in ${db}`, async () => {
    const [r] = (await admin.query<{ av: number; other: number }>(
      `SELECT count(*) FILTER (WHERE backend_type = 'autovacuum worker')::int AS av,
              count(*) FILTER (WHERE backend_type <> 'autovacuum worker')::int AS other
         FROM pg_stat_activity WHERE datname = $1`, [db])).rows;
    return r!.av > 0 && r!.other === 0;
  }, 60_000);
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'admmgt-test-autovacuum-'));
  await chmod(tmp, 0o755); // the server runs as the postgres OS user
  cluster = await startCluster({
    dir: tmp,
    binDir: process.env.ADMMGT_TEST_BINDIR,
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', autovacuum_naptime: 1 },
  });
  admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  await installControlPlane(admin);
  await admin.query(`CREATE DATABASE ${TPL}`);
  // A table of dead rows that autovacuum takes minutes over: a cost limit of 1 and a delay of 100 ms a page.
  await on(TPL, `CREATE SCHEMA app;
    CREATE TABLE app.churn (id int, pad text) WITH (autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0,
                                                    autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1);
    INSERT INTO app.churn SELECT i, repeat('x', 200) FROM generate_series(1, 50000) i;
    DELETE FROM app.churn;`);
  await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ($1, true, 2)`, [TPL]);
  await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ($1, 1), ($2, 1)`, [T1, T2]);
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await cluster?.stop('immediate');
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('an autovacuum worker in the database', () => {
  it('does not keep create_database() from copying the template', async () => {
    await autovacuumIn(TPL);
    await admin.query('CALL admmgt.create_database()');
    const made = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname = ANY ($1) ORDER BY 1`, [[T1, T2]]);
    expect(made.rows.map((r) => r.datname)).toEqual([T1, T2]);
    const rows = await admin.query<{ dbname: string; status: number }>(
      `SELECT dbname, status FROM admmgt.vendor_db_settings WHERE NOT istemplate ORDER BY dbname`);
    expect(rows.rows).toEqual([{ dbname: T1, status: 2 }, { dbname: T2, status: 2 }]);
  }, 120_000);

  it('does not keep drop_tenant() from archiving a tenant', async () => {
    // The copy has the template's table and its settings; the counts autovacuum goes by are the database's own.
    await on(T1, `INSERT INTO app.churn SELECT i, repeat('x', 200) FROM generate_series(1, 50000) i; DELETE FROM app.churn`);
    await autovacuumIn(T1);
    await admin.query(`CALL admmgt.drop_tenant('${T1}', p_confirm => '${T1}')`);
    const left = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'av_t1%' ORDER BY 1`);
    expect(left.rows).toHaveLength(1);
    expect(left.rows[0]!.datname).not.toBe(T1);
    expect((await admin.query(`SELECT deleted FROM admmgt.vendor_db_settings WHERE dbname = $1`, [T1])).rows).toEqual([{ deleted: true }]);
  }, 120_000);
});
