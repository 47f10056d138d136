import type { Argv, CommandModule } from 'yargs';
import {
  callOptions, checkRun, integerArg, kindOptions, refreshProcedures, selectionOptions, verifyOptions, workersOptions,
  type CallArgv, type KindArgv, type RefreshOptions, type SelectionArgv, type VerifyArgv, type WorkersArgv,
} from '../calls.js';
import { withAdmin } from '../context.js';

export interface RefreshArgv extends CallArgv, SelectionArgv, KindArgv, VerifyArgv, WorkersArgv {
  'since-script'?: number;
}

/** The options refresh-procs and refresh-views share: --kind, the selection, --verify, --workers and --since-script N (t_scriptid). */
export function refreshOptions<T>(y: Argv<T>): Argv<T & RefreshArgv> {
  return workersOptions(verifyOptions(kindOptions(selectionOptions(callOptions(y)))))
    .option('since-script', {
      type: 'string',
      coerce: integerArg('since-script', 0),
      describe: 'Only the targets at this script version or above (t_scriptid): the ones that have the objects the definitions name',
    }) as Argv<T & RefreshArgv>;
}

export function refreshCallOptions(a: RefreshArgv): RefreshOptions {
  return {
    parallel: a.parallel, waitSeconds: a.wait, kind: a.kind, sinceScript: a['since-script'], tenants: a.tenant, server: a.server, tag: a.tag,
    verify: a.verify, workers: a.workers,
  };
}

export const command: CommandModule<object, RefreshArgv> = {
  command: 'refresh-procs',
  describe: "CALL admmgt.refesh_stored_procedures(): copy the template's functions and procedures to every tenant with updateflag",
  builder: (y) => refreshOptions(y),
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => checkRun(await refreshProcedures(client, refreshCallOptions(a)), out, a.json, 'refresh')),
};
