// admmgt rollback --to N: CALL admmgt.rollbackScripts(p_to => N), the down steps of every script
// above N, newest first, one transaction per script and target (plpgsql/procedures/115_rollback_scripts.sql).
import type { Argv, CommandModule } from 'yargs';
import { callOptions, checkRun, integerArg, rollbackScripts, selectionOptions, type CallArgv, type SelectionArgv } from '../calls.js';
import { withAdmin } from '../context.js';

interface RollbackArgv extends CallArgv, SelectionArgv {
  to: number;
}

export const command: CommandModule<object, RollbackArgv> = {
  command: 'rollback',
  describe: 'CALL admmgt.rollbackScripts(): run the down steps of every script above --to, newest first, one transaction per script and target; without --tenant, --server or --tag the template goes back first and the scripts become designing (status 0), else the chosen tenants are pinned at --to',
  builder: (y) =>
    selectionOptions(callOptions(y))
      .option('to', { type: 'string', coerce: integerArg('to', 0), demandOption: true, describe: 'The script id to go back to (0: every script)' }) as Argv<RollbackArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => {
      checkRun(await rollbackScripts(client, {
        to: a.to, parallel: a.parallel, waitSeconds: a.wait, tenants: a.tenant, server: a.server, tag: a.tag,
      }), out, a.json, 'rollback');
    }),
};
