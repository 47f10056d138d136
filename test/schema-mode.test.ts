// Schema per tenant, as the later original tool's users type it in psql: the template is a
// schema of the admin database, script rows name it, and every tenant gets its own copy of each
// object in a schema of its own. Five scripts of the original demo, then a tenant made after the
// last one. Everything lives in this file's admin database; only login roles are cluster-wide,
// and they start with schemamode_.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';
import { expectOwnObjects, psqlSession, schemaCatalog, schemaWorkflow } from './support/original-workflow.js';

let env: TestEnv;
let psqlRun: Awaited<ReturnType<typeof psqlSession>>;
const T = 'unitemplate';

const psql = (text: string) => psqlRun.run(env.adminUrl, text);

async function catalog(schema: string) {
  return {
    ...(await schemaCatalog(<R extends pg.QueryResultRow>(text: string, values?: unknown[]) => env.rows<R>(text, values), schema)),
    ledger: (await env.rows<{ s: number }>(`SELECT scriptid AS s FROM admmgt.applied_schema_scripts WHERE schemaname = $1 ORDER BY 1`, [schema]))
      .map((r) => r.s),
  };
}

beforeAll(async () => {
  env = await createEnv('schemamode');
  psqlRun = await psqlSession();
});
afterAll(async () => {
  await psqlRun.close();
  await env.close();
});

