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

/** One script of a plan: how many statements each target runs for it, in which transaction mode, and where. */
export interface PlannedScript {
  scriptid: number;
  statements: number;
  transaction: 'one per target';
  targets: { dbname: string; server: string }[];
  /** The statements (with --sql): every target runs the same batch for a script. */
  sql?: string[];
}

export interface Plan {
  operation: 'apply';
  scripts: PlannedScript[];
}

/** The plan per script, in script order; targets in the order they run (the template first). */
export function summarizePlan(rows: PlanRow[], withSql = false): Plan {
  const byScript = new Map<number, PlannedScript>();
  const same = (t: { dbname: string; server: string } | undefined, r: PlanRow) => t?.dbname === r.dbname && t.server === r.server;
  for (const r of rows) {
    let p = byScript.get(r.scriptid);
    if (!p) {
      p = { scriptid: r.scriptid, statements: 0, transaction: 'one per target', targets: [], ...(withSql ? { sql: [] } : {}) };
      byScript.set(r.scriptid, p);
    }
    // A target's rows of one script come together, so a new target is a change from the last one.
    if (!same(p.targets[p.targets.length - 1], r)) p.targets.push({ dbname: r.dbname, server: r.server });
    // Every target runs the same batch for a script: count and show the first target's.
    if (p.targets.length === 1) {
      p.statements++;
      p.sql?.push(r.stmt);
    }
  }
  return { operation: 'apply', scripts: [...byScript.values()].sort((a, b) => a.scriptid - b.scriptid) };
}

const label = (t: { dbname: string; server: string }) => `${t.dbname}${t.server === 'local' ? '' : `@${t.server}`}`;

export function formatPlan(plan: Plan): string {
  return plan.scripts.map((p) => {
    const names = p.targets.slice(0, 5).map(label).join(', ') + (p.targets.length > 5 ? `, and ${p.targets.length - 5} more` : '');
    const head = `script ${p.scriptid}: ${p.statements} statement(s), ${p.transaction} transaction, on ${p.targets.length} target(s): ${names}`;
    return p.sql ? [head, ...p.sql.map((s) => `  ${s.replace(/\n/g, '\n  ')};`)].join('\n') : head;
  }).join('\n');
}

interface ApplyArgv extends CallArgv {
  plan?: boolean;
  sql?: boolean;
}

export const command: CommandModule<object, ApplyArgv> = {
  command: 'apply',
  describe: 'CALL admmgt.applyScripts(): apply ready scripts to the template, then to its copies on other servers and every tenant with updateflag',
  builder: (y) =>
    callOptions(y)
      .option('plan', {
        type: 'boolean',
        describe: 'Only say what a run would do: per script, its statements, transaction mode and targets (with --json as JSON)',
      })
      .option('sql', { type: 'boolean', describe: 'With --plan: also print the statements of each script' }) as Argv<ApplyArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => {
      if (a.plan) {
        const plan = summarizePlan(await planScripts(client), a.sql);
        if (a.json) process.stdout.write(JSON.stringify(plan) + '\n');
        else if (plan.scripts.length) process.stdout.write(formatPlan(plan) + '\n');
        if (plan.scripts.length === 0) out('nothing to apply');
        return;
      }
      checkRun(await applyScripts(client, { parallel: a.parallel, waitSeconds: a.wait }), out, a.json, 'apply');
    }),
};
