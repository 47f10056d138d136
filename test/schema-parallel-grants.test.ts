// create_schema() makes schema targets several at a time. Each one with a login role is granted
// CONNECT on the database that holds it, and those grants all update the same pg_database row:
// two at once used to fail one of them ("tuple concurrently updated", XX000). Every role and
// schema of this file starts with spg.
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';

const N = 24;
const names = Array.from({ length: N }, (_, i) => `spg${String(i + 1).padStart(2, '0')}`);
const role = (name: string) => `spg_role_${name}`;
let env: TestEnv;

async function dropRoles(): Promise<void> {
  const server = new pg.Client({ connectionString: inject('pgUrl') });
  await server.connect();
  for (const name of ['spgtpl', ...names]) await server.query(`DROP ROLE IF EXISTS ${role(name)}`);
  await server.end();
}

beforeAll(async () => {
  env = await createEnv('schemagrants');
  await dropRoles();
});
afterAll(async () => {
  await env?.close();
  await dropRoles();
});

it('makes many schema targets with login roles at once, each granted CONNECT on its database', async () => {
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, loginrole) VALUES ('spgtpl', true, 1, $1)`, [role('spgtpl')]);
  await env.admin.query('CALL admmgt.create_schema()');
  // A script that takes a while: each new schema runs it in the transaction that makes it, after its grants.
  await env.addScript({ id: 1, description: 'a table, slowly', sql: [{ seq: 1, body: 'CREATE TABLE spgtpl.t (id int); SELECT pg_sleep(0.1)' }] });
  await env.admin.query('CALL admmgt.applyScripts(0)');
  for (const name of names) await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, loginrole) VALUES ($1, 1, $2)`, [name, role(name)]);
  await env.admin.query('CALL admmgt.create_schema(p_parallel => 4)');
  expect(await env.rows('SELECT dbname, sqlstate, message FROM admmgt.failures')).toEqual([]);
  const granted = await env.rows<{ n: number }>(
    `SELECT count(*)::int AS n FROM unnest($1::text[]) r WHERE has_database_privilege(r, current_database(), 'CONNECT')`,
    [names.map(role)]);
  expect(granted).toEqual([{ n: N }]);
  expect(await env.rows(`SELECT count(*)::int AS n FROM pg_class WHERE relname = 't' AND relnamespace::regnamespace::text LIKE 'spg%'`)).toEqual([{ n: N + 1 }]);
});
