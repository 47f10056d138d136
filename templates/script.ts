// A migration script as typed data, and the SQL that writes it into admmgt's script tables.
// Table ids come from the rows just inserted (RETURNING), never from guesses, so the same script
// can be registered on any install.
import { id, join, lit, raw, sql, type Sql } from '../src/sql.js';

export interface ColumnSpec {
  name: string;
  type: string;
  nullable?: boolean;
  default?: string;
  primaryKey?: boolean;
  identity?: boolean;
}

export interface PartitionSpec {
  column: string;
  type: 'list' | 'range';
  /** The list value, or the range interval (day, week, month, quarter, year). */
  value: string;
  tablespace?: string;
  sub?: { column: string; interval: string; tablespace?: string };
}

export interface TableSpec {
  schema: string;
  name: string;
  columns: ColumnSpec[];
  partitions?: PartitionSpec[];
  lifecycle?: Record<string, string>;
  tablespace?: string;
  /** A DEFAULT partition keeps rows outside the partitions (script_tables.defaultpart). */
  defaultPartition?: boolean;
}

export interface ForeignKeySpec {
  schema: string;
  child: string;
  parent: string;
  columns: [child: string, parent: string][];
  onDelete?: 'CASCADE' | 'RESTRICT' | 'SET NULL' | 'SET DEFAULT' | 'NO ACTION';
  notValid?: boolean;
}

export interface ScriptSpec {
  id: number;
  description: string;
  tables?: TableSpec[];
  /** Columns added to tables that earlier scripts created. */
  addColumns?: { schema: string; table: string; column: ColumnSpec }[];
  foreignKeys?: ForeignKeySpec[];
  calls?: string[];
  // --- views and triggers (script_views, script_triggers) ---
  views?: ViewSpec[];
  triggers?: TriggerSpec[];
}

const flag = (b: boolean | undefined): Sql => lit(b ? 1 : 0);

// --- views and triggers (script_views, script_triggers) ---------------------------------------

/** A view, plain or materialized (script_views). */
export interface ViewSpec {
  schema: string;
  name: string;
  /** What follows AS: one query, schema-qualified names; required unless action is 'drop'. */
  query?: string;
  materialized?: boolean;
  /** replace: CREATE OR REPLACE VIEW; a materialized view is dropped and created again. Default create. */
  action?: 'create' | 'replace' | 'drop';
  /** A drop is refused unless this is true. */
  confirm?: boolean;
}

/** A trigger, with its function when functionBody is given (script_triggers). */
export interface TriggerSpec {
  schema: string;
  table: string;
  name: string;
  /** Default AFTER. */
  timing?: 'BEFORE' | 'AFTER' | 'INSTEAD OF';
  /** INSERT, UPDATE, UPDATE OF col[, col], DELETE, TRUNCATE joined by OR; default INSERT. */
  events?: string;
  /** Default ROW. */
  forEach?: 'ROW' | 'STATEMENT';
  /** The WHEN condition: one expression, without the parentheses. */
  when?: string;
  /** The trigger function, in the trigger's schema. */
  function: string;
  /** Its PL/pgSQL body; without it the function must exist already. */
  functionBody?: string;
  /** Default create. drop removes the trigger, not its function. */
  action?: 'create' | 'replace' | 'drop';
}

/** The tables these rows go to, for markReadySql. */
const VIEW_TRIGGER_TABLES = ['script_views', 'script_triggers'];

function viewTriggerRowsSql(s: ScriptSpec): Sql[] {
  const views = (s.views ?? []).map((v) =>
    sql`INSERT INTO admmgt.script_views (scriptid, schemaname, viewname, query, materialized, action, confirm)
      VALUES (${lit(s.id)}, ${lit(v.schema)}, ${lit(v.name)}, ${lit(v.query ?? null)}, ${flag(v.materialized)}, ${lit(v.action ?? 'create')}, ${lit(v.confirm ?? false)});`);
  const triggers = (s.triggers ?? []).map((t) =>
    sql`INSERT INTO admmgt.script_triggers (scriptid, schemaname, tablename, triggername, timing, events, foreach, whenclause, functionname, functionbody, action)
      VALUES (${lit(s.id)}, ${lit(t.schema)}, ${lit(t.table)}, ${lit(t.name)}, ${lit(t.timing ?? 'AFTER')}, ${lit(t.events ?? 'INSERT')},
              ${lit(t.forEach ?? 'ROW')}, ${lit(t.when ?? null)}, ${lit(t.function)}, ${lit(t.functionBody ?? null)}, ${lit(t.action ?? 'create')});`);
  return [...views, ...triggers];
}

