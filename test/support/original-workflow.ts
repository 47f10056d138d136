// The later original tool's psql workflow: its five demo scripts written for one schema, psql
// itself to type them, and the catalog of one app schema as the checks read it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { expect } from 'vitest';
import { forSchema, script1, script2, testProc1Sql } from '../../templates/demo.js';
import { markReadySql, scriptRowsSql, type ScriptSpec } from '../../templates/script.js';

const run = promisify(execFile);

/** The original demo's five scripts (tables, a new column, a CALL of testproc1, a jsonb column, a new table and a column of another), naming schema. */
export function originalScripts(schema: string): ScriptSpec[] {
  return [
    forSchema(script1, schema),
    forSchema(script2, schema),
    { id: 3, description: 'call stored proc', calls: [`call ${schema}.testproc1()`] },
    {
      id: 4, description: 'a jsonb column',
      addColumns: [{ schema, table: 'parenttable', column: { name: 'attrs', type: 'jsonb', default: `'{}'::jsonb` } }],
    },
    {
      id: 5, description: 'a new table and a column of another',
      tables: [{ schema, name: 'newtable', columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'note', type: 'text' }] }],
      addColumns: [{ schema, table: 'childtable', column: { name: 'note', type: 'varchar(40)' } }],
    },
  ];
}

/** A script's rows and its status 1, as a DBA types them. */
export const typedScript = (s: ScriptSpec) => `${scriptRowsSql(s).text}\n${markReadySql(s.id).text}\n`;

/**
 * The workflow for schema targets after its registry rows, as typed in psql: scripts 1 and 2,
 * create_schema(), apply and maintenance, the procedure and its refresh, script 3 that calls it,
 * scripts 4 and 5; then late (SQL that registers a tenant), which create_schema() makes and
 * maintenance brings its partitions.
 */
export function schemaWorkflow(schema: string, late: string): string {
  const [s1, s2, s3, s4, s5] = originalScripts(schema) as [ScriptSpec, ScriptSpec, ScriptSpec, ScriptSpec, ScriptSpec];
  return `
      ${typedScript(s1)}
      ${typedScript(s2)}
      CALL admmgt.create_schema();
      CALL admmgt.applyScripts(0);
      CALL admmgt.applyMaintenance(0, t_numdays => 100);
      ${testProc1Sql(schema).text};
      CALL admmgt.refesh_stored_procedures(0, 2);
      ${typedScript(s3)}
      CALL admmgt.applyScripts(0);
      ${typedScript(s4)}
      ${typedScript(s5)}
      CALL admmgt.applyScripts(0);
      ${late}
      CALL admmgt.create_schema();
      CALL admmgt.applyMaintenance(0, t_numdays => 100);
    `;
}

function psqlBinary(): string {
  for (const p of ['/usr/bin/psql', '/usr/lib/postgresql/15/bin/psql', '/usr/local/bin/psql']) if (existsSync(p)) return p;
  throw new Error('psql is needed for this test (Debian: apt-get install postgresql-client)');
}

/** psql, stopping at the first error as a DBA's script would; returns what it printed (NOTICEs and WARNINGs). */
export async function psqlSession() {
  const dir = await mkdtemp(path.join(tmpdir(), 'admmgt-psql-'));
  let n = 0;
  return {
    async run(url: string, text: string): Promise<string> {
      const file = path.join(dir, `step-${++n}.sql`);
      await writeFile(file, text);
      const { stdout, stderr } = await run(psqlBinary(), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', file]);
      return stdout + stderr;
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<R[]>;

/** What the checks compare of one app schema, read with query (in the database that holds it). */
export async function schemaCatalog(query: Query, schema: string) {
  const q = <R extends pg.QueryResultRow>(text: string) => query<R>(text, [schema]);
  return {
    tables: (await q<{ t: string }>(`SELECT c.relname || ':' || c.relkind::text AS t FROM pg_class c
               WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1`)).map((r) => r.t),
    partitions: (await q<{ p: string }>(`SELECT c.relname AS p FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE c.relnamespace = $1::regnamespace ORDER BY 1`)).map((r) => r.p),
    foreignPartitions: Number((await q<{ n: string }>(`SELECT count(*) AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent WHERE p.relnamespace = $1::regnamespace AND c.relnamespace <> p.relnamespace`))[0]!.n),
    fk: (await q<{ child: string; parent: string }>(`SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
               FROM pg_constraint WHERE contype = 'f' AND connamespace = $1::regnamespace`)).map((r) => `${r.child} -> ${r.parent}`),
    columns: (await q<{ c: string }>(`SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) AS c
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              WHERE c.relnamespace = $1::regnamespace AND c.relname IN ('parenttable', 'childtable', 'newtable') AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY 1`)).map((r) => r.c),
    proc: (await q<{ src: string }>(`SELECT p.prosrc AS src FROM pg_proc p WHERE p.pronamespace = $1::regnamespace AND p.proname = 'testproc1'`))[0]?.src,
    rows: Number((await query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".parenttable`))[0]!.n),
  };
}

export type SchemaCatalog = Awaited<ReturnType<typeof schemaCatalog>>;

/** What the done-when of the workflow asks of one app schema at version 5: every object in its own schema, as in the template's. */
export function expectOwnObjects(c: SchemaCatalog, template: SchemaCatalog, schema: string, templateSchema: string): void {
  expect(c.tables).toEqual(['childtable:r', 'newtable:r', 'parenttable:r', 'test_table:p']);
  // The partitions made by the script and by maintenance, in the tenant's own schema.
  expect(c.partitions.length).toBeGreaterThan(3);
  expect(c.partitions).toEqual(template.partitions);
  expect(c.foreignPartitions).toBe(0);
  expect(c.fk).toEqual([`${schema}.childtable -> ${schema}.parenttable`]);
  expect(c.columns).toEqual(template.columns);
  expect(c.columns).toContain('parenttable.attrs jsonb');
  expect(c.columns).toContain('childtable.note character varying(40)');
  // Its own copy of the procedure writes into its own table: five rows each.
  expect(c.proc).toMatch(new RegExp(`INSERT INTO "?${schema}"?\\.parenttable`));
  if (schema !== templateSchema) expect(c.proc).not.toContain(templateSchema);
  expect(c.rows).toBe(5);
}
