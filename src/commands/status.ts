import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { AdmmgtError } from '../errors.js';
import { formatServers, listServers, type ServerStatus } from './cluster.js';

export interface TenantRow {
  dbname: string;
  server: string | null;
  status: number;
  status_text: string;
  scriptversion: number;
  updateflag: boolean;
  failures: number;
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

export interface Status {
  template: { dbname: string; scriptversion: number } | null;
  tenants: TenantRow[];
  servers: ServerStatus[];
  scripts: ScriptRow[];
  failures: FailureRow[];
}

export async function status(client: pg.Client): Promise<Status> {
  const targets = (
    await client.query<TenantRow & { istemplate: boolean }>(
      `SELECT dbname, server, istemplate, status, status_text, scriptversion, updateflag, failures::int
         FROM admmgt.tenant_status WHERE NOT servertemplate ORDER BY istemplate DESC, dbname`,
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
  return {
    template: tpl ? { dbname: tpl.dbname, scriptversion: tpl.scriptversion } : null,
    tenants: targets.filter((t) => !t.istemplate).map(({ istemplate: _, ...t }) => t),
    servers: await listServers(client),
    scripts,
    failures,
  };
}

const STATUS = ['designing', 'ready', 'applied', 'failed'];

export function formatStatus(s: Status): string {
  const lines: string[] = [];
  lines.push(s.template ? `template: ${s.template.dbname} at version ${s.template.scriptversion}` : 'template: none registered');
  lines.push('servers (tenants per server):', formatServers(s.servers));
  lines.push(`tenants: ${s.tenants.length}`);
  for (const t of s.tenants) {
    lines.push(`  ${t.dbname.padEnd(30)} ${(t.server ?? '(unplaced)').padEnd(16)} ${t.status_text.padEnd(9)} version ${String(t.scriptversion).padEnd(5)}${t.updateflag ? '' : ' (updateflag off)'}${t.failures ? `  ${t.failures} failure(s)` : ''}`);
  }
  lines.push(s.scripts.length ? 'scripts not yet applied everywhere:' : 'scripts: all applied');
  for (const sc of s.scripts) {
    lines.push(`  ${String(sc.id).padEnd(6)} ${STATUS[sc.status] ?? sc.status}  ${sc.description ?? ''}${sc.last_error ? `\n         error: ${sc.last_error}` : ''}`);
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
  describe: 'Show the template, the servers with their tenant counts, every tenant with server, status and version, pending and failed scripts, and failures; exit code 3 when failures are listed',
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