// --- end of views and triggers -----------------------------------------------------------------

function columnValues(c: ColumnSpec): Sql {
  return sql`${lit(c.name)}, ${lit(c.type)}, ${lit(c.nullable === false || c.primaryKey ? 0 : 1)}, ${lit(c.default ?? null)}, ${flag(c.primaryKey)}, ${flag(c.identity)}`;
}

function tableSql(scriptId: number, t: TableSpec): Sql {
  const parts: Sql[] = [
    sql`t AS (INSERT INTO admmgt.script_tables (schemaname, scriptid, tablename, haspart, lifecycle, tblspace, defaultpart)
           VALUES (${lit(t.schema)}, ${lit(scriptId)}, ${lit(t.name)}, ${flag((t.partitions?.length ?? 0) > 0)},
                   ${t.lifecycle ? sql`${lit(JSON.stringify(t.lifecycle))}::jsonb` : raw('NULL')}, ${lit(t.tablespace ?? null)},
                   ${flag(t.defaultPartition)})
           RETURNING id)`,
    sql`c AS (INSERT INTO admmgt.script_table_columns (tableid, scriptid, columnname, datatype, nullable, defaultval, isprimarykey, isidentity)
           SELECT t.id, ${lit(scriptId)}, v.* FROM t, (VALUES ${join(t.columns.map((c) => sql`(${columnValues(c)})`))})
             AS v(columnname, datatype, nullable, defaultval, isprimarykey, isidentity)
           RETURNING 1)`,
  ];
  const partitions = (t.partitions ?? []).map(
    (p) => sql`(${lit(p.column)}, ${lit(p.type)}, ${lit(p.value)}, ${lit(p.tablespace ?? null)}, ${lit(p.sub?.column ?? null)}, ${lit(p.sub ? 'range' : null)}, ${lit(p.sub?.interval ?? null)}, ${lit(p.sub?.tablespace ?? null)})`,
  );
  const last = partitions.length
    ? sql`INSERT INTO admmgt.script_table_partitions (tableid, partcolumnname, parttype, partvalue, parttbs, subpartcolumnname, subparttype, subpartvalue, subparttbs)
          SELECT t.id, v.* FROM t, (VALUES ${join(partitions)})
            AS v(partcolumnname, parttype, partvalue, parttbs, subpartcolumnname, subparttype, subpartvalue, subparttbs)`
    : raw('SELECT count(*) FROM c');
  return sql`WITH ${join(parts, ',\n')}\n${last};`;
}

