// Drift of schema targets: each tenant schema is fingerprinted alone in the database that holds
// it and compared with the template schema's fingerprint at its version, its own name and its
// login role's grants written as (schema) and (tenant role) on both sides. Everything lives in
// this file's admin database; login roles are cluster-wide and start with schemadrift_.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const T = 'drifttpl';
const TENANTS = ['sda', 'sdb', 'sdc'];
const role = (name: string) => `schemadrift_${name}`;

const script1: ScriptSpec = {
  id: 1,
  description: 'orders (identity, default, index, trigger, view), lines referencing them, events partitioned by month',
  tables: [
    { schema: T, name: 'orders', columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'name', type: 'text' },
      { name: 'note', type: 'text', default: "'none'" }] },
    { schema: T, name: 'lines', columns: [{ name: 'id', type: 'int', primaryKey: true }, { name: 'orderid', type: 'bigint' }] },
    { schema: T, name: 'events', columns: [{ name: 'id', type: 'int' }, { name: 'created', type: 'date', nullable: false }],
      partitions: [{ column: 'created', type: 'range', value: 'month' }], defaultPartition: true },
  ],
  foreignKeys: [{ schema: T, child: 'lines', parent: 'orders', columns: [['orderid', 'id']] }],
  indexes: [{ schema: T, table: 'orders', name: 'orders_name_idx', columns: ['name'] }],
  triggers: [{ schema: T, table: 'orders', name: 'orders_audit', function: 'orders_audit_fn',
    functionBody: `BEGIN PERFORM count(*) FROM ${T}.lines; RETURN NEW; END` }],
  views: [{ schema: T, name: 'orders_v', query: `SELECT o.id, o.name, (SELECT count(*) FROM ${T}.lines l WHERE l.orderid = o.id) AS n FROM ${T}.orders o` }],
};

async function dropRoles(): Promise<void> {
  const server = new pg.Client({ connectionString: inject('pgUrl') });
  await server.connect();
  for (const name of [T, ...TENANTS, 'sdhand', 'sddiff']) {
    await server.query(`DROP OWNED BY ${role(name)}`).catch(() => {});
    await server.query(`DROP ROLE IF EXISTS ${role(name)}`).catch(() => {});
  }
  await server.end();
}

/** What the latest detectDrift kept: "schema kind object" per row. */
async function drift(): Promise<string[]> {
  return (await env.rows<{ dbname: string; object: string; kind: string }>(`SELECT dbname, object, kind FROM admmgt.drift ORDER BY dbname, object`))
    .map((r) => `${r.dbname} ${r.kind} ${r.object}`);
}

beforeAll(async () => {
  env = await createEnv('schemadrift');
  await dropRoles();
  // The template schema has a login role like its tenants: their grants are compared as (tenant role).
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, loginrole) VALUES ($1, true, 1, $2)`, [T, role(T)]);
  for (const name of TENANTS) {
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, loginrole) VALUES ($1, 1, $2)`, [name, role(name)]);
  }
  await env.admin.query('CALL admmgt.create_schema()');
  // A tenant create_schema could not make fails the rest of this file opaquely: say why here.
  const failed = await env.rows('SELECT dbname, sqlstate, message FROM admmgt.failures');
  if (failed.length) throw new Error(`create_schema failed: ${JSON.stringify(failed)}`);
  await env.addScript(script1);
  await env.admin.query('CALL admmgt.applyScripts(0)');
  // A routine refreshed into every tenant: its body and its own search_path name each tenant's schema.
  await env.admin.query(`CREATE FUNCTION ${T}.line_count(p_id bigint) RETURNS bigint LANGUAGE sql SET search_path = pg_catalog, ${T}
                           AS 'SELECT count(*) FROM ${T}.lines WHERE orderid = p_id'`);
  await env.admin.query('CALL admmgt.refesh_stored_procedures(0)');
});
afterAll(async () => {
  await env?.close();
  await dropRoles();
});

