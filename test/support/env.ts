// What a test file gets: its own admin database with admmgt installed, and helpers to reach any
// database of the cluster. Every database a file makes starts with its prefix and is dropped at
// the end, so files can share one cluster.
import pg from 'pg';
import { inject } from 'vitest';
import { installControlPlane } from '../../src/install.js';
import { markReadySql, scriptRowsSql, type ScriptSpec } from '../../templates/script.js';

/** A partition as its database's catalog has it: name, relkind (p if it is partitioned itself) and bound. */
export interface Partition {
  name: string;
  kind: string;
  bound: string;
}

/** What versions() leaves out or fills in; without options: every row, NULL as null. */
export interface VersionsOptions {
  /** The version of a row whose scriptversion is NULL (the template before its first script). */
  nullAs?: number;
  /** Only the rows that are created (status 2). */
  createdOnly?: boolean;
}

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
  /** The direct partitions of a partitioned table in a database, by name. */
  partitions(database: string, parent: string): Promise<Partition[]>;
  /** The direct partitions of every partitioned table of a schema, by parent and name. */
  partitions(database: string, of: { schema: string }): Promise<(Partition & { parent: string })[]>;
  /** The partitions of a partitioned table in a database: name -> bound (FOR VALUES ... or DEFAULT). */
  partitionBounds(database: string, parent: string): Promise<Record<string, string>>;
  /** Write a script's rows and mark it ready (unless ready is false) in one transaction, as a DBA does. */
  addScript(spec: ScriptSpec, ready?: boolean): Promise<void>;
  /**
   * The script version of every registered database, in registry order: lower(dbname) -> scriptversion;
   * a server's copy of the template is server:dbname.
   */
  versions(): Promise<Record<string, number | null>>;
  versions(options: VersionsOptions & { nullAs: number }): Promise<Record<string, number>>;
  versions(options: VersionsOptions): Promise<Record<string, number | null>>;
  /** Rows of a query on the admin connection. */
  rows<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  /** The error a statement on the admin connection raises (fails the test if it succeeds). */
  errorOf(text: string): Promise<pg.DatabaseError>;
  /** Wait until no session is connected to a database (a closed one may still be shutting down). */
  waitIdle(database: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function urlFor(base: string, database: string): string {
  const u = new URL(base);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

/** Write a script's rows and mark it ready (unless ready is false) in one transaction, on any client. */
export async function addScript(client: pg.Client, spec: ScriptSpec, ready = true): Promise<void> {
  try {
    await client.query(`BEGIN;\n${scriptRowsSql(spec).text}\n${ready ? markReadySql(spec.id).text : ''}\nCOMMIT;`);
  } catch (e) {
    await client.query('ROLLBACK');
    throw e;
  }
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

  function partitions(database: string, parent: string): Promise<Partition[]>;
  function partitions(database: string, of: { schema: string }): Promise<(Partition & { parent: string })[]>;
  function partitions(database: string, of: string | { schema: string }): Promise<Partition[]> {
    const bySchema = typeof of !== 'string';
    return queryIn<Partition>(database,
      `SELECT ${bySchema ? 'p.relname AS parent, ' : ''}c.relname AS name, c.relkind::text AS kind,
              pg_get_expr(c.relpartbound, c.oid) AS bound
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE ${bySchema ? `p.relnamespace = $1::regnamespace AND p.relkind = 'p'` : 'i.inhparent = $1::regclass'}
        ORDER BY p.relname, c.relname`, [bySchema ? of.schema : of]);
  }

  function versions(): Promise<Record<string, number | null>>;
  function versions(options: VersionsOptions & { nullAs: number }): Promise<Record<string, number>>;
  function versions(options: VersionsOptions): Promise<Record<string, number | null>>;
  async function versions(options: VersionsOptions = {}): Promise<Record<string, number | null>> {
    const { rows } = await admin.query<{ k: string; v: number | null }>(
      `SELECT CASE WHEN servertemplate THEN server || ':' || lower(dbname) ELSE lower(dbname) END AS k,
              coalesce(scriptversion, $1::int) AS v
         FROM admmgt.vendor_db_settings WHERE status = 2 OR NOT $2::boolean ORDER BY id`,
      [options.nullAs ?? null, options.createdOnly ?? false]);
    return Object.fromEntries(rows.map((r) => [r.k, r.v]));
  }

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
    partitions,
    async partitionBounds(database, parent) {
      return Object.fromEntries((await partitions(database, parent)).map((r) => [r.name, r.bound]));
    },
    addScript: (spec, ready) => addScript(admin, spec, ready),
    versions,
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
    async waitIdle(database, timeoutMs = 5_000) {
      for (let i = 0; i < timeoutMs / 50; i++) {
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
