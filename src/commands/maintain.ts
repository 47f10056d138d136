import type { Argv, CommandModule } from 'yargs';
import {
  applyMaintenance, callOptions, checkRun, dateArg, integerArg, kindOptions, selectionOptions, verifyOptions, workersOptions,
  type CallArgv, type KindArgv, type SelectionArgv, type VerifyArgv, type WorkersArgv,
} from '../calls.js';
import { withAdmin } from '../context.js';

interface MaintainArgv extends CallArgv, SelectionArgv, KindArgv, VerifyArgv, WorkersArgv {
  days: number;
  asOf?: string;
}

export const command: CommandModule<object, MaintainArgv> = {
  command: 'maintain',
  describe: 'CALL admmgt.applyMaintenance(t_numdays => N): create every RANGE partition needed from today through today + N days',
  builder: (y) =>
    workersOptions(verifyOptions(kindOptions(selectionOptions(callOptions(y)))))
      .option('days', { type: 'string', default: '30', coerce: integerArg('days', 0, 3660), describe: 'Look-ahead in days (t_numdays), 0 to 3660' })
      .option('as-of', { type: 'string', coerce: dateArg('as-of'), describe: 'Reference date YYYY-MM-DD instead of today' }) as Argv<MaintainArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) =>
      checkRun(await applyMaintenance(client, a.days, { parallel: a.parallel, waitSeconds: a.wait, kind: a.kind, tenants: a.tenant, server: a.server, tag: a.tag, asOf: a.asOf, verify: a.verify, workers: a.workers }), out, a.json, 'maintain')),
};