/** The rows of one script, left in status 0 (designing). */
export function scriptRowsSql(s: ScriptSpec): Sql {
  const out: Sql[] = [sql`INSERT INTO admmgt.scripts (id, description) VALUES (${lit(s.id)}, ${lit(s.description)});`];
  for (const t of s.tables ?? []) out.push(tableSql(s.id, t));
  for (const a of s.addColumns ?? []) {
    out.push(sql`INSERT INTO admmgt.script_table_columns (tableid, scriptid, columnname, datatype, nullable, defaultval, isprimarykey, isidentity)
      SELECT t.id, ${lit(s.id)}, ${columnValues(a.column)}
        FROM admmgt.script_tables t
       WHERE lower(t.schemaname) = lower(${lit(a.schema)}) AND lower(t.tablename) = lower(${lit(a.table)}) AND t.scriptid < ${lit(s.id)}
       ORDER BY t.scriptid DESC LIMIT 1;`);
  }
  for (const f of s.foreignKeys ?? []) {
    f.columns.forEach(([child, parent], i) =>
      out.push(sql`INSERT INTO admmgt.script_table_fkeys (scriptid, schemaname, childtablename, childcolumnname, parenttablename, parentcolumnname, keyorder, delrule, novalidate)
        VALUES (${lit(s.id)}, ${lit(f.schema)}, ${lit(f.child)}, ${lit(child)}, ${lit(f.parent)}, ${lit(parent)}, ${lit(i + 1)}, ${lit(f.onDelete ?? 'NO ACTION')}, ${flag(f.notValid)});`),
    );
  }
  for (const c of s.calls ?? []) {
    out.push(sql`INSERT INTO admmgt.script_procs (scriptid, proccallstmt) VALUES (${lit(s.id)}, ${lit(c)});`);
  }
  out.push(...changeRowsSql(s));
  out.push(...viewTriggerRowsSql(s));
  out.push(...indexSqlRowsSql(s));
  return join(out, '\n');
}

/** Mark a script and its rows ready (status 1), as a DBA does when the design is complete. */
export function markReadySql(scriptId: number): Sql {
  const tables = ['script_tables', 'script_table_columns', 'script_table_fkeys', 'script_procs', ...CHANGE_TABLES, ...VIEW_TRIGGER_TABLES, ...INDEX_SQL_TABLES];
  return join([
    ...tables.map((t) => sql`UPDATE admmgt.${id(t)} SET status = 1 WHERE scriptid = ${lit(scriptId)};`),
    sql`UPDATE admmgt.scripts SET status = 1 WHERE id = ${lit(scriptId)};`,
  ], '\n');
}

// ---- Changes to what earlier scripts made: script_column_changes, script_table_changes, script_constraints.
// One block, merged into ScriptSpec by declaration merging, so other kinds can be added apart from it.

/** The table a change is about, by the name it has when the script runs. */
export interface ChangeTarget {
  schema: string;
  table: string;
}

/** One script_column_changes row. A drop must say confirm: true (the renderer refuses it otherwise). */
export type ColumnChangeSpec = ChangeTarget & { column: string } & (
  | { action: 'type'; type: string; /** A USING expression: one SQL fragment. */ using?: string }
  | { action: 'set_not_null' | 'drop_not_null' | 'drop_default' }
  | { action: 'set_default'; /** One SQL expression, as script_table_columns.defaultval. */ default: string }
  | { action: 'rename'; newName: string }
  | { action: 'drop'; confirm: true }
);

/** One script_table_changes row. */
export type TableChangeSpec = ChangeTarget & ({ action: 'rename'; newName: string } | { action: 'drop'; confirm: true });

/** One script_constraints row. */
export type ConstraintSpec = ChangeTarget & { name: string } & (
  | { kind: 'unique'; columns: string[] }
  | { kind: 'check'; /** One SQL boolean expression. */ check: string; notValid?: boolean }
  | { kind: 'validate' }
);

export interface ScriptSpec {
  columnChanges?: ColumnChangeSpec[];
  tableChanges?: TableChangeSpec[];
  constraints?: ConstraintSpec[];
}

const CHANGE_TABLES = ['script_column_changes', 'script_table_changes', 'script_constraints'];

function columnChangeValues(c: ColumnChangeSpec): { newValue: string | null; using: string | null; confirm: boolean } {
  switch (c.action) {
    case 'type': return { newValue: c.type, using: c.using ?? null, confirm: false };
    case 'set_default': return { newValue: c.default, using: null, confirm: false };
    case 'rename': return { newValue: c.newName, using: null, confirm: false };
    case 'drop': return { newValue: null, using: null, confirm: c.confirm };
    default: return { newValue: null, using: null, confirm: false };
  }
}

