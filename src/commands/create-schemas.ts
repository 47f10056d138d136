import type { CommandModule } from 'yargs';
import { callOptions, checkRun, createSchemas, type CallArgv } from '../calls.js';
import { withAdmin } from '../context.js';

export const command: CommandModule<object, CallArgv> = {
  command: 'create-schemas',
  describe: 'CALL admmgt.create_schema(): create every pending schema target (status 1) as a schema with every script of its template',
  builder: (y) => callOptions(y),
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => checkRun(await createSchemas(client, { parallel: a.parallel, waitSeconds: a.wait }), out, a.json, 'create')),
};
