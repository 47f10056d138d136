// admmgt check: every created target compared with its row, on the server the row names
// (SELECT * FROM admmgt.check_targets()). For after a restore or after moving a tenant.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { AdmmgtError } from '../errors.js';

export interface TargetCheck {
  dbname: string;
  server: string;
  registry_version: number;
  ledger_version: number | null;
  public_connect: boolean | null;
  problem: string | null;
}

export async function checkTargets(client: pg.Client, opts: { tenant?: string; server?: string } = {}): Promise<TargetCheck[]> {
  const { rows } = await client.query<TargetCheck>(
    'SELECT dbname, server, registry_version, ledger_version, public_connect, problem FROM admmgt.check_targets($1, $2)',
    [opts.tenant ?? null, opts.server ?? null]);
  return rows;
}

export function formatChecks(rows: TargetCheck[]): string {
  const bad = rows.filter((r) => r.problem);
  const lines = [`checked ${rows.length} database(s): ${bad.length} with a problem`];
  for (const r of bad) lines.push(`  ${r.dbname} (server ${r.server}): ${r.problem}`);
  return lines.join('\n');
}

interface CheckArgv extends GlobalArgs {
  tenant?: string;
  server?: string;
  json?: boolean;
}

export const command: CommandModule<object, CheckArgv> = {
  command: 'check',
  describe: 'Connect to every created database on the server its row names and compare it with the registry (ledger version, PUBLIC CONNECT); exit code 3 when one disagrees or cannot be reached',
  builder: (y) =>
    withGlobalOptions(y)
      .option('tenant', { type: 'string', describe: 'Only this database' })
      .option('server', { type: 'string', describe: 'Only the databases on this server' })
      .option('json', { type: 'boolean', describe: 'Print JSON' }) as Argv<CheckArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client }) => {
      const rows = await checkTargets(client, { tenant: a.tenant, server: a.server });
      process.stdout.write((a.json ? JSON.stringify(rows, null, 2) : formatChecks(rows)) + '\n');
      const bad = rows.filter((r) => r.problem).length;
      if (bad) throw new AdmmgtError(`${bad} database(s) disagree with the registry or cannot be reached`, { hint: 'Each line above says what to do.', exitCode: 3 });
    }),
};