describe('detectDrift on schema targets', () => {
  it('gives each tenant a trigger function that reads its own schema: the typed body\'s code references are rewritten', async () => {
    const rows = await env.rows<{ nsp: string; src: string }>(
      `SELECT n.nspname AS nsp, p.prosrc AS src FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proname = 'orders_audit_fn' ORDER BY 1`);
    expect(rows.map((r) => r.nsp)).toEqual([T, ...TENANTS]);
    for (const r of rows) expect(r.src).toContain(`FROM ${r.nsp}.lines`);
  });

  it('records the template schema\'s fingerprint with its name written as (schema)', async () => {
    const rows = await env.rows<{ kind: string; version: number; keys: string[] }>(
      `SELECT kind, version, ARRAY(SELECT k FROM jsonb_object_keys(objects) k WHERE k LIKE '%orders%' ORDER BY k) AS keys FROM admmgt.template_fingerprints`);
    expect(rows).toEqual([{ kind: 'schema', version: 1, keys: [
      'column (schema).orders.id', 'column (schema).orders.name', 'column (schema).orders.note', 'constraint (schema).lines.lines_orders_fkey',
      'constraint (schema).orders.orders_pkey', 'function (schema).orders_audit_fn()', 'index (schema).orders_name_idx', 'table (schema).orders',
      'trigger (schema).orders.orders_audit', 'view (schema).orders_v'] }]);
    const [fp] = await env.rows<{ o: Record<string, { d: string }> }>(`SELECT objects AS o FROM admmgt.template_fingerprints`);
    expect(fp!.o['schema (schema)']!.d).toContain('(tenant role):USAGE');
    expect(fp!.o['constraint (schema).lines.lines_orders_fkey']!.d).toBe('FOREIGN KEY (orderid) REFERENCES (schema).orders(id)');
    expect(JSON.stringify(fp!.o)).not.toContain(T);
  });

  it('finds nothing when every tenant schema is as the template left it', async () => {
    await env.admin.query('CALL admmgt.detectDrift()');
    expect(await drift()).toEqual([]);
    expect(await env.rows(`SELECT operation, targets, failed FROM admmgt.runs ORDER BY run_id DESC LIMIT 1`))
      .toEqual([{ operation: 'drift', targets: 3, failed: 0 }]);
  });

  it('finds a dropped index and column in one tenant schema and an added table in another, and nothing in the third', async () => {
    await env.admin.query(`DROP INDEX sda.orders_name_idx; ALTER TABLE sda.orders DROP COLUMN note`);
    await env.admin.query(`CREATE TABLE sdb.extra (id int PRIMARY KEY)`);
    await env.admin.query('CALL admmgt.detectDrift(p_parallel => 2)');
    expect(await drift()).toEqual([
      'sda missing column (schema).orders.note',
      'sda missing index (schema).orders_name_idx',
      'sdb extra table (schema).extra',
    ]);
  });

  it('admmgt drift exits 3 naming them, and admmgt check reports them', async () => {
    const r = await cli('drift', '--url', env.adminUrl);
    expect([r.code, r.stderr]).toEqual([3, expect.stringContaining('2 target(s) drifted from the template')]);
    expect(r.stdout).toMatch(/^run \d+: 3 target\(s\) fingerprinted, 2 drifted, 0 cannot be compared\n/);
    expect(r.stdout).toContain([
      '  sda (server local, version 1):',
      '    missing   column (schema).orders.note',
      '    missing   index (schema).orders_name_idx',
      '  sdb (server local, version 1):',
      '    extra     table (schema).extra',
    ].join('\n'));
    const c = await cli('check', '--url', env.adminUrl);
    expect(c.code).toBe(3);
    expect(c.stdout).toMatch(/^checked 4 target\(s\): 0 with a problem\n/);
    expect(c.stdout).toContain('3 target(s) fingerprinted, 2 drifted');
    expect(c.stderr).toContain('2 drifted from the template');
    const clean = await cli('drift', '--url', env.adminUrl, '--tenant', 'sdc');
    expect([clean.code, clean.stdout]).toEqual([0, expect.stringMatching(/^run \d+: 1 target\(s\) fingerprinted, 0 drifted, 0 cannot be compared\n$/)]);
  });

  it('a refresh of views records the template schema\'s fingerprint again', async () => {
    await env.admin.query(`CREATE OR REPLACE VIEW ${T}.orders_v AS SELECT o.id, o.name, 0::bigint AS n FROM ${T}.orders o`);
    await env.admin.query('CALL admmgt.refesh_views(0)');
    await env.admin.query(`CALL admmgt.detectDrift(p_tenants => ARRAY['sdc'])`);
    expect((await drift()).filter((l) => l.startsWith('sdc'))).toEqual([]);
  });
});

