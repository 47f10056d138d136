import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { AdmmgtError } from '../errors.js';
import { formatServers, listServers, type ServerStatus } from './cluster.js';
import { formatPoolLines, readPool, type PoolSummary } from './pool.js';

export interface TenantRow {
  dbname: string;
  server: string | null;
  status: number;
  status_text: string;
  scriptversion: number;
  updateflag: boolean;
  failures: number;
  /** database or schema; null while pending and not decided yet. */
  kind: 'database' | 'schema' | null;
}

export interface ScriptRow {
  id: number;
  description: string | null;
  status: number;
  last_error: string | null;
}

export interface FailureRow {
  operation: string;
  scriptid: number | null;
  dbname: string;
  server: string;
  sqlstate: string;
  message: string;
  statement: string | null;
  finished_at: string;
}

/** A frozen script whose rows no longer say what the template applied (admmgt.script_drift()). */
export interface DriftRow {
  scriptid: number;
  frozen_at: string;
}

/** A part outside a transaction whose end admmgt did not see (admmgt.part_attempts, state started). */
export interface OpenPartRow {
  dbname: string;
  scriptid: number;
  part: number;
  updated_at: string;
}

export interface TemplateRow {
  dbname: string;
  scriptversion: number;
  kind: 'database' | 'schema' | null;
}

/** A target whose last operation was a rollback (admmgt.tenant_status.last_operation). */
export interface RollbackRow {
  dbname: string;
  scriptid: number;
  ok: boolean;
  finished_at: string;
}

export interface Status {
  /** The database template, else the schema template (see templates for both). */
  template: { dbname: string; scriptversion: number } | null;
  /** Every template: one per kind. */
  templates: TemplateRow[];
  tenants: TenantRow[];
  servers: ServerStatus[];
  /** The warm pool per server that has one (admmgt.pool_status); its databases are no tenants. */
  pool: PoolSummary[];
  scripts: ScriptRow[];
  failures: FailureRow[];
  drift: DriftRow[];
  openParts: OpenPartRow[];
  rollbacks: RollbackRow[];
}

export async function status(client: pg.Client): Promise<Status> {
  const targets = (
    await client.query<TenantRow & { istemplate: boolean }>(
      `SELECT dbname, server, istemplate, status, status_text, scriptversion, updateflag, failures::int, kind
         FROM admmgt.tenant_status WHERE NOT servertemplate ORDER BY istemplate DESC, kind = 'schema', dbname`,
    )
  ).rows;
  const tpl = targets.find((t) => t.istemplate);
  const scripts = (
    await client.query<ScriptRow>(`SELECT id, description, status, last_error FROM admmgt.scripts WHERE status <> 2 ORDER BY id`)
  ).rows;
  const failures = (
    await client.query<FailureRow>(
      `SELECT operation, scriptid, dbname, server, sqlstate, message, statement, finished_at::text FROM admmgt.failures ORDER BY finished_at DESC LIMIT 100`,
    )
  ).rows;
  const drift = (await client.query<DriftRow>('SELECT scriptid, frozen_at::text FROM admmgt.script_drift()')).rows;
  const openParts = (
    await client.query<OpenPartRow>(
      `SELECT v.dbname, a.scriptid, a.part, a.updated_at::text FROM admmgt.part_attempts a
         JOIN admmgt.vendor_db_settings v ON v.id = a.target_id WHERE a.state = 'started' ORDER BY v.dbname, a.scriptid, a.part`,
    )
  ).rows;
  const rollbacks = (
    await client.query<RollbackRow>(
      `SELECT dbname, last_scriptid AS scriptid, last_ok AS ok, last_finished_at::text AS finished_at FROM admmgt.tenant_status
        WHERE last_operation = 'rollback' ORDER BY istemplate DESC, dbname`,
    )
  ).rows;
  return {
    template: tpl ? { dbname: tpl.dbname, scriptversion: tpl.scriptversion } : null,
    templates: targets.filter((t) => t.istemplate).map((t) => ({ dbname: t.dbname, scriptversion: t.scriptversion, kind: t.kind })),
    tenants: targets.filter((t) => !t.istemplate).map(({ istemplate: _, ...t }) => t),
    servers: await listServers(client),
    pool: (await readPool(client)).pools,
    scripts,
    failures,
    drift,
    openParts,
    rollbacks,
  };
}

