import type { CommandModule } from 'yargs';
import { callOptions, checkRun, createDatabases, type CallArgv } from '../calls.js';
import { withAdmin } from '../context.js';

export const command: CommandModule<object, CallArgv> = {
  command: 'create-databases',
  describe: 'CALL admmgt.create_database(): create every pending tenant (status 1) as a copy of the template',
  builder: (y) => callOptions(y),
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => checkRun(await createDatabases(client, { parallel: a.parallel, waitSeconds: a.wait }), out, a.json, 'create')),
};
