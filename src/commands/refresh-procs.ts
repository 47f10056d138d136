import type { Argv, CommandModule } from 'yargs';
import { callOptions, checkRun, refreshProcedures, selectionOptions, type CallArgv, type SelectionArgv } from '../calls.js';
import { withAdmin } from '../context.js';

export const command: CommandModule<object, CallArgv & SelectionArgv> = {
  command: 'refresh-procs',
  describe: "CALL admmgt.refesh_stored_procedures(): copy the template's functions and procedures to every tenant with updateflag",
  builder: (y) => selectionOptions(callOptions(y)) as Argv<CallArgv & SelectionArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => checkRun(await refreshProcedures(client, {
      parallel: a.parallel, waitSeconds: a.wait, tenants: a.tenant, server: a.server, tag: a.tag,
    }), out, a.json, 'refresh')),
};