describe('baseline of an existing schema', () => {
  /** A schema with the template schema's objects and its login role's grants but no registry row or ledger rows. */
  async function handMade(name: string): Promise<void> {
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, loginrole) VALUES ($1, 1, $2)`, [name, role(name)]);
    await env.admin.query('CALL admmgt.create_schema()');
    await env.admin.query(`DELETE FROM admmgt.applied_schema_scripts WHERE schemaname = $1`, [name]);
    await env.admin.query(`DELETE FROM admmgt.vendor_db_settings WHERE dbname = $1`, [name]);
  }

  it('registers a schema that matches the template schema at the version, with its ledger rows; drift then finds nothing', async () => {
    await handMade('sdhand');
    const r = await cli('baseline', 'sdhand', '--version', '1', '--schema', '--login-role', role('sdhand'), '--url', env.adminUrl);
    expect([r.code, r.stderr]).toEqual([0, expect.stringContaining('schema sdhand joined the fleet at version 1')]);
    expect(await env.rows(`SELECT r.kind, r.status, r.scriptversion AS v, v.baseversion AS b, r.loginrole FROM admmgt.registry r JOIN admmgt.vendor_db_settings v USING (id) WHERE v.dbname = 'sdhand'`))
      .toEqual([{ kind: 'schema', status: 2, v: 1, b: 1, loginrole: role('sdhand') }]);
    expect(await env.rows(`SELECT array_agg(scriptid ORDER BY scriptid) AS s FROM admmgt.applied_schema_scripts WHERE schemaname = 'sdhand'`)).toEqual([{ s: [1] }]);
    expect(await env.rows(`SELECT has_schema_privilege('public', 'sdhand', 'USAGE') AS pub, has_schema_privilege($1, 'sdhand', 'USAGE') AS own`, [role('sdhand')]))
      .toEqual([{ pub: false, own: true }]);
    await env.admin.query(`CALL admmgt.detectDrift(p_tenants => ARRAY['sdhand'])`);
    expect((await drift()).filter((l) => l.startsWith('sdhand'))).toEqual([]);
    expect(await env.rows(`SELECT problem FROM admmgt.check_targets('sdhand')`)).toEqual([{ problem: null }]);
  });

  it('refuses a schema that differs, listing what differs, and changes nothing; and one that is not there', async () => {
    await handMade('sddiff');
    await env.admin.query(`ALTER TABLE sddiff.orders DROP COLUMN note; CREATE TABLE sddiff.own (id int)`);
    const err = await env.errorOf(`CALL admmgt.baseline('sddiff', 1, p_loginrole => '${role('sddiff')}', p_kind => 'schema')`);
    expect([err.code, err.message]).toEqual(['55000', 'admmgt: schema sddiff differs from the template at version 1 in 2 object(s)']);
    expect(err.detail).toBe('missing column (schema).orders.note\nextra table (schema).own');
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.vendor_db_settings WHERE dbname = 'sddiff'`)).toEqual([{ n: 0 }]);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.applied_schema_scripts WHERE schemaname = 'sddiff'`)).toEqual([{ n: 0 }]);
    const missing = await env.errorOf(`CALL admmgt.baseline('nosuch', 1, p_kind => 'schema')`);
    expect([missing.code, missing.message]).toEqual(['3F000', `admmgt: schema nosuch is not in database ${env.adminDb} on server local`]);
  });
});
