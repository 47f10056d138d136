import type { CommandModule } from 'yargs';
import { callOptions, checkRun, refreshProcedures, type CallArgv } from '../calls.js';
import { withAdmin } from '../context.js';

export const command: CommandModule<object, CallArgv> = {
  command: 'refresh-procs',
  describe: "CALL admmgt.refesh_stored_procedures(): copy the template's functions and procedures to every tenant with updateflag",
  builder: (y) => callOptions(y),
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => checkRun(await refreshProcedures(client, { parallel: a.parallel, waitSeconds: a.wait }), out, a.json, 'refresh')),
};
