import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import {
  applyScripts, callOptions, checkRun, integerArg, kindOptions, planArgs, selectionOptions, workersOptions,
  type CallArgv, type KindArgv, type PlanOptions, type SelectionArgv, type WorkersArgv,
} from '../calls.js';
import { withAdmin } from '../context.js';
import { usageError } from '../errors.js';

/** One target a script would run on (SELECT DISTINCT dbname, server, scriptid FROM admmgt.plan_scripts()). */
interface PlanTarget {
  dbname: string;
  server: string;
  scriptid: number;
}

/** One step of a script as every target gets it (SELECT * FROM admmgt.plan_steps()). */
export interface PlanStep {
  scriptid: number;
  part: number;
  txmode: 'script' | 'none';
  seq: number;
  source: string;
  destructive: boolean;
  stmt: string;
}

/** One target's estimate for a step that destroys data (SELECT * FROM admmgt.plan_destructive()). */
interface DestructiveRow {
  dbname: string;
  server: string;
  scriptid: number;
  source: string;
  stmt: string;
  relation: string | null;
  est_rows: string | null;
}

/** One part of a script: a transaction of its own (txmode script) or one statement outside any (none). */
export interface PlannedPart {
  part: number;
  txmode: 'script' | 'none';
  statements: number;
}

/** A step that destroys data, with the planner's estimate of the rows it drops over the targets that would run it. */
export interface PlannedDrop {
  source: string;
  stmt: string;
  relation: string | null;
  targets: number;
  /** The sum of the estimates; targets whose table is not analyzed yet count in unknown. */
  rows: number;
  unknown: number;
}

/** One script of a plan: its statements, how each target runs them, where, and what they destroy. */
export interface PlannedScript {
  scriptid: number;
  statements: number;
  /** one per target: the whole script in one transaction; in parts: see parts. */
  transaction: 'one per target' | 'in parts';
  parts: PlannedPart[];
  targets: { dbname: string; server: string }[];
  destructive: PlannedDrop[];
  /** The statements (with --sql): every target runs the same ones for a script. */
  sql?: string[];
}

export interface Plan {
  operation: 'apply';
  scripts: PlannedScript[];
}

/** What applyScripts() would run now: per script its steps, parts, targets and destructive steps, in script order. */
export async function planApply(client: pg.Client, withSql = false, o: PlanOptions = {}): Promise<Plan> {
  const args = planArgs(o).text;
  const targets = (await client.query<PlanTarget>(
    `SELECT p.dbname, p.server, p.scriptid FROM admmgt.plan_scripts(${args}) WITH ORDINALITY AS p
      GROUP BY p.dbname, p.server, p.scriptid ORDER BY p.scriptid, min(p.ordinality)`)).rows;
  const steps = (await client.query<PlanStep>(`SELECT * FROM admmgt.plan_steps(${args}) ORDER BY scriptid, seq`)).rows;
  const drops = steps.some((st) => st.destructive)
    ? (await client.query<DestructiveRow>(`SELECT * FROM admmgt.plan_destructive(${args})`)).rows
    : [];
  return summarizePlan(targets, steps, drops, withSql);
}

export function summarizePlan(targets: PlanTarget[], steps: PlanStep[], drops: DestructiveRow[], withSql: boolean): Plan {
  const scripts = new Map<number, PlannedScript>();
  const script = (id: number): PlannedScript => {
    let p = scripts.get(id);
    if (!p) {
      p = { scriptid: id, statements: 0, transaction: 'one per target', parts: [], targets: [], destructive: [], ...(withSql ? { sql: [] } : {}) };
      scripts.set(id, p);
    }
    return p;
  };
  for (const t of targets) script(t.scriptid).targets.push({ dbname: t.dbname, server: t.server });
  for (const st of steps) {
    const p = script(st.scriptid);
    p.statements++;
    p.sql?.push(st.stmt);
    const last = p.parts[p.parts.length - 1];
    if (last?.part === st.part) last.statements++;
    else p.parts.push({ part: st.part, txmode: st.txmode, statements: 1 });
    if (p.parts.length > 1 || st.txmode === 'none') p.transaction = 'in parts';
    if (st.destructive) p.destructive.push({ source: st.source, stmt: st.stmt, relation: null, targets: 0, rows: 0, unknown: 0 });
  }
  for (const d of drops) {
    const drop = script(d.scriptid).destructive.find((x) => x.source === d.source && x.stmt === d.stmt);
    if (!drop) continue;
    drop.relation = d.relation;
    drop.targets++;
    if (d.est_rows === null) drop.unknown++;
    else drop.rows += Number(d.est_rows);
  }
  return { operation: 'apply', scripts: [...scripts.values()].sort((a, b) => a.scriptid - b.scriptid) };
}

