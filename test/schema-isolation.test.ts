// Schema tenants are untrusted too: each login role uses its own schema only, PUBLIC has nothing
// in any tenant schema or in admmgt, a tenant sees neither another tenant's tables nor the
// registry, and it can plant nothing where a script or a refresh would run it. Login roles are
// cluster-wide and start with schemaiso_.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { script1, script2, testProc1Sql } from '../templates/demo.js';
import type { ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let port: number;
const password = `Iso-${randomBytes(9).toString('hex')}`;
const T = 'isotpl';
const tenants = { isoa: 'schemaiso_a', isob: 'schemaiso_b' } as const;

const forTemplate = (s: ScriptSpec) => JSON.parse(JSON.stringify(s).replaceAll('"mgttest"', JSON.stringify(T))) as ScriptSpec;
const s1 = forTemplate(script1);
const s2 = forTemplate(script2);
const s3: ScriptSpec = { id: 3, description: 'call stored proc', calls: [`call ${T}.testproc1()`] };

/** A session of a tenant's login role in the admin database, over TCP with its password. */
async function as(role: string, fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const c = new pg.Client({ connectionString: `postgresql://${role}:${encodeURIComponent(password)}@127.0.0.1:${port}/${env.adminDb}` });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.end();
  }
}

async function codeOf(c: pg.Client, text: string): Promise<string | undefined> {
  try {
    await c.query(text);
    return undefined;
  } catch (e) {
    return (e as pg.DatabaseError).code;
  }
}

async function dropRoles(): Promise<void> {
  const server = new pg.Client({ connectionString: inject('pgUrl') });
  await server.connect();
  for (const role of Object.values(tenants)) {
    await server.query(`DROP OWNED BY ${role}`).catch(() => {});
    await server.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
  }
  await server.end();
}

beforeAll(async () => {
  env = await createEnv('schemaiso');
  const base = new URL(inject('pgUrl'));
  port = Number(base.port || base.searchParams.get('port') || 5432);
  await dropRoles();
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('${T}', true, 1)`);
  for (const [name, role] of Object.entries(tenants)) {
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, loginrole) VALUES ($1, 1, $2)`, [name, role]);
  }
  await env.addScript(s1);
  await env.addScript(s2);
  await env.admin.query('CALL admmgt.create_schema()');
  // A tenant create_schema could not make fails the rest of this file opaquely: say why here.
  const failed = await env.admin.query('SELECT dbname, sqlstate, message FROM admmgt.failures');
  if (failed.rows.length) throw new Error(`create_schema failed: ${JSON.stringify(failed.rows)}`);
  await env.admin.query('CALL admmgt.applyScripts(0)');
  await env.admin.query(testProc1Sql(T).text);
  await env.admin.query('CALL admmgt.refesh_stored_procedures(0)');
  await env.addScript(s3);
  await env.admin.query('CALL admmgt.applyScripts(0)');
  // create_schema made the login roles; they get a password here to log in over TCP.
  for (const role of Object.values(tenants)) await env.admin.query(`ALTER ROLE ${role} PASSWORD '${password}'`);
});

afterAll(async () => {
  await env.close();
  await dropRoles();
});