const STATUS = ['designing', 'ready', 'applied', 'failed'];

export function formatStatus(s: Status): string {
  const lines: string[] = [];
  if (!s.templates.length) lines.push('template: none registered');
  for (const t of s.templates) lines.push(`template: ${t.dbname} (${t.kind ?? 'pending'}) at version ${t.scriptversion}`);
  lines.push('servers (tenants per server):', formatServers(s.servers));
  lines.push(...formatPoolLines(s.pool));
  lines.push(`tenants: ${s.tenants.length}`);
  for (const t of s.tenants) {
    lines.push(`  ${t.dbname.padEnd(30)} ${(t.kind ?? '(pending)').padEnd(9)} ${(t.server ?? '(unplaced)').padEnd(16)} ${t.status_text.padEnd(9)} version ${String(t.scriptversion).padEnd(5)}${t.updateflag ? '' : ' (updateflag off)'}${t.failures ? `  ${t.failures} failure(s)` : ''}`);
  }
  lines.push(s.scripts.length ? 'scripts not yet applied everywhere:' : 'scripts: all applied');
  for (const sc of s.scripts) {
    lines.push(`  ${String(sc.id).padEnd(6)} ${STATUS[sc.status] ?? sc.status}  ${sc.description ?? ''}${sc.last_error ? `\n         error: ${sc.last_error}` : ''}`);
  }
  if (s.drift.length) {
    lines.push('scripts whose rows changed after the template applied them (every target still runs what the template ran):');
    for (const d of s.drift) lines.push(`  ${d.scriptid} (frozen ${d.frozen_at}): write a new script for the change`);
  }
  if (s.openParts.length) {
    lines.push('parts outside a transaction whose end was not seen (a rerun refuses them until resolved):');
    for (const o of s.openParts) {
      lines.push(`  ${o.dbname} script ${o.scriptid} part ${o.part} (since ${o.updated_at}): CALL admmgt.resolve_part('${o.dbname}', ${o.scriptid}, ${o.part}, true|false)`);
    }
  }
  if (s.rollbacks.length) {
    lines.push('rolled back (the last operation on these targets):');
    for (const r of s.rollbacks) {
      lines.push(`  ${r.dbname}: rollback of script ${r.scriptid} ${r.ok ? 'done' : 'FAILED'} at ${r.finished_at}`);
    }
  }
  if (s.failures.length) {
    lines.push('failures (latest outcome per target):');
    for (const f of s.failures) {
      lines.push(`  ${f.dbname} (server ${f.server}) ${f.operation}${f.scriptid ? ` script ${f.scriptid}` : ''}: ${f.message} (SQLSTATE ${f.sqlstate})${f.statement ? `\n      at: ${f.statement.split('\n')[0]}` : ''}`);
    }
  }
  return lines.join('\n');
}

interface StatusArgv extends GlobalArgs {
  json?: boolean;
}

export const command: CommandModule<object, StatusArgv> = {
  command: 'status',
  describe: 'Show the templates, the servers with their tenant counts, every tenant with its kind (database or schema), server, status and version, pending and failed scripts, scripts whose rows changed after they were applied, parts whose end was not seen, and failures; exit code 3 when failures are listed',
  builder: (y) => withGlobalOptions(y).option('json', { type: 'boolean', describe: 'Print JSON' }) as Argv<StatusArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client }) => {
      const s = await status(client);
      process.stdout.write((a.json ? JSON.stringify(s, null, 2) : formatStatus(s)) + '\n');
      if (s.failures.length) {
        throw new AdmmgtError(`${s.failures.length} failure(s) listed`, {
          hint: 'Fix their cause and run the operation again: it retries only what is left.',
          exitCode: 3,
        });
      }
    }),
};
