// The four CALLs of the control plane, one function each, shared by their CLI commands. The
// procedures decide what happens to tenants; this only builds the CALL and reports the run.
import type pg from 'pg';
import type { Argv } from 'yargs';
import { AdmmgtError } from './errors.js';
import { lastRun, maxRunId, withGlobalOptions, type GlobalArgs, type RunSummary } from './context.js';
import { join, lit, sql, type Sql } from '../templates/sql.js';

export interface CallOptions {
  parallel?: number;
  waitSeconds?: number;
}

function intOption(name: string, v: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new AdmmgtError(`--${name} must be an integer from ${min} to ${max}, not ${v}`, 'See --help.', undefined, 2);
  }
  return v;
}

function callArgs(o: CallOptions, first: Sql[] = []): Sql {
  const args = [...first];
  const parallel = intOption('parallel', o.parallel, 1, 64);
  const wait = intOption('wait', o.waitSeconds, 0);
  if (parallel !== undefined) args.push(sql`p_parallel => ${lit(parallel)}`);
  if (wait !== undefined) args.push(sql`p_wait_seconds => ${lit(wait)}`);
  return join(args);
}

function asOfDate(value: string): Sql {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) throw new AdmmgtError(`--as-of must be a date YYYY-MM-DD, not ${value}`, 'See --help.', undefined, 2);
  return sql`${lit(value)}::date`;
}

async function runCall(client: pg.Client, call: Sql): Promise<RunSummary | undefined> {
  const before = await maxRunId(client);
  await client.query(call.text);
  return lastRun(client, before);
}

export const createDatabases = (c: pg.Client, o: CallOptions = {}) =>
  runCall(c, sql`CALL admmgt.create_database(${callArgs(o)})`);

export const applyScripts = (c: pg.Client, o: CallOptions = {}) =>
  runCall(c, sql`CALL admmgt.applyScripts(${callArgs(o)})`);

export const applyMaintenance = (c: pg.Client, days: number, o: CallOptions & { asOf?: string } = {}) => {
  const first = [sql`t_numdays => ${lit(intOption('days', days, 0) ?? 30)}`];
  if (o.asOf !== undefined) first.push(sql`p_asof => ${asOfDate(o.asOf)}`);
  return runCall(c, sql`CALL admmgt.applyMaintenance(${callArgs(o, first)})`);
};

export const applyLifecycle = (c: pg.Client, o: CallOptions & { asOf?: string; plan?: boolean } = {}) => {
  const first: Sql[] = [];
  if (o.asOf !== undefined) first.push(sql`p_asof => ${asOfDate(o.asOf)}`);
  if (o.plan) first.push(sql`p_plan => true`);
  return runCall(c, sql`CALL admmgt.applyLifecycle(${callArgs(o, first)})`);
};

export const refreshProcedures = (c: pg.Client, o: CallOptions = {}) =>
  runCall(c, sql`CALL admmgt.refesh_stored_procedures(${callArgs(o)})`);

/** Report a run; one with failed targets ends the command with an error (exit code 3). */
export function checkRun(run: RunSummary | undefined, out: (l: string) => void, json = false): void {
  if (json) process.stdout.write(JSON.stringify(run ?? { run_id: null, targets: 0, failed: 0 }) + '\n');
  if (!run) return;
  out(`run ${run.run_id}: ${run.targets} target(s) done, ${run.failed} failed`);
  if (run.failed > 0) {
    throw new AdmmgtError(
      `${run.failed} of ${run.targets} target(s) failed in run ${run.run_id}`,
      'See `admmgt status` (or SELECT * FROM admmgt.failures); fix the cause and run the command again: it retries only what is left.',
      undefined,
      3,
    );
  }
}

export interface CallArgv extends GlobalArgs {
  parallel?: number;
  wait?: number;
  json?: boolean;
}

export function callOptions<T>(y: Argv<T>): Argv<T & CallArgv> {
  return withGlobalOptions(y)
    .option('parallel', { type: 'number', describe: 'Targets worked on at once, 1 to 64 (default 4)' })
    .option('wait', {
      type: 'number',
      describe: 'Seconds to wait for another run of the same operation (default 0: stop at once)',
    })
    .option('json', { type: 'boolean', describe: 'Print a JSON summary of the run on stdout' }) as Argv<T & CallArgv>;
}
