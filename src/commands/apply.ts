import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { applyScripts, callOptions, checkRun, type CallArgv } from '../calls.js';
import { withAdmin } from '../context.js';

export interface PlanRow {
  dbname: string;
  server: string;
  scriptid: number;
  seq: number;
  stmt: string;
}

/** What applyScripts() would run now, per target and script (SELECT * FROM admmgt.plan_scripts()). */
export async function planScripts(client: pg.Client): Promise<PlanRow[]> {
  return (await client.query<PlanRow>('SELECT dbname, server, scriptid, seq, stmt FROM admmgt.plan_scripts()')).rows;
}

interface ApplyArgv extends CallArgv {
  plan?: boolean;
}

export const command: CommandModule<object, ApplyArgv> = {
  command: 'apply',
  describe: 'CALL admmgt.applyScripts(): apply ready scripts to the template, then to its copies on other servers and every tenant with updateflag',
  builder: (y) =>
    callOptions(y).option('plan', {
      type: 'boolean',
      describe: 'Only list, per target, the statements a run would execute',
    }) as Argv<ApplyArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => {
      if (a.plan) {
        const rows = await planScripts(client);
        let last = '';
        for (const r of rows) {
          const head = `-- ${r.dbname}${r.server === 'local' ? '' : `@${r.server}`}: script ${r.scriptid}`;
          if (head !== last) process.stdout.write(`${head}\n`);
          last = head;
          process.stdout.write(`${r.stmt};\n`);
        }
        if (rows.length === 0) out('nothing to apply');
        return;
      }
      checkRun(await applyScripts(client, { parallel: a.parallel, waitSeconds: a.wait }), out, a.json);
    }),
};
