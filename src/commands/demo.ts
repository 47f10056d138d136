// The original tool's demo, end to end, on the admin database: a template, a tenant, three
// scripts, maintenance and a stored procedure copied to the tenant. Rerunnable: it starts clean
// when it finds its own earlier objects, and refuses to touch anything else.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { applyMaintenance, applyScripts, checkRun, createDatabases, createSchemas, refreshProcedures } from '../calls.js';
import { connect } from '../connection.js';
import { withAdmin, withGlobalOptions, type GlobalArgs, type Out, type Session } from '../context.js';
import { AdmmgtError } from '../errors.js';
import { install } from './install.js';
import {
  DEMO, demoScripts, forSchema, registerTemplateSql, registerTenantSql, script1, script2, script3, script4, testProc1Sql,
} from '../../templates/demo.js';
import { markReadySql, scriptRowsSql, type ScriptSpec } from '../../templates/script.js';
import { id, join, lit, sql } from '../sql.js';

const DEMO_COMMENT = 'admmgt demo';
const DEMO_DATABASES = [DEMO.template, DEMO.tenant.toLowerCase()];
const DEMO_SCRIPTS = demoScripts.map((x) => x.id);

export interface InventoryRow {
  kind: string;
  name: string;
  detail: string;
}

/** Drop what an earlier demo left; refuse if the registry or the names belong to someone else. */
async function startClean(client: pg.Client, out: Out, schemas = false): Promise<void> {
  const { rows: foreign } = await client.query<{ what: string }>(
    `SELECT 'tenant ' || dbname AS what FROM admmgt.vendor_db_settings WHERE lower(dbname) <> ALL ($1)
     UNION ALL SELECT 'script ' || id FROM admmgt.scripts WHERE id NOT IN (${DEMO_SCRIPTS.join(', ')})`,
    [DEMO_DATABASES],
  );
  if (foreign.length) {
    throw new AdmmgtError(
      `this admin database holds more than the demo (${foreign.slice(0, 5).map((r) => r.what).join(', ')}); the demo only resets its own objects`,
      { hint: 'Run the demo on an empty server, or on the embedded one (admmgt demo --embedded).' },
    );
  }
  // The schema demo makes no database: it drops only those this registry names as database targets
  // (an earlier database demo here), never one that another admin database's demo commented.
  const { rows: dbs } = await client.query<{ datname: string; ours: boolean }>(
    `SELECT d.datname,
            (NOT $3 AND shobj_description(d.oid, 'pg_database') = $2)
            OR EXISTS (SELECT 1 FROM admmgt.vendor_db_settings v
                        WHERE lower(v.dbname) = d.datname AND ($3 IS FALSE OR coalesce(v.kind, 'database') = 'database')) AS ours
       FROM pg_database d WHERE d.datname = ANY ($1)`,
    [DEMO_DATABASES, DEMO_COMMENT, schemas],
  );
  const strangers = dbs.filter((d) => !d.ours).map((d) => d.datname);
  if (strangers.length && !schemas) {
    throw new AdmmgtError(
      `database(s) ${strangers.join(', ')} exist but were not made by the demo`,
      { hint: 'Drop them yourself if they are not needed, or run the demo on another server.' },
    );
  }
  // The schemas of this admin database that an earlier schema demo made: registered here as schema
  // targets, or commented by it.
  const { rows: nsps } = await client.query<{ nspname: string; ours: boolean }>(
    `SELECT n.nspname,
            obj_description(n.oid, 'pg_namespace') = $2
            OR EXISTS (SELECT 1 FROM admmgt.vendor_db_settings v
                        WHERE lower(v.dbname) = n.nspname AND v.kind = 'schema' AND v.schema_db IS NULL) AS ours
       FROM pg_namespace n WHERE n.nspname = ANY ($1)`,
    [DEMO_DATABASES, DEMO_COMMENT],
  );
  const strangerSchemas = nsps.filter((n) => !n.ours).map((n) => n.nspname);
  if (strangerSchemas.length && schemas) {
    throw new AdmmgtError(
      `schema(s) ${strangerSchemas.join(', ')} of the admin database exist but were not made by the demo`,
      { hint: 'Drop them yourself if they are not needed, or run the demo on another admin database.' },
    );
  }
  const ourDbs = dbs.filter((d) => d.ours);
  const ourSchemas = nsps.filter((n) => n.ours).map((n) => n.nspname);
  const { rows: n } = await client.query<{ c: number }>('SELECT count(*)::int AS c FROM admmgt.vendor_db_settings');
  if (ourDbs.length || ourSchemas.length || (n[0]?.c ?? 0) > 0) {
    out(`an earlier demo run was found: dropping its ${ourSchemas.length ? 'databases, schemas' : 'databases'} and rows to start clean`);
  }
  for (const d of ourDbs) await client.query(sql`DROP DATABASE IF EXISTS ${id(d.datname)} WITH (FORCE)`.text);
  // The registry first: with no template that has them, the demo's scripts are no longer frozen.
  // Then the rows of every kind of script row (admmgt knows the list), partitions through their tables.
  const { rows: kinds } = await client.query<{ t: string }>('SELECT unnest(admmgt._script_row_tables()) AS t');
  const { rows: ledgers } = await client.query<{ t: string }>(
    `SELECT t FROM unnest(ARRAY['applied_schema_scripts', 'applied_schema_parts']) t WHERE to_regclass('admmgt.' || t) IS NOT NULL`);
  const ids = join(DEMO_SCRIPTS.map((n) => lit(n)), ', ');
  const names = join(ourSchemas.map((n) => lit(n)), ', ');
  await client.query(join([
    sql`BEGIN;`,
    // A schema target's objects and its rows in the ledger its database holds for its schemas.
    ...ourSchemas.map((nsp) => sql`DROP SCHEMA IF EXISTS ${id(nsp)} CASCADE;`),
    ...(ourSchemas.length ? ledgers.map((l) => sql`DELETE FROM admmgt.${id(l.t)} WHERE schemaname IN (${names});`) : []),
    sql`DELETE FROM admmgt.vendor_db_settings;`,
    sql`DELETE FROM admmgt.script_table_partitions WHERE tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid IN (${ids}));`,
    sql`DELETE FROM admmgt.script_table_columns WHERE tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid IN (${ids}));`,
    ...kinds.filter((k) => k.t !== 'script_tables').map((k) => sql`DELETE FROM admmgt.${id(k.t)} WHERE scriptid IN (${ids});`),
    sql`DELETE FROM admmgt.script_tables WHERE scriptid IN (${ids});`,
    sql`DELETE FROM admmgt.scripts WHERE id IN (${ids});`,
    sql`COMMIT;`,
  ], '\n').text);
}