describe('schema tenants', () => {
  it('are made with their login roles, at the template\'s version', async () => {
    expect(await env.rows(`SELECT lower(dbname) AS name, kind, status, scriptversion AS v FROM admmgt.vendor_db_settings ORDER BY id`)).toEqual([
      { name: T, kind: 'schema', status: 2, v: 3 },
      { name: 'isoa', kind: 'schema', status: 2, v: 3 },
      { name: 'isob', kind: 'schema', status: 2, v: 3 },
    ]);
  });

  it('let a tenant\'s role use its own schema and nothing else: not another tenant\'s tables, not the template\'s, not the registry', async () => {
    await as(tenants.isoa, async (c) => {
      await c.query(`INSERT INTO isoa.parenttable (newcolumn) VALUES ('mine')`);
      expect((await c.query(`SELECT count(*)::int AS n FROM isoa.parenttable`)).rows).toEqual([{ n: 6 }]);
      await c.query('CALL isoa.testproc1()');
      expect(await codeOf(c, 'SELECT * FROM isob.parenttable')).toBe('42501');
      expect(await codeOf(c, `SELECT * FROM ${T}.parenttable`)).toBe('42501');
      expect(await codeOf(c, 'CALL isob.testproc1()')).toBe('42501');
      expect(await codeOf(c, 'SELECT * FROM admmgt.vendor_db_settings')).toBe('42501');
      expect(await codeOf(c, 'SELECT * FROM admmgt.applied_schema_scripts')).toBe('42501');
      expect(await codeOf(c, 'CALL admmgt.applyScripts()')).toBe('42501');
    });
  });

  it('let a tenant\'s role create nothing in its schema, so it can plant no routine that a later script would CALL with admmgt\'s rights', async () => {
    await as(tenants.isoa, async (c) => {
      expect(await codeOf(c, 'CREATE TABLE isoa.planted (id int)')).toBe('42501');
      expect(await codeOf(c, `CREATE PROCEDURE isoa.audit() LANGUAGE sql AS 'SELECT 1'`)).toBe('42501');
      expect(await codeOf(c, 'CREATE TABLE isob.planted (id int)')).toBe('42501');
      expect(await codeOf(c, 'ALTER TABLE isoa.parenttable ADD COLUMN x int')).toBe('42501');
      expect(await codeOf(c, `CREATE TRIGGER t BEFORE INSERT ON isoa.parenttable FOR EACH ROW EXECUTE FUNCTION ${T}.nope()`)).toBe('42501');
    });
    expect(await env.rows(`SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'isoa'::regnamespace ORDER BY 1`)).toEqual([{ proname: 'testproc1' }]);
  });

  it('give PUBLIC nothing in any tenant schema or in admmgt', async () => {
    const schemas = [T, 'isoa', 'isob', 'admmgt'];
    expect(await env.rows(
      `SELECT s AS schema, has_schema_privilege('public', s, 'USAGE') AS usage, has_schema_privilege('public', s, 'CREATE') AS create
         FROM unnest($1::text[]) s ORDER BY 1`, [schemas])).toEqual(schemas.sort().map((s) => ({ schema: s, usage: false, create: false })));
    expect(await env.rows(
      `SELECT c.oid::regclass::text AS rel FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) x
        WHERE c.relnamespace::regnamespace::text = ANY ($1) AND x.grantee = 0`, [schemas])).toEqual([]);
    // The other tenant's role has no grant in this tenant's schema either.
    expect(await env.rows(`SELECT has_schema_privilege('schemaiso_b', 'isoa', 'USAGE') AS b_on_a, has_table_privilege('schemaiso_b', 'isoa.parenttable', 'SELECT') AS b_reads_a`))
      .toEqual([{ b_on_a: false, b_reads_a: false }]);
  });

  it('are checked and listed in their own schema: check_targets reads their ledger, and says when PUBLIC may use one', async () => {
    expect(await env.rows(`SELECT dbname, registry_version, ledger_version, problem FROM admmgt.check_targets() ORDER BY dbname`)).toEqual([
      { dbname: 'isoa', registry_version: 3, ledger_version: 3, problem: null },
      { dbname: 'isob', registry_version: 3, ledger_version: 3, problem: null },
      { dbname: T, registry_version: 3, ledger_version: 3, problem: null },
    ]);
    await env.admin.query('GRANT USAGE ON SCHEMA isob TO PUBLIC');
    try {
      expect((await env.rows<{ problem: string }>(`SELECT problem FROM admmgt.check_targets('isob')`))[0]!.problem)
        .toMatch(/^PUBLIC may use schema isob: run REVOKE ALL ON SCHEMA isob FROM PUBLIC/);
    } finally {
      await env.admin.query('REVOKE USAGE ON SCHEMA isob FROM PUBLIC');
    }
    const inventory = await env.rows<{ kind: string; name: string }>(`SELECT kind, name FROM admmgt.inventory('isoa')`);
    expect(inventory.filter((r) => r.kind === 'table').map((r) => r.name)).toEqual(['isoa.childtable', 'isoa.parenttable', 'isoa.test_table']);
    expect(inventory.every((r) => r.name.startsWith('isoa.'))).toBe(true);
  });
});
