// What a test file gets: its own admin database with admmgt installed, and helpers to reach any
// database of the cluster. Every database a file makes starts with its prefix and is dropped at
// the end, so files can share one cluster.
import pg from 'pg';
import { inject } from 'vitest';
import { installControlPlane } from '../../src/install.js';

export interface TestEnv {
  prefix: string;
  adminDb: string;
  adminUrl: string;
  admin: pg.Client;
  notices: string[];
  urlFor(database: string): string;
  /** Run a query in another database of the cluster (a fresh connection, closed after). */
  queryIn<T extends pg.QueryResultRow = pg.QueryResultRow>(database: string, text: string, values?: unknown[]): Promise<T[]>;
  /** Create the template database with the given schemas and register it. */
  makeTemplate(name: string, schemas?: string[]): Promise<void>;
  databases(): Promise<string[]>;
  /** Register tenants as pending and create them with CALL admmgt.create_database(). */
  makeTenants(names: string[]): Promise<void>;
  /** The partitions of a partitioned table in a database: name -> bound (FOR VALUES ... or DEFAULT). */
  partitionBounds(database: string, parent: string): Promise<Record<string, string>>;
  /** Rows of a query on the admin connection. */
  rows<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  /** The error a statement on the admin connection raises (fails the test if it succeeds). */
  errorOf(text: string): Promise<pg.DatabaseError>;
  /** Wait until no session is connected to a database (a closed one may still be shutting down). */
  waitIdle(database: string): Promise<void>;
  close(): Promise<void>;
}

export function urlFor(base: string, database: string): string {
  const u = new URL(base);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

async function dropDatabases(server: pg.Client, prefix: string): Promise<void> {
  const { rows } = await server.query<{ datname: string }>(
    `SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname`, [prefix]);
  for (const r of rows) await server.query(`DROP DATABASE IF EXISTS "${r.datname.replace(/"/g, '""')}" WITH (FORCE)`);
}

export async function createEnv(prefix: string): Promise<TestEnv> {
  if (!/^[a-z][a-z0-9_]*$/.test(prefix)) throw new Error(`bad test prefix ${prefix}`);
  const base = inject('pgUrl');
  const server = new pg.Client({ connectionString: base });
  await server.connect();
  await dropDatabases(server, prefix + '_');
  const adminDb = `${prefix}_admin`;
  await server.query(`CREATE DATABASE ${adminDb}`);
  const adminUrl = urlFor(base, adminDb);
  const notices: string[] = [];
  const admin = new pg.Client({ connectionString: adminUrl });
  admin.on('notice', (n) => notices.push(`${n.severity}: ${n.message}`));
  await admin.connect();
  await installControlPlane(admin);

  const queryIn = async <T extends pg.QueryResultRow>(database: string, text: string, values?: unknown[]) => {
    const c = new pg.Client({ connectionString: urlFor(base, database) });
    await c.connect();
    try {
      return (await c.query<T>(text, values)).rows;
    } finally {
      await c.end();
    }
  };

  return {
    prefix,
    adminDb,
    adminUrl,
    admin,
    notices,
    urlFor: (db) => urlFor(base, db),
    queryIn,
    async makeTemplate(name, schemas = ['mgttest']) {
      await server.query(`CREATE DATABASE "${name}"`);
      for (const s of schemas) await queryIn(name, `CREATE SCHEMA "${s}"`);
      await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ($1, true, 2)`, [name]);
    },
    async databases() {
      const { rows } = await server.query<{ datname: string }>(
        `SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname`, [prefix + '_']);
      return rows.map((r) => r.datname);
    },
    async makeTenants(names) {
      await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT unnest($1::text[]), 1`, [names]);
      await admin.query('CALL admmgt.create_database()');
    },
    async partitionBounds(database, parent) {
      const rows = await queryIn<{ name: string; bound: string }>(database,
        `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`, [parent]);
      return Object.fromEntries(rows.map((r) => [r.name, r.bound]));
    },
    async rows<T extends pg.QueryResultRow>(text: string, values?: unknown[]) {
      return (await admin.query<T>(text, values)).rows;
    },
    async errorOf(text) {
      try {
        await admin.query(text);
      } catch (e) {
        return e as pg.DatabaseError;
      }
      throw new Error(`expected an error from: ${text}`);
    },
    async waitIdle(database) {
      for (let i = 0; i < 100; i++) {
        const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1`, [database]);
        if (rows[0]?.n === 0) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`${database} still has sessions`);
    },
    async close() {
      await admin.end().catch(() => {});
      await dropDatabases(server, prefix + '_');
      await server.end();
    },
  };
}
