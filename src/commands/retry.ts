// admmgt retry SCRIPT: make a script that failed on the template ready again once its cause is
// fixed (CALL admmgt.retry_script); the next apply runs it on the template first.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { integerArg } from '../calls.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { lit, sql } from '../sql.js';

export async function retryScript(client: pg.Client, scriptId: number): Promise<void> {
  await client.query(sql`CALL admmgt.retry_script(${lit(scriptId)})`.text);
}

interface RetryArgv extends GlobalArgs {
  script: number;
}

export const command: CommandModule<object, RetryArgv> = {
  command: 'retry <script>',
  describe: 'Make a script that failed on the template (status 3) ready again, once its cause is fixed (CALL admmgt.retry_script)',
  builder: (y) =>
    withGlobalOptions(y).positional('script', { type: 'string', coerce: integerArg('script', 1), demandOption: true, describe: 'The script id' }) as Argv<RetryArgv>,
  handler: (a) => withAdmin(a, async ({ client }) => retryScript(client, a.script)),
};