describe('schema per tenant, typed in psql', () => {
  it('leaves the template schema, bigclient and a tenant made after the last script each at version 5 with every object in its own schema', async () => {
    const out = await psql(`
      INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('${T}', true, 1);
      INSERT INTO admmgt.vendor_db_settings (dbname) VALUES ('BigClient');
      UPDATE admmgt.vendor_db_settings SET status = 1 WHERE dbname = 'BigClient';
      ${schemaWorkflow(T, `INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('LateClient', 1);`)}
    `);
    expect(out).not.toMatch(/WARNING/);
    expect(await env.rows(`SELECT lower(dbname) AS name, kind, status, scriptversion AS version FROM admmgt.vendor_db_settings ORDER BY id`)).toEqual([
      { name: T, kind: 'schema', status: 2, version: 5 },
      { name: 'bigclient', kind: 'schema', status: 2, version: 5 },
      { name: 'lateclient', kind: 'schema', status: 2, version: 5 },
    ]);
    // No database was made: the tenants are schemas of the admin database.
    expect(await env.rows(`SELECT datname FROM pg_database WHERE datname IN ('lateclient', '${env.prefix}_${T}')`)).toEqual([]);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE commstat ILIKE 'CREATE DATABASE%'`)).toEqual([{ n: 0 }]);

    const template = await catalog(T);
    for (const schema of [T, 'bigclient', 'lateclient']) {
      const c = await catalog(schema);
      expectOwnObjects(c, template, schema, T);
      expect(c.ledger).toEqual([1, 2, 3, 4, 5]);
    }
  });

  it('refuses, naming the row and before any schema is touched, a script row that would reach outside the tenant\'s schema', async () => {
    const before = await env.rows(`SELECT dbname, scriptversion FROM admmgt.vendor_db_settings ORDER BY id`);
    const cases: [ScriptSpec, RegExp][] = [
      [{ id: 6, description: 'another schema', tables: [{ schema: 'public', name: 'shared', columns: [{ name: 'id', type: 'int' }] }] },
        /admmgt\.script_tables id \d+ names schema 'public', not the template schema unitemplate/],
      [{ id: 6, description: 'another tenant', sql: [{ seq: 1, body: 'INSERT INTO bigclient.parenttable (newcolumn) VALUES (1)' }] },
        /admmgt\.script_sql id \d+ names schema bigclient, which is another schema target/],
      [{ id: 6, description: 'dynamic SQL', sql: [{ seq: 1, body: `DO $$BEGIN EXECUTE 'INSERT INTO ${T}.parenttable (newcolumn) VALUES (1)'; END$$` }] },
        /admmgt\.script_sql id \d+ names the template schema unitemplate inside a string/],
      // A typed row's own text (a view's query) is checked like a step.
      [{ id: 6, description: 'a view of another tenant', views: [{ schema: T, name: 'peek', query: 'SELECT p.id FROM bigclient.parenttable p' }] },
        /admmgt\.script_views id \d+ names schema bigclient, which is another schema target/],
    ];
    for (const [spec, message] of cases) {
      await env.addScript(spec);
      const err = await env.errorOf('CALL admmgt.applyScripts(0)');
      expect(err.code).toBe('3F000');
      expect(err.message).toMatch(message);
      await env.admin.query(`DELETE FROM admmgt.script_sql WHERE scriptid = 6; DELETE FROM admmgt.script_views WHERE scriptid = 6; DELETE FROM admmgt.script_table_columns WHERE scriptid = 6;
                             DELETE FROM admmgt.script_tables WHERE scriptid = 6; DELETE FROM admmgt.scripts WHERE id = 6`);
    }
    expect(await env.rows(`SELECT dbname, scriptversion FROM admmgt.vendor_db_settings ORDER BY id`)).toEqual(before);
    expect(await env.rows(`SELECT to_regclass('public.shared') AS t`)).toEqual([{ t: null }]);
  });

  it('copies routines and views into every tenant schema, pointing what is code at its own schema, and warns of what stays in a string', async () => {
    await env.admin.query(`
      CREATE FUNCTION ${T}.children(p_id bigint) RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, ${T} AS $f$
      BEGIN
          RETURN (SELECT count(*) FROM childtable c WHERE c.parentid = p_id);
      END $f$;
      CREATE FUNCTION ${T}.dynamic() RETURNS bigint LANGUAGE plpgsql AS $f$
      DECLARE v bigint;
      BEGIN
          EXECUTE 'SELECT count(*) FROM ${T}.parenttable' INTO v;
          RETURN v;
      END $f$;
      CREATE VIEW ${T}.named AS SELECT p.id, p.newcolumn FROM ${T}.parenttable p WHERE p.newcolumn IS NOT NULL;`);
    env.notices.length = 0;
    await env.admin.query('CALL admmgt.refesh_stored_procedures(0)');
    expect(env.notices.filter((n) => n.startsWith('WARNING'))).toEqual([
      `WARNING: admmgt refresh: ${T}.dynamic keeps 1 reference(s) to the template schema ${T} that it cannot rewrite: 'SELECT count(*) FROM ${T}.parenttable'`,
    ]);
    await env.admin.query('CALL admmgt.refesh_views(0)');
    for (const schema of ['bigclient', 'lateclient']) {
      const [fn] = await env.rows<{ config: string[] }>(`SELECT proconfig AS config FROM pg_proc WHERE oid = '${schema}.children(bigint)'::regprocedure`);
      expect(fn!.config).toEqual([`search_path=pg_catalog, ${schema}`]);
      const [view] = await env.rows<{ def: string }>(`SELECT pg_get_viewdef('${schema}.named'::regclass) AS def`);
      expect(view!.def).toContain(`FROM ${schema}.parenttable p`);
      expect(view!.def).not.toContain(T);
      // The copy of the dynamic one still counts the template's rows: what the warning said.
      await env.admin.query(`INSERT INTO ${T}.parenttable (newcolumn) VALUES ('extra')`);
      expect(await env.rows(`SELECT ${schema}.dynamic()::int AS n, (SELECT count(*)::int FROM ${schema}.parenttable) AS own`))
        .toEqual([{ n: await env.rows<{ n: number }>(`SELECT count(*)::int AS n FROM ${T}.parenttable`).then((r) => r[0]!.n), own: 5 }]);
    }
  });

  it('refuses t_separatedb other than 0 or 1', async () => {
    const err = await env.errorOf('CALL admmgt.applyScripts(2)');
    expect([err.code, err.message]).toEqual(['22023', 'admmgt: applyScripts was given t_separatedb => 2']);
  });
});

describe('upkeep of schema targets', () => {
  it('plans each schema target\'s own statements', async () => {
    await env.addScript({ id: 6, description: 'one more column', addColumns: [{ schema: T, table: 'newtable', column: { name: 'extra', type: 'int' } }] });
    const plan = await env.rows<{ dbname: string; stmt: string }>(`SELECT dbname, stmt FROM admmgt.plan_scripts() WHERE stmt LIKE 'ALTER TABLE%'`);
    expect(plan).toEqual([T, 'bigclient', 'lateclient'].map((s) => ({ dbname: s, stmt: `ALTER TABLE ${s}.newtable ADD COLUMN extra int` })));
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.rows(`SELECT count(*)::int AS n FROM pg_attribute WHERE attname = 'extra' AND attrelid::regclass::text LIKE '%.newtable'`)).toEqual([{ n: 3 }]);
  });

  it('marks a script applied by hand in a schema target\'s own ledger rows', async () => {
    await env.addScript({ id: 7, description: 'done by hand', sql: [{ seq: 1, body: `CREATE TABLE ${T}.by_hand (id int)` }] });
    await env.admin.query(`CALL admmgt.mark_script_applied('bigclient', 7, 'a DBA ran it')`);
    expect(await env.rows(`SELECT schemaname::text AS s FROM admmgt.applied_schema_scripts WHERE scriptid = 7`)).toEqual([{ s: 'bigclient' }]);
    expect(await env.rows(`SELECT scriptversion AS v FROM admmgt.vendor_db_settings WHERE dbname = 'BigClient'`)).toEqual([{ v: 7 }]);
    await env.admin.query('CALL admmgt.applyScripts(0)');
    expect(await env.rows(`SELECT n.nspname AS s FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'by_hand' ORDER BY 1`))
      .toEqual([{ s: 'lateclient' }, { s: T }]);
  });

  it('applies retention in each schema target\'s own partitions', async () => {
    const before = await catalog('bigclient');
    await env.admin.query(`CALL admmgt.applyLifecycle(p_asof => current_date + 400)`);
    const logged = await env.rows<{ dbname: string; line: string }>(
      `SELECT dbname, commstat AS line FROM admmgt.script_log WHERE operation = 'lifecycle' AND commstat LIKE 'drop %' ORDER BY id`);
    expect(logged.length).toBeGreaterThan(0);
    for (const schema of [T, 'bigclient', 'lateclient']) {
      const own = logged.filter((l) => l.dbname === schema).map((l) => l.line);
      expect(own.length).toBeGreaterThan(0);
      expect(own.every((l) => l.startsWith(`drop ${schema}.test_table_x_p`))).toBe(true);
      const c = await catalog(schema);
      expect(c.partitions.length).toBe(before.partitions.length - own.length * 2);
    }
  });
  it('check compares the schema targets with the template schema too: the script marked applied by hand in bigclient is all that differs', async () => {
    // Routines with the template's name in a string (dynamic()), own search_paths, views and partitions are no drift.
    await env.admin.query('CALL admmgt.detectDrift()');
    expect(await env.rows(`SELECT dbname, kind, object FROM admmgt.drift ORDER BY dbname, object`))
      .toEqual([{ dbname: 'bigclient', kind: 'missing', object: 'table (schema).by_hand' }]);
    const r = await cli('check', '--url', env.adminUrl);
    expect([r.code, r.stderr]).toEqual([3, expect.stringContaining('1 drifted from the template')]);
    expect(r.stdout).toMatch(/^checked \d+ target\(s\): 0 with a problem/);
    expect(r.stdout).toMatch(/\nrun \d+: 2 target\(s\) fingerprinted, 1 drifted, 0 cannot be compared\n  bigclient \(server local, version 7\):\n    missing   table \(schema\)\.by_hand\n/);
  });
});

describe('schema targets in another database', () => {
  it('are made, updated and refreshed in the database schema_db names, with the ledger of that database', async () => {
    const shard = `${env.prefix}_shard1`;
    await env.admin.query(`CREATE DATABASE ${shard}`);
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, kind, schema_db) VALUES ('farclient', 1, 'schema', '${shard}')`);
    await env.admin.query('CALL admmgt.create_schema()');
    const [row] = await env.rows<{ v: number; status: number }>(`SELECT scriptversion AS v, status FROM admmgt.vendor_db_settings WHERE dbname = 'farclient'`);
    const [tpl] = await env.rows<{ v: number }>(`SELECT scriptversion AS v FROM admmgt.vendor_db_settings WHERE istemplate`);
    expect(row).toEqual({ v: tpl!.v, status: 2 });
    const inShard = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => env.queryIn<R>(shard, text, values);
    const far = await schemaCatalog(inShard, 'farclient');
    expect(far.tables).toEqual(['by_hand:r', 'childtable:r', 'newtable:r', 'parenttable:r', 'test_table:p']);
    expect(far.fk).toEqual(['farclient.childtable -> farclient.parenttable']);
    expect(far.rows).toBe(5);
    expect(far.proc).toMatch(/INSERT INTO "?farclient"?\.parenttable/);
    expect(await inShard(`SELECT count(*)::int AS n FROM admmgt.applied_schema_scripts WHERE schemaname = 'farclient'`)).toEqual([{ n: tpl!.v }]);
    // Nothing of it in the admin database.
    expect(await env.rows(`SELECT to_regnamespace('farclient') AS n`)).toEqual([{ n: null }]);

    await env.addScript({ id: 8, description: 'later', addColumns: [{ schema: T, table: 'newtable', column: { name: 'later', type: 'date' } }] });
    await env.admin.query('CALL admmgt.applyScripts(0)');
    expect(await inShard(`SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'farclient.newtable'::regclass AND attname = 'later'`))
      .toEqual([{ t: 'date' }]);
    expect(await env.rows(`SELECT dbname, ledger_version, problem FROM admmgt.check_targets('farclient')`))
      .toEqual([{ dbname: 'farclient', ledger_version: 8, problem: null }]);
  });
  it('builds a concurrent index inside the transaction in schemas of the admin database, and CONCURRENTLY in another database; refuses a SQL step CONCURRENTLY there', async () => {
    // A build CONCURRENTLY in the admin database would wait for admmgt's own session, which waits for it.
    await env.addScript({ id: 9, description: 'an index', indexes: [{ schema: T, table: 'newtable', name: 'newtable_later', columns: ['later'], concurrent: true }] });
    await env.admin.query('CALL admmgt.applyScripts(0)');
    for (const schema of [T, 'bigclient', 'lateclient']) {
      expect(await env.rows(`SELECT indisvalid AS ok FROM pg_index WHERE indexrelid = '${schema}.newtable_later'::regclass`)).toEqual([{ ok: true }]);
    }
    const shard = `${env.prefix}_shard1`;
    expect(await env.queryIn(shard, `SELECT indisvalid AS ok FROM pg_index WHERE indexrelid = 'farclient.newtable_later'::regclass`)).toEqual([{ ok: true }]);
    expect(await env.rows(`SELECT dbname, commstat FROM admmgt.script_log WHERE scriptid = 9 AND commstat LIKE '%CONCURRENTLY%' ORDER BY id`))
      .toEqual([{ dbname: 'farclient', commstat: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS newtable_later ON farclient.newtable USING btree (later)' }]);

    await env.addScript({ id: 10, description: 'by hand', sql: [{ seq: 1, body: `CREATE INDEX CONCURRENTLY newtable_note ON ${T}.newtable (note)`, txmode: 'none' }] });
    const err = await env.errorOf('CALL admmgt.applyScripts(0)');
    expect([err.code, err.message]).toEqual(['0A000', expect.stringMatching(/^admmgt: admmgt\.script_sql id \d+ builds or drops CONCURRENTLY, which cannot run in a schema target of the admin database$/)]);
    expect(await env.rows(`SELECT to_regclass('${T}.newtable_note') AS i`)).toEqual([{ i: null }]);
  }, 60_000);
});
