import type { Argv, CommandModule } from 'yargs';
import { applyLifecycle, callOptions, checkRun, dateArg, selectionOptions, workersOptions, type CallArgv, type SelectionArgv, type WorkersArgv } from '../calls.js';
import { withAdmin } from '../context.js';

interface LifecycleArgv extends CallArgv, SelectionArgv, WorkersArgv {
  plan?: boolean;
  asOf?: string;
}

export const command: CommandModule<object, LifecycleArgv> = {
  command: 'lifecycle',
  describe: 'CALL admmgt.applyLifecycle(): drop or detach expired partitions and delete expired rows, per the lifecycle of each table',
  builder: (y) =>
    workersOptions(selectionOptions(callOptions(y)))
      .option('plan', { type: 'boolean', describe: 'Only log (script_log, outcome ok, "would ...") what would be dropped, detached or deleted' })
      .option('as-of', { type: 'string', coerce: dateArg('as-of'), describe: 'Reference date YYYY-MM-DD instead of today' }) as Argv<LifecycleArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) =>
      checkRun(await applyLifecycle(client, { parallel: a.parallel, waitSeconds: a.wait, tenants: a.tenant, server: a.server, tag: a.tag, asOf: a.asOf, plan: a.plan, workers: a.workers }), out, a.json, 'lifecycle')),
};
