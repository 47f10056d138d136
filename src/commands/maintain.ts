import type { Argv, CommandModule } from 'yargs';
import { applyMaintenance, callOptions, checkRun, type CallArgv } from '../calls.js';
import { withAdmin } from '../context.js';

export { applyMaintenance };

interface MaintainArgv extends CallArgv {
  days: number;
  asOf?: string;
}

export const command: CommandModule<object, MaintainArgv> = {
  command: 'maintain',
  describe: 'CALL admmgt.applyMaintenance(t_numdays => N): create every RANGE partition needed from today through today + N days',
  builder: (y) =>
    callOptions(y)
      .option('days', { type: 'number', default: 30, describe: 'Look-ahead in days (t_numdays)' })
      .option('as-of', { type: 'string', describe: 'Reference date YYYY-MM-DD instead of today' }) as Argv<MaintainArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) =>
      checkRun(await applyMaintenance(client, a.days, { parallel: a.parallel, waitSeconds: a.wait, asOf: a.asOf }), out, a.json)),
};
