// applyScripts(0, p_workers => k) on schema targets, which share one database: every session opens
// its own connection there and reuses it from schema to schema; each schema gets the script once,
// in one transaction. Every schema of this file starts with wsch.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';

const TENANTS = ['wsch1', 'wsch2', 'wsch3', 'wsch4', 'wsch5'];
let env: TestEnv;

beforeAll(async () => {
  env = await createEnv('workersch');
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('wschtpl', true, 1)`);
  await env.admin.query('CALL admmgt.create_schema()');
  for (const name of TENANTS) await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ($1, 1)`, [name]);
  await env.admin.query('CALL admmgt.create_schema(p_parallel => 2)');
});
afterAll(async () => {
  await env?.close();
});

it('applies a script to every schema once, over several sessions', async () => {
  await env.addScript({ id: 1, description: 'a table, slowly', sql: [{ seq: 1, body: 'CREATE TABLE wschtpl.t (id int); SELECT pg_sleep(0.2)' }] });
  await env.admin.query('CALL admmgt.applyScripts(0, p_workers => 3)');
  expect(await env.rows('SELECT dbname, sqlstate, message FROM admmgt.failures')).toEqual([]);
  expect(Object.values(await env.versions())).toEqual([1, 1, 1, 1, 1, 1]);
  expect(await env.rows(`SELECT relnamespace::regnamespace::text AS nsp FROM pg_class WHERE relname = 't' AND relnamespace::regnamespace::text LIKE 'wsch%' ORDER BY 1`))
    .toEqual([...TENANTS, 'wschtpl'].sort().map((nsp) => ({ nsp })));
  expect(await env.rows(`SELECT dbname, count(*)::int AS n FROM admmgt.script_log
                          WHERE run_id = (SELECT max(run_id) FROM admmgt.runs) AND dbname <> 'wschtpl' GROUP BY 1 ORDER BY 1`))
    .toEqual(TENANTS.map((dbname) => ({ dbname, n: 1 })));
  expect(await env.rows(`SELECT targets, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`)).toEqual([{ targets: 6, failed: 0 }]);
});
