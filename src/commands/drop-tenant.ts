// admmgt drop-tenant NAME: offboard a tenant (CALL admmgt.drop_tenant): its sessions ended, its
// database or schema renamed to <name>_archived_<yyyymmdd> (--drop: dropped), its registry row
// marked deleted, every step in script_log. Without --yes NAME it only prints what it would do.
import type { Argv, CommandModule } from 'yargs';
import { checkRun, dropTenant, integerArg } from '../calls.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';

interface DropTenantArgv extends GlobalArgs {
  tenant: string;
  plan?: boolean;
  yes?: string;
  drop?: boolean;
  wait?: number;
  json?: boolean;
}

export const command: CommandModule<object, DropTenantArgv> = {
  command: 'drop-tenant <tenant>',
  describe: 'Offboard a tenant: end its sessions, rename its database or schema to <name>_archived_<yyyymmdd> (or drop it), mark its row deleted; without --yes NAME only print the plan (CALL admmgt.drop_tenant)',
  builder: (y) =>
    withGlobalOptions(y)
      .positional('tenant', { type: 'string', demandOption: true, describe: 'The tenant database (or schema)' })
      .option('plan', { type: 'boolean', describe: 'Only print what it would do, even with --yes' })
      .option('yes', { type: 'string', describe: 'Do it: the tenant\'s name, retyped' })
      .option('drop', { type: 'boolean', describe: 'Drop the database or schema instead of renaming it to its archive name' })
      .option('wait', { type: 'string', coerce: integerArg('wait', 0), describe: 'Seconds to wait for a running create or apply (default 0: stop at once)' })
      .option('json', { type: 'boolean', describe: 'Print a JSON summary of the run on stdout' }) as Argv<DropTenantArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => {
      const run = await dropTenant(client, a.tenant, { confirm: a.yes, archive: !a.drop, plan: a.plan, waitSeconds: a.wait });
      if (a.plan || a.yes === undefined) {
        if (a.json) process.stdout.write(JSON.stringify({ run_id: null, operation: 'drop', targets: 0, failed: 0 }) + '\n');
        out(`plan only, nothing was changed${a.plan ? '' : `: rerun with --yes ${a.tenant} to do it`}`);
        return;
      }
      checkRun(run, out, a.json, 'drop');
    }),
};