const label = (t: { dbname: string; server: string }) => `${t.dbname}${t.server === 'local' ? '' : `@${t.server}`}`;

function formatParts(p: PlannedScript): string {
  if (p.transaction === 'one per target') return 'one per target transaction';
  const inTx = p.parts.filter((x) => x.txmode === 'script').length;
  return `in ${p.parts.length} parts per target (${inTx} transaction(s), ${p.parts.length - inTx} statement(s) outside any)`;
}

function formatDrop(d: PlannedDrop): string {
  const rows = d.targets === 0 ? ''
    : ` (${d.relation ?? 'its relation'}: about ${d.rows} row(s) over ${d.targets} target(s)${d.unknown ? `, ${d.unknown} not analyzed` : ''})`;
  return `  DESTRUCTIVE ${d.source}: ${d.stmt}${rows}`;
}

export function formatPlan(plan: Plan): string {
  return plan.scripts.map((p) => {
    const names = p.targets.slice(0, 5).map(label).join(', ') + (p.targets.length > 5 ? `, and ${p.targets.length - 5} more` : '');
    const head = `script ${p.scriptid}: ${p.statements} statement(s), ${formatParts(p)}, on ${p.targets.length} target(s): ${names}`;
    return [head, ...p.destructive.map(formatDrop), ...(p.sql ?? []).map((s) => `  ${s.replace(/\n/g, '\n  ')};`)].join('\n');
  }).join('\n');
}

interface ApplyArgv extends CallArgv, SelectionArgv, KindArgv, WorkersArgv {
  plan?: boolean;
  sql?: boolean;
  to?: number;
  'max-failures'?: number;
  canary?: number;
}

export const command: CommandModule<object, ApplyArgv> = {
  command: 'apply',
  describe: 'CALL admmgt.applyScripts(): apply ready scripts to the template, then to its copies on other servers and every tenant with updateflag',
  builder: (y) =>
    workersOptions(kindOptions(selectionOptions(callOptions(y))))
      .option('to', { type: 'string', coerce: integerArg('to', 0), describe: 'Up to this script id only (the template too)' })
      .option('max-failures', { type: 'string', coerce: integerArg('max-failures', 1), describe: 'Stop starting targets once this many have failed; the rest stay untouched' })
      .option('canary', { type: 'string', coerce: integerArg('canary', 1), describe: 'Apply to this many tenants first (after the template); the rest only if none of them failed' })
      .option('plan', {
        type: 'boolean',
        describe: 'Only say what a run would do: per script, its statements, transaction mode or parts, targets and the steps that destroy data with row estimates (with --json as JSON)',
      })
      .option('sql', { type: 'boolean', describe: 'With --plan: also print the statements of each script' }) as Argv<ApplyArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => {
      if (a.plan) {
        // A plan is of what would run if every target succeeded: the stop rules change nothing in it.
        const plan = await planApply(client, a.sql, { kind: a.kind, tenants: a.tenant, server: a.server, tag: a.tag, upto: a.to });
        if (a.json) process.stdout.write(JSON.stringify(plan) + '\n');
        else if (plan.scripts.length) process.stdout.write(formatPlan(plan) + '\n');
        if (plan.scripts.length === 0) out('nothing to apply');
        return;
      }
      checkRun(await applyScripts(client, {
        parallel: a.parallel, waitSeconds: a.wait, kind: a.kind, tenants: a.tenant, server: a.server, tag: a.tag,
        upto: a.to, maxFailures: a['max-failures'], canary: a.canary, workers: a.workers,
      }), out, a.json, 'apply');
    }),
};
