// A database per tenant with the later original tool's call forms (mode 1 first), typed in psql:
// the same five scripts and the same catalog checks as in schema mode, in each tenant's own
// database. Every database of this file starts with sepdb_.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testProc1Sql } from '../templates/demo.js';
import type { ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';
import { originalScripts, psqlSession, schemaCatalog, typedScript as script } from './support/original-workflow.js';

let env: TestEnv;
let psqlRun: Awaited<ReturnType<typeof psqlSession>>;
const TPL = 'sepdb_tpl';
const S = 'mgttest';
const [s1, s2, s3, s4, s5] = originalScripts(S) as [ScriptSpec, ScriptSpec, ScriptSpec, ScriptSpec, ScriptSpec];

beforeAll(async () => {
  env = await createEnv('sepdb');
  psqlRun = await psqlSession();
  await env.makeTemplate(TPL, [S]);
});
afterAll(async () => {
  await psqlRun.close();
  await env.close();
});

describe('the call forms with t_separatedb => 1', () => {
  it('leave the template, a tenant and a tenant made after the last script at version 5, each with every object in its own database', async () => {
    const out = await psqlRun.run(env.adminUrl, `
      INSERT INTO admmgt.vendor_db_settings (dbname) VALUES ('sepdb_big');
      UPDATE admmgt.vendor_db_settings SET status = 1 WHERE dbname = 'sepdb_big';
      ${script(s1)}
      ${script(s2)}
      CALL admmgt.create_database();
      CALL admmgt.applyScripts(1);
      CALL admmgt.applyMaintenance(1, t_numdays => 100);
    `);
    await psqlRun.run(env.urlFor(TPL), `${testProc1Sql(S).text};`);
    const out2 = await psqlRun.run(env.adminUrl, `
      CALL admmgt.refesh_stored_procedures(1, 2);
      ${script(s3)}
      CALL admmgt.applyScripts(1);
      ${script(s4)}
      ${script(s5)}
      CALL admmgt.applyScripts(1);
      INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('sepdb_late', 1);
      CALL admmgt.create_database();
    `);
    expect(out + out2).not.toMatch(/WARNING/);
    // The template was registered by hand without a kind: the registry reads it as a database.
    expect(await env.rows(`SELECT lower(dbname) AS name, kind, status, scriptversion AS version FROM admmgt.registry ORDER BY id`)).toEqual([
      { name: TPL, kind: 'database', status: 2, version: 5 },
      { name: 'sepdb_big', kind: 'database', status: 2, version: 5 },
      { name: 'sepdb_late', kind: 'database', status: 2, version: 5 },
    ]);
    const inDb = (db: string) => <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => env.queryIn<R>(db, text, values);
    const template = await schemaCatalog(inDb(TPL), S);
    for (const db of [TPL, 'sepdb_big', 'sepdb_late']) {
      const c = await schemaCatalog(inDb(db), S);
      expect(c.tables).toEqual(['childtable:r', 'newtable:r', 'parenttable:r', 'test_table:p']);
      expect(c.partitions.length).toBeGreaterThan(3);
      expect(c.partitions).toEqual(template.partitions);
      expect(c.fk).toEqual([`${S}.childtable -> ${S}.parenttable`]);
      expect(c.columns).toContain('parenttable.attrs jsonb');
      expect(c.columns).toContain('childtable.note character varying(40)');
      expect(c.proc).toMatch(/INSERT INTO "?mgttest"?\.parenttable/);
      expect(c.rows).toBe(5);
      expect(await env.queryIn(db, 'SELECT array_agg(scriptid ORDER BY scriptid) AS s FROM admmgt.applied_scripts')).toEqual([{ s: [1, 2, 3, 4, 5] }]);
    }
  });

  it('and a form with 0 is refused while no schema template is registered, naming the statement that registers one', async () => {
    const err = await env.errorOf('CALL admmgt.applyScripts(0)');
    expect([err.code, err.message]).toEqual(['P0002', 'admmgt: no template schema is registered']);
    expect(err.hint).toMatch(/CALL admmgt\.create_schema\(\);$/);
  });
});
