// admmgt mark-applied NAME SCRIPT: record that a tenant fixed by hand has the next script it lacks
// (CALL admmgt.mark_script_applied): its ledger row, its version and a log row; the script does not run.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { integerArg } from '../calls.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { lit, sql } from '../sql.js';

export async function markApplied(client: pg.Client, tenant: string, scriptId: number, note?: string): Promise<void> {
  await client.query(sql`CALL admmgt.mark_script_applied(${lit(tenant)}, ${lit(scriptId)}, ${lit(note ?? null)})`.text);
}

interface MarkArgv extends GlobalArgs {
  tenant: string;
  script: number;
  note?: string;
}

export const command: CommandModule<object, MarkArgv> = {
  command: 'mark-applied <tenant> <script>',
  describe: 'Record that a tenant fixed by hand has the next script it lacks: its ledger row, version and a log row; the script does not run (CALL admmgt.mark_script_applied)',
  builder: (y) =>
    withGlobalOptions(y)
      .positional('tenant', { type: 'string', demandOption: true, describe: 'The tenant database' })
      .positional('script', { type: 'string', coerce: integerArg('script', 1), demandOption: true, describe: 'The script id' })
      .option('note', { type: 'string', describe: 'Why, for the log (a ticket, what was done by hand)' }) as Argv<MarkArgv>,
  handler: (a) => withAdmin(a, async ({ client }) => markApplied(client, a.tenant, a.script, a.note)),
};
