// The demo of the original tool as typed data: a template with schema mgttest, tenant BigClient,
// and three scripts (tables with LIST/RANGE partitions and a foreign key; a new NOT NULL column;
// a CALL of a procedure that inserts five rows), then a fourth of an ordinary week: a column
// change, an index built without blocking writes, and a view.
import dedent from 'dedent';
import type { ScriptSpec } from './script.js';
import { id, lit, sql, type Sql } from '../src/sql.js';

export const DEMO = {
  template: 'unitemplate',
  schema: 'mgttest',
  tenant: 'BigClient',
  lookaheadDays: 200,
} as const;

export const script1: ScriptSpec = {
  id: 1,
  description: 'test to create new stuff',
  tables: [
    {
      schema: DEMO.schema,
      name: 'test_table',
      tablespace: 'pg_default',
      lifecycle: { status: 'X', inactive_date: 'current_date-100' },
      columns: [
        { name: 'id', type: 'bigint', nullable: false, primaryKey: true, identity: true },
        { name: 'description', type: 'varchar(256)' },
        { name: 'code', type: 'varchar(8)' },
        { name: 'status', type: 'varchar(1)', nullable: false },
        { name: 'inactive_date', type: 'timestamp' },
      ],
      partitions: [
        { column: 'status', type: 'list', value: 'A', tablespace: 'pg_default' },
        {
          column: 'status', type: 'list', value: 'X', tablespace: 'pg_default',
          sub: { column: 'inactive_date', interval: 'quarter', tablespace: 'pg_default' },
        },
      ],
    },
    {
      schema: DEMO.schema,
      name: 'parenttable',
      tablespace: 'pg_default',
      columns: [{ name: 'id', type: 'bigint', nullable: false, primaryKey: true, identity: true }],
    },
    {
      schema: DEMO.schema,
      name: 'childtable',
      tablespace: 'pg_default',
      columns: [
        { name: 'id', type: 'bigint', nullable: false, primaryKey: true, identity: true },
        { name: 'parentid', type: 'bigint', nullable: false },
      ],
    },
  ],
  foreignKeys: [
    { schema: DEMO.schema, child: 'childtable', parent: 'parenttable', columns: [['parentid', 'id']], onDelete: 'CASCADE' },
  ],
};

export const script2: ScriptSpec = {
  id: 2,
  description: 'add column to existing table',
  addColumns: [{ schema: DEMO.schema, table: 'parenttable', column: { name: 'newcolumn', type: 'varchar(10)', nullable: false } }],
};

export const script3: ScriptSpec = {
  id: 3,
  description: 'call stored proc',
  calls: [`call ${DEMO.schema}.testproc1()`],
};

export const script4: ScriptSpec = {
  id: 4,
  description: 'a week of changes: a wider column, an index built concurrently, a view',
  columnChanges: [{ schema: DEMO.schema, table: 'parenttable', column: 'newcolumn', action: 'type', type: 'varchar(20)' }],
  indexes: [{ schema: DEMO.schema, table: 'childtable', name: 'childtable_parentid', columns: ['parentid'], concurrent: true }],
  views: [{
    schema: DEMO.schema, name: 'parent_children',
    query: `SELECT p.id, count(c.id) AS children FROM ${DEMO.schema}.parenttable p LEFT JOIN ${DEMO.schema}.childtable c ON c.parentid = p.id GROUP BY p.id`,
  }],
};

/** The demo's four scripts, in order. */
export const demoScripts: readonly ScriptSpec[] = [script1, script2, script3, script4];

/**
 * A script of the demo written for another schema (a schema target's template schema): every
 * value that is the demo's schema becomes schema, and so does every name qualified with it in SQL
 * text (a CALL, a view's query). Schema must be a plain identifier.
 */
export function forSchema(spec: ScriptSpec, schema: string, from: string = DEMO.schema): ScriptSpec {
  const qualified = new RegExp(`\\b${from}\\.`, 'g');
  const rewrite = (v: unknown): unknown => {
    if (typeof v === 'string') return v === from ? schema : v.replace(qualified, `${schema}.`);
    if (Array.isArray(v)) return v.map(rewrite);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rewrite(x)]));
    return v;
  };
  return rewrite(spec) as ScriptSpec;
}

/** Run in the template database: the procedure that script 3 calls. */
export function testProc1Sql(schema: string = DEMO.schema): Sql {
  return sql`CREATE OR REPLACE PROCEDURE ${id(schema)}.testproc1()
LANGUAGE plpgsql
AS ${lit(dedent`
  DECLARE
      t_int int := 1;
  BEGIN
      WHILE t_int <= 5 LOOP
          INSERT INTO ${id(schema).text}.parenttable (newcolumn) VALUES (t_int::varchar);
          t_int := t_int + 1;
      END LOOP;
  END;
`)}`;
}

/** The template row: a database that exists (status 2), or a schema target that create_schema() makes (pending). */
export function registerTemplateSql(name: string, kind: 'database' | 'schema' = 'database'): Sql {
  return kind === 'schema'
    ? sql`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, kind) VALUES (${lit(name)}, true, 1, 'schema')`
    : sql`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES (${lit(name)}, true, 2)`;
}

/** A pending tenant; a schema one is made by create_schema() in the admin database. */
export function registerTenantSql(name: string, kind?: 'schema'): Sql {
  return kind === 'schema'
    ? sql`INSERT INTO admmgt.vendor_db_settings (dbname, status, kind) VALUES (${lit(name)}, 1, 'schema')`
    : sql`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES (${lit(name)}, 1)`;
}
