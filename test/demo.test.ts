// The demo end to end, twice, on its own admin database; then the schema demo on another. It is
// the only file that uses the demo's fixed names (unitemplate, bigclient).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { runDemo } from '../src/commands/demo.js';
import type { Session } from '../src/context.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const lines: string[] = [];

function session(on: TestEnv = env): Session {
  return {
    client: on.admin,
    target: { config: { connectionString: on.adminUrl }, describe: 'test', url: on.adminUrl },
    out: (l) => lines.push(l),
  };
}

beforeAll(async () => {
  env = await createEnv('demo');
});
afterAll(async () => {
  for (const db of ['bigclient', 'unitemplate']) await env.admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await env.close();
});

async function catalog(db: string) {
  const q = <T extends pg.QueryResultRow>(text: string) => env.queryIn<T>(db, text);
  return {
    tables: (await q<{ relname: string; relkind: string }>(
      `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'mgttest' AND c.relkind IN ('r', 'p') ORDER BY 1`)).map((r) => `${r.relname}:${r.relkind}`),
    quarters: (await env.partitions(db, 'mgttest.test_table_x')).map((p) => p.name),
    fk: (await q<{ def: string }>(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'mgttest.childtable'::regclass AND contype = 'f'`)).map((r) => r.def),
    newcolumn: (await q<{ t: string; nn: boolean }>(
      `SELECT format_type(atttypid, atttypmod) AS t, attnotnull AS nn FROM pg_attribute
        WHERE attrelid = 'mgttest.parenttable'::regclass AND attname = 'newcolumn'`))[0],
    procs: (await q<{ proname: string }>(
      `SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'mgttest' AND p.prokind = 'p'`)).map((r) => r.proname),
    rows: Number((await q<{ c: string }>('SELECT count(*) AS c FROM mgttest.parenttable'))[0]?.c),
    ledger: (await q<{ scriptid: number }>('SELECT scriptid FROM admmgt.applied_scripts ORDER BY 1')).map((r) => r.scriptid),
  };
}

/** Every quarter start from the current quarter through the quarter holding today + 200 days. */
function expectedQuarters(): string[] {
  const q = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), Math.floor(d.getUTCMonth() / 3) * 3, 1));
  const today = new Date();
  const end = q(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + 200)));
  const out: string[] = [];
  for (let d = q(today); d <= end; d = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 3, 1))) {
    out.push(`test_table_x_p${d.toISOString().slice(0, 10).replace(/-/g, '')}`);
  }
  return out;
}

describe('admmgt demo', () => {
  it('leaves the template and bigclient with every object of the four scripts', async () => {
    const inventory = await runDemo(session());
    expect(inventory.find((r) => r.kind === 'rows' && r.name === 'mgttest.parenttable')?.detail).toBe('5');

    for (const db of ['unitemplate', 'bigclient']) {
      const c = await catalog(db);
      expect(c.tables).toEqual(['childtable:r', 'parenttable:r', 'test_table:p', 'test_table_a:r', 'test_table_x:p',
        ...expectedQuarters().map((q) => `${q}:r`)].sort());
      expect(c.quarters).toEqual(expectedQuarters());
      expect(c.fk).toEqual(['FOREIGN KEY (parentid) REFERENCES mgttest.parenttable(id) ON DELETE CASCADE']);
      expect(c.newcolumn).toEqual({ t: 'character varying(20)', nn: true });
      expect(c.procs).toEqual(['testproc1']);
      expect(c.rows).toBe(5);
      expect(c.ledger).toEqual([1, 2, 3, 4]);
      expect(await env.queryIn(db, `SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'mgttest.childtable_parentid'::regclass`))
        .toEqual([{ valid: true }]);
      expect(await env.queryIn(db, 'SELECT count(*)::int AS n FROM mgttest.parent_children')).toEqual([{ n: 5 }]);
    }
    expect(inventory.filter((r) => r.kind === 'index' || r.kind === 'view').map((r) => `${r.kind} ${r.name}`)).toEqual([
      'index mgttest.childtable_parentid', 'view mgttest.parent_children']);
    const { rows } = await env.admin.query('SELECT lower(dbname) AS db, status, scriptversion FROM admmgt.vendor_db_settings ORDER BY id');
    expect(rows).toEqual([{ db: 'unitemplate', status: 2, scriptversion: 4 }, { db: 'bigclient', status: 2, scriptversion: 4 }]);
    expect((await env.admin.query('SELECT id FROM admmgt.scripts WHERE status <> 2')).rows).toEqual([]);
  });

  it('runs again from a clean start and ends in the same state', async () => {
    lines.length = 0;
    await runDemo(session());
    expect(lines.some((l) => l.includes('earlier demo run was found'))).toBe(true);
    const c = await catalog('bigclient');
    expect(c.rows).toBe(5);
    expect(c.ledger).toEqual([1, 2, 3, 4]);
  });

  it('refuses to reset an admin database that holds other tenants', async () => {
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname) VALUES ('somebody_else')`);
    await expect(runDemo(session())).rejects.toThrow(/more than the demo \(tenant somebody_else\)/);
    await env.admin.query(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'somebody_else'`);
    expect(await env.queryIn('bigclient', 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});

describe('admmgt demo --schemas', () => {
  // Its own admin database: the template and the tenant are schemas of it.
  let schemaEnv: TestEnv;
  beforeAll(async () => {
    // The database demo above made databases of these names: this file owns them.
    for (const db of ['bigclient', 'unitemplate']) await env.admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    schemaEnv = await createEnv('demoschemas');
  });
  afterAll(async () => {
    await schemaEnv.close();
  });

  const q = <T extends pg.QueryResultRow>(text: string, values?: unknown[]) => schemaEnv.rows<T>(text, values);

  async function schemaCatalog(schema: string) {
    return {
      tables: (await q<{ t: string }>(`SELECT c.relname || ':' || c.relkind::text AS t FROM pg_class c
                 WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`, [schema])).map((r) => r.t),
      quarters: (await schemaEnv.partitions(schemaEnv.adminDb, `${schema}.test_table_x`)).map((p) => p.name),
      fk: (await q<{ def: string }>(`SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
                 WHERE conrelid = $1::regclass AND contype = 'f'`, [`${schema}.childtable`])).map((r) => r.def),
      rows: (await q<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}.parenttable`))[0]?.n,
      ledger: (await q<{ s: number }>(`SELECT scriptid AS s FROM admmgt.applied_schema_scripts WHERE schemaname = $1 ORDER BY 1`, [schema]))
        .map((r) => r.s),
    };
  }

  it('leaves schema bigclient of the admin database with every object of the four scripts, and makes no database', async () => {
    lines.length = 0;
    const inventory = await runDemo(session(schemaEnv), { schemas: true });
    expect(inventory.find((r) => r.kind === 'rows' && r.name === 'bigclient.parenttable')?.detail).toBe('5');
    expect(inventory.filter((r) => r.kind === 'index' || r.kind === 'view').map((r) => `${r.kind} ${r.name}`)).toEqual([
      'index bigclient.childtable_parentid', 'view bigclient.parent_children']);
    expect(lines).toContain('\n== 4. CALL admmgt.create_schema()');

    for (const schema of ['unitemplate', 'bigclient']) {
      const c = await schemaCatalog(schema);
      expect(c.tables).toEqual(['childtable:r', 'parenttable:r', 'test_table:p', 'test_table_a:r', 'test_table_x:p',
        ...expectedQuarters().map((x) => `${x}:r`)].sort());
      expect(c.quarters).toEqual(expectedQuarters());
      expect(c.fk).toEqual([`FOREIGN KEY (parentid) REFERENCES ${schema}.parenttable(id) ON DELETE CASCADE`]);
      expect(c.rows).toBe(5);
      expect(c.ledger).toEqual([1, 2, 3, 4]);
      expect(await q(`SELECT count(*)::int AS n FROM ${schema}.parent_children`)).toEqual([{ n: 5 }]);
    }
    // bigclient's copy of the procedure writes into its own table.
    expect((await q<{ src: string }>(`SELECT prosrc AS src FROM pg_proc WHERE oid = 'bigclient.testproc1'::regproc`))[0]?.src)
      .toMatch(/INSERT INTO bigclient\.parenttable/);
    expect(await q(`SELECT lower(dbname) AS name, kind, status, scriptversion FROM admmgt.vendor_db_settings ORDER BY id`)).toEqual([
      { name: 'unitemplate', kind: 'schema', status: 2, scriptversion: 4 },
      { name: 'bigclient', kind: 'schema', status: 2, scriptversion: 4 },
    ]);
    expect(await q(`SELECT datname FROM pg_database WHERE datname IN ('bigclient', 'unitemplate')`)).toEqual([]);
    expect(await q(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE commstat ILIKE 'CREATE DATABASE%'`)).toEqual([{ n: 0 }]);
  });

  it('runs again from a clean start, dropping the schemas it made, and ends in the same state', async () => {
    lines.length = 0;
    await runDemo(session(schemaEnv), { schemas: true });
    expect(lines.some((l) => l.includes('earlier demo run was found: dropping its databases, schemas and rows'))).toBe(true);
    const c = await schemaCatalog('bigclient');
    expect(c.rows).toBe(5);
    expect(c.ledger).toEqual([1, 2, 3, 4]);
    expect(await q(`SELECT datname FROM pg_database WHERE datname IN ('bigclient', 'unitemplate')`)).toEqual([]);
  });

  it('refuses to reset a schema of the same name that it did not make', async () => {
    await q(`DROP SCHEMA bigclient CASCADE; DELETE FROM admmgt.vendor_db_settings WHERE dbname = 'BigClient'; CREATE SCHEMA bigclient`);
    await expect(runDemo(session(schemaEnv), { schemas: true })).rejects.toThrow(/schema\(s\) bigclient of the admin database exist but were not made by the demo/);
    expect(await q(`SELECT to_regnamespace('bigclient') IS NOT NULL AS kept, to_regnamespace('unitemplate') IS NOT NULL AS tpl`))
      .toEqual([{ kept: true, tpl: true }]);
  });
});
