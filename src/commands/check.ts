// admmgt check: every created target compared with its row, on the server the row names, several
// at a time (SELECT * FROM admmgt.check_targets()), then with the template at its version
// (CALL admmgt.detectDrift(), unless --no-drift). For after a restore or after moving a tenant.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { detectDrift, integerArg } from '../calls.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { AdmmgtError } from '../errors.js';
import { driftReport, driftRows, formatDrift, type DriftReport } from './drift.js';

export interface TargetCheck {
  dbname: string;
  server: string;
  registry_version: number;
  ledger_version: number | null;
  public_connect: boolean | null;
  problem: string | null;
}

export async function checkTargets(client: pg.Client, opts: { tenant?: string; server?: string; parallel?: number } = {}): Promise<TargetCheck[]> {
  const { rows } = await client.query<TargetCheck>(
    'SELECT dbname, server, registry_version, ledger_version, public_connect, problem FROM admmgt.check_targets($1, $2, $3)',
    [opts.tenant ?? null, opts.server ?? null, opts.parallel ?? null]);
  return rows;
}

export function formatChecks(rows: TargetCheck[]): string {
  const bad = rows.filter((r) => r.problem);
  const lines = [`checked ${rows.length} target(s): ${bad.length} with a problem`];
  for (const r of bad) lines.push(`  ${r.dbname} (server ${r.server}): ${r.problem}`);
  return lines.join('\n');
}

interface CheckArgv extends GlobalArgs {
  tenant?: string;
  server?: string;
  parallel?: number;
  drift: boolean;
  json?: boolean;
}

export const command: CommandModule<object, CheckArgv> = {
  command: 'check',
  describe: 'Connect to every created target on the server its row names, several at a time, and compare it with the registry (ledger version, PUBLIC CONNECT), then with the template at its version (detectDrift with p_verify => true: every fingerprint taken anew); exit code 3 when one disagrees, drifted or cannot be reached',
  builder: (y) =>
    withGlobalOptions(y)
      .option('tenant', { type: 'string', describe: 'Only this target' })
      .option('server', { type: 'string', describe: 'Only the targets on this server' })
      .option('parallel', { type: 'string', coerce: integerArg('parallel', 1), describe: 'Targets asked at once (default 4)' })
      .option('drift', { type: 'boolean', default: true, describe: 'Also compare each target with the template at its version (--no-drift: only the registry)' })
      .option('json', { type: 'boolean', describe: 'Print JSON' }) as Argv<CheckArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client }) => {
      const rows = await checkTargets(client, { tenant: a.tenant, server: a.server, parallel: a.parallel });
      let drift: DriftReport | undefined;
      if (a.drift) {
        const run = await detectDrift(client, { parallel: a.parallel, tenants: a.tenant ? [a.tenant] : undefined, server: a.server, verify: true });
        drift = driftReport(run, run ? await driftRows(client, run.run_id) : []);
      }
      if (a.json) process.stdout.write(JSON.stringify(a.drift ? { targets: rows, drift } : rows, null, 2) + '\n');
      else process.stdout.write(formatChecks(rows) + (drift ? '\n' + formatDrift(drift) : '') + '\n');
      const bad = rows.filter((r) => r.problem).length;
      const drifted = drift ? drift.drifted : 0;
      if (bad || drifted) {
        throw new AdmmgtError([bad ? `${bad} target(s) disagree with the registry or cannot be reached` : '', drifted ? `${drifted} drifted from the template` : '']
          .filter(Boolean).join('; '), { hint: 'Each line above says what to do; admmgt drift shows the objects in detail.', exitCode: 3 });
      }
    }),
};
