import type { CommandModule } from 'yargs';
import { checkRun, refreshViews } from '../calls.js';
import { withAdmin } from '../context.js';
import { refreshCallOptions, refreshOptions, type RefreshArgv } from './refresh-procs.js';

export const command: CommandModule<object, RefreshArgv> = {
  command: 'refresh-views',
  describe: "CALL admmgt.refesh_views(): create or replace the template's views in every tenant with updateflag",
  builder: (y) => refreshOptions(y),
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => checkRun(await refreshViews(client, refreshCallOptions(a)), out, a.json, 'refresh')),
};