/** The admin connection's settings, pointed at another database of the same server. */
function otherDatabase(config: pg.ClientConfig, database: string): pg.ClientConfig {
  if (!config.connectionString) return { ...config, database };
  const url = new URL(config.connectionString);
  url.pathname = '/' + encodeURIComponent(database);
  return { ...config, connectionString: url.toString() };
}

async function inTemplate(s: Session, text: string): Promise<void> {
  const c = await connect(otherDatabase(s.target.config, DEMO.template));
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

async function addScript(client: pg.Client, spec: ScriptSpec): Promise<void> {
  await client.query(`BEGIN;\n${scriptRowsSql(spec).text}\n${markReadySql(spec.id).text}\nCOMMIT;`);
}

export interface DemoOptions {
  /** Schema per tenant: the template and BigClient are schemas of the admin database. */
  schemas?: boolean;
}

export async function runDemo(s: Session, options: DemoOptions = {}): Promise<InventoryRow[]> {
  if (options.schemas) return runSchemaDemo(s);
  const { client, out } = s;
  const step = (n: number, text: string) => out(`\n== ${n}. ${text}`);

  step(1, 'install the control plane (schema admmgt)');
  await install(client, s.target.url, out);
  await startClean(client, out);

  step(2, `create the template database ${DEMO.template} with schema ${DEMO.schema}; register it and tenant ${DEMO.tenant} (pending)`);
  await client.query(sql`CREATE DATABASE ${id(DEMO.template)}`.text);
  await client.query(sql`COMMENT ON DATABASE ${id(DEMO.template)} IS ${lit(DEMO_COMMENT)}`.text);
  await inTemplate(s, sql`CREATE SCHEMA ${id(DEMO.schema)}`.text);
  await client.query(registerTemplateSql(DEMO.template).text);
  await client.query(registerTenantSql(DEMO.tenant).text);

  step(3, 'script 1: test_table (LIST on status; X subpartitioned by quarter), parenttable, childtable with a foreign key');
  await addScript(client, script1);

  step(4, 'CALL admmgt.create_database()');
  checkRun(await createDatabases(client), out);
  await client.query(sql`COMMENT ON DATABASE ${id(DEMO.tenant.toLowerCase())} IS ${lit(DEMO_COMMENT)}`.text);

  step(5, 'CALL admmgt.applyScripts()');
  checkRun(await applyScripts(client), out);

  step(6, `CALL admmgt.applyMaintenance(t_numdays => ${DEMO.lookaheadDays})`);
  checkRun(await applyMaintenance(client, DEMO.lookaheadDays), out);

  step(7, 'script 2: add newcolumn varchar(10) NOT NULL to parenttable; CALL admmgt.applyScripts()');
  await addScript(client, script2);
  checkRun(await applyScripts(client), out);

  step(8, `create procedure ${DEMO.schema}.testproc1() in the template; CALL admmgt.refesh_stored_procedures()`);
  await inTemplate(s, testProc1Sql().text);
  checkRun(await refreshProcedures(client), out);

  step(9, 'script 3: call mgttest.testproc1(); CALL admmgt.applyScripts()');
  await addScript(client, script3);
  checkRun(await applyScripts(client), out);

  step(10, 'script 4: widen newcolumn to varchar(20), index childtable CONCURRENTLY, view parent_children; CALL admmgt.applyScripts()');
  await addScript(client, script4);
  checkRun(await applyScripts(client), out);

  return (await client.query<InventoryRow>('SELECT kind, name, detail FROM admmgt.inventory($1)', [DEMO.tenant])).rows;
}

/**
 * The same demo with a schema per tenant: the template schema unitemplate and tenant BigClient are
 * schemas of the admin database, the scripts name the template schema, and every call works on
 * the schema targets only (t_separatedb => 0).
 */
async function runSchemaDemo(s: Session): Promise<InventoryRow[]> {
  const { client, out } = s;
  const step = (n: number, text: string) => out(`\n== ${n}. ${text}`);
  const T = DEMO.template;
  // Script 4's concurrent index is built inside its transaction in these schemas of the admin
  // database (docs/schema-mode.md): a build CONCURRENTLY there would wait for admmgt's own session.
  const [s1, s2, s3, s4] = demoScripts.map((x) => forSchema(x, T)) as [ScriptSpec, ScriptSpec, ScriptSpec, ScriptSpec];
  const schemaKind = { kind: 'schema' } as const;

  step(1, 'install the control plane (schema admmgt)');
  await install(client, s.target.url, out);
  await startClean(client, out, true);

  step(2, `register the template schema ${T} and tenant ${DEMO.tenant} as schemas of the admin database (pending)`);
  await client.query(registerTemplateSql(T, 'schema').text);
  await client.query(registerTenantSql(DEMO.tenant, 'schema').text);

  step(3, `script 1 (in schema ${T}): test_table (LIST on status; X subpartitioned by quarter), parenttable, childtable with a foreign key`);
  await addScript(client, s1);

  step(4, 'CALL admmgt.create_schema()');
  checkRun(await createSchemas(client), out);
  for (const nsp of DEMO_DATABASES) await client.query(sql`COMMENT ON SCHEMA ${id(nsp)} IS ${lit(DEMO_COMMENT)}`.text);

  step(5, 'CALL admmgt.applyScripts(0)');
  checkRun(await applyScripts(client, schemaKind), out);

  step(6, `CALL admmgt.applyMaintenance(0, t_numdays => ${DEMO.lookaheadDays})`);
  checkRun(await applyMaintenance(client, DEMO.lookaheadDays, schemaKind), out);

  step(7, 'script 2: add newcolumn varchar(10) NOT NULL to parenttable; CALL admmgt.applyScripts(0)');
  await addScript(client, s2);
  checkRun(await applyScripts(client, schemaKind), out);

  step(8, `create procedure ${T}.testproc1() in the admin database; CALL admmgt.refesh_stored_procedures(0)`);
  await client.query(testProc1Sql(T).text);
  checkRun(await refreshProcedures(client, schemaKind), out);

  step(9, `script 3: call ${T}.testproc1(); CALL admmgt.applyScripts(0)`);
  await addScript(client, s3);
  checkRun(await applyScripts(client, schemaKind), out);

  step(10, 'script 4: widen newcolumn to varchar(20), index childtable (in the script\'s transaction), view parent_children; CALL admmgt.applyScripts(0)');
  await addScript(client, s4);
  checkRun(await applyScripts(client, schemaKind), out);

  return (await client.query<InventoryRow>('SELECT kind, name, detail FROM admmgt.inventory($1)', [DEMO.tenant])).rows;
}

export function formatInventory(dbname: string, rows: InventoryRow[]): string {
  const lines = [`\nWhat ${dbname} holds now:`];
  for (const kind of ['table', 'partition', 'column', 'foreign key', 'index', 'view', 'procedure', 'function', 'rows']) {
    const some = rows.filter((r) => r.kind === kind);
    if (!some.length) continue;
    lines.push(`  ${kind === 'rows' ? 'row counts' : kind + (some.length > 1 ? 's' : '')}:`);
    for (const r of some) lines.push(`    ${r.name}${r.detail ? `  ${r.detail}` : ''}`);
  }
  return lines.join('\n');
}

interface DemoArgv extends GlobalArgs {
  schemas?: boolean;
}

export const command: CommandModule<object, DemoArgv> = {
  command: 'demo',
  describe: 'Run the demo: a template, tenant BigClient, four scripts (the last an index, a column change and a view), maintenance and a stored procedure (starts clean when run again); with no server given it uses the embedded PostgreSQL',
  builder: (y) =>
    withGlobalOptions(y).option('schemas', {
      type: 'boolean',
      describe: `The same demo with a schema per tenant: template schema ${DEMO.template} and tenant ${DEMO.tenant} as schemas of the admin database (create_schema(), every call with t_separatedb => 0)`,
    }) as Argv<DemoArgv>,
  handler: (a) =>
    withAdmin(a, async (s) => {
      s.out(`admin database: ${s.target.describe}`);
      const rows = await runDemo(s, { schemas: a.schemas });
      process.stdout.write(formatInventory(DEMO.tenant.toLowerCase(), rows) + '\n');
      const e = s.target.embedded;
      process.stdout.write(
        `\nDone. Look around with psql${e ? `:\n  ${e.psql}` : ''}\n  SELECT * FROM admmgt.tenant_status;  SELECT * FROM admmgt.script_log ORDER BY id;\n` +
          (e
            ? 'The embedded PostgreSQL keeps running. Point later commands at it with --embedded, or with this URL:\n' +
              `  npx admmgt status --embedded\n  export DATABASE_URL='${e.url}'\n` +
              'Stop it with: npx admmgt embedded stop\n'
            : ''),
      );
    }, { embeddedByDefault: true, installs: true }),
};