function changeRowsSql(s: ScriptSpec): Sql[] {
  const out: Sql[] = [];
  for (const c of s.columnChanges ?? []) {
    const v = columnChangeValues(c);
    out.push(sql`INSERT INTO admmgt.script_column_changes (scriptid, schemaname, tablename, columnname, action, newvalue, usingexpr, confirm)
      VALUES (${lit(s.id)}, ${lit(c.schema)}, ${lit(c.table)}, ${lit(c.column)}, ${lit(c.action)}, ${lit(v.newValue)}, ${lit(v.using)}, ${lit(v.confirm)});`);
  }
  for (const t of s.tableChanges ?? []) {
    out.push(sql`INSERT INTO admmgt.script_table_changes (scriptid, schemaname, tablename, action, newname, confirm)
      VALUES (${lit(s.id)}, ${lit(t.schema)}, ${lit(t.table)}, ${lit(t.action)}, ${lit(t.action === 'rename' ? t.newName : null)}, ${lit(t.action === 'drop' && t.confirm)});`);
  }
  for (const k of s.constraints ?? []) {
    out.push(sql`INSERT INTO admmgt.script_constraints (scriptid, schemaname, tablename, constraintname, kind, columns, checkexpr, novalidate)
      VALUES (${lit(s.id)}, ${lit(k.schema)}, ${lit(k.table)}, ${lit(k.name)}, ${lit(k.kind)}, ${lit(k.kind === 'unique' ? k.columns.join(', ') : null)},
              ${lit(k.kind === 'check' ? k.check : null)}, ${flag(k.kind === 'check' && k.notValid)});`);
  }
  return out;
}

// ---- Indexes and plain SQL steps: script_indexes, script_sql.

/** One script_indexes row. concurrent: built without blocking writes, on a partitioned table partition by partition. */
export interface IndexSpec {
  schema: string;
  table: string;
  name: string;
  /** Column names, each optionally followed by ASC/DESC and NULLS FIRST/LAST. */
  columns: string[];
  include?: string[];
  unique?: boolean;
  /** A partial index's predicate: one SQL fragment. */
  where?: string;
  method?: 'btree' | 'hash' | 'gist' | 'spgist' | 'gin' | 'brin';
  concurrent?: boolean;
}

/** One script_sql row: plain SQL, run after the typed rows in seq order. */
export interface SqlStepSpec {
  seq: number;
  body: string;
  /** script (default): inside the script's transaction; none: one statement alone, outside any. */
  txmode?: 'script' | 'none';
}

/** One down step: plain SQL that undoes the script (script_sql, direction down), run by a rollback in seq order in its transaction. */
export interface DownStepSpec {
  seq: number;
  body: string;
}

export interface ScriptSpec {
  indexes?: IndexSpec[];
  sql?: SqlStepSpec[];
  /** The down steps that roll the script back (rollbackScripts). */
  down?: DownStepSpec[];
}

const INDEX_SQL_TABLES = ['script_indexes', 'script_sql'];

function indexSqlRowsSql(s: ScriptSpec): Sql[] {
  const out: Sql[] = [];
  for (const i of s.indexes ?? []) {
    out.push(sql`INSERT INTO admmgt.script_indexes (scriptid, schemaname, tablename, indexname, columns, include, isunique, whereclause, method, concurrent)
      VALUES (${lit(s.id)}, ${lit(i.schema)}, ${lit(i.table)}, ${lit(i.name)}, ${lit(i.columns.join(', '))}, ${lit(i.include?.join(', ') ?? null)},
              ${flag(i.unique)}, ${lit(i.where ?? null)}, ${lit(i.method ?? 'btree')}, ${flag(i.concurrent)});`);
  }
  for (const q of s.sql ?? []) {
    out.push(sql`INSERT INTO admmgt.script_sql (scriptid, seq, body, txmode) VALUES (${lit(s.id)}, ${lit(q.seq)}, ${lit(q.body)}, ${lit(q.txmode ?? 'script')});`);
  }
  for (const q of s.down ?? []) {
    out.push(sql`INSERT INTO admmgt.script_sql (scriptid, seq, body, direction) VALUES (${lit(s.id)}, ${lit(q.seq)}, ${lit(q.body)}, 'down');`);
  }
  return out;
}
