// The CALLs of the control plane, one function each, shared by their CLI commands. The
// procedures decide what happens to tenants; this only builds the CALL and reports the run.
import type pg from 'pg';
import type { Argv } from 'yargs';
import { AdmmgtError, sqlstateOf, usageError } from './errors.js';
import { lastRun, maxRunId, withGlobalOptions, type GlobalArgs, type RunSummary } from './context.js';
import { join, lit, sql, type Sql } from './sql.js';

export interface CallOptions {
  parallel?: number;
  waitSeconds?: number;
}

/** An integer option, checked as typed (yargs coerce), so that `--days abc` is refused naming abc (exit code 2). */
export function integerArg(name: string, min: number, max = Number.MAX_SAFE_INTEGER): (raw: unknown) => number {
  return (raw) => {
    const text = String(raw).trim();
    const v = /^-?\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(v) || v < min || v > max) throw usageError(`--${name} must be an integer from ${min} to ${max}, not ${text}`);
    return v;
  };
}

/** A date option YYYY-MM-DD that is a real day of the calendar (2026-13-45 is refused, exit code 2). */
export function dateArg(name: string): (raw: unknown) => string {
  return (raw) => {
    const text = String(raw).trim();
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
    const d = m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
    if (!d || d.toISOString().slice(0, 10) !== text) throw usageError(`--${name} must be a date YYYY-MM-DD, not ${text}`);
    return text;
  };
}

function intOption(name: string, v: number | undefined, min: number, max?: number): number | undefined {
  return v === undefined ? undefined : integerArg(name, min, max)(v);
}

export function callArgs(o: CallOptions, first: Sql[] = []): Sql {
  const args = [...first];
  const parallel = intOption('parallel', o.parallel, 1, 64);
  const wait = intOption('wait', o.waitSeconds, 0);
  if (parallel !== undefined) args.push(sql`p_parallel => ${lit(parallel)}`);
  if (wait !== undefined) args.push(sql`p_wait_seconds => ${lit(wait)}`);
  return join(args);
}

function asOfDate(value: string): Sql {
  return sql`${lit(dateArg('as-of')(value))}::date`;
}

export async function runCall(client: pg.Client, call: Sql): Promise<RunSummary | undefined> {
  const before = await maxRunId(client);
  try {
    await client.query(call.text);
  } catch (e) {
    // The procedure's hint names its SQL parameter; a CLI user waits with --wait.
    if (sqlstateOf(e) === '55P03' && e instanceof Error && / is already running: | cannot start while /.test(e.message)) {
      throw new AdmmgtError(e.message, { cause: e, hint: 'Wait for that run to end, or pass --wait N to wait up to N seconds.' });
    }
    throw e;
  }
  return lastRun(client, before);
}

export const createDatabases = (c: pg.Client, o: CallOptions = {}) =>
  runCall(c, sql`CALL admmgt.create_database(${callArgs(o)})`);

export const createSchemas = (c: pg.Client, o: CallOptions = {}) =>
  runCall(c, sql`CALL admmgt.create_schema(${callArgs(o)})`);

/** The kinds of target: a database per tenant, or a schema per tenant. */
export const KINDS = ['database', 'schema'] as const;
export type Kind = (typeof KINDS)[number];

/** Which kind of target an operation works on (t_separatedb 1: databases, 0: schemas); absent: every kind. */
export interface KindOption {
  kind?: Kind;
}

/** t_separatedb, the procedures' first argument, when a kind is chosen; nothing otherwise (every kind). */
export function kindArgs(o: KindOption): Sql[] {
  if (o.kind === undefined) return [];
  if (!KINDS.includes(o.kind)) throw usageError(`--kind must be database or schema, not ${String(o.kind)}`);
  return [sql`t_separatedb => ${lit(o.kind === 'database' ? 1 : 0)}`];
}

/** Which targets an operation works on: by name, server and tag (all of them must match). */
export interface Selection {
  tenants?: string[];
  server?: string;
  tag?: string;
}

export function selectionArgs(o: Selection): Sql[] {
  const args: Sql[] = [];
  if (o.tenants?.length) args.push(sql`p_tenants => ARRAY[${join(o.tenants.map((t) => lit(t)))}]::text[]`);
  if (o.server !== undefined) args.push(sql`p_server => ${lit(o.server)}`);
  if (o.tag !== undefined) args.push(sql`p_tag => ${lit(o.tag)}`);
  return args;
}

/** Upkeep that checks the targets for real: p_verify => true connects even to those whose upkeep record says they are up to date. */
export interface VerifyOption {
  verify?: boolean;
}

export function verifyArgs(o: VerifyOption): Sql[] {
  return o.verify ? [sql`p_verify => true`] : [];
}

/** A run spread over sessions of the admin database: p_workers => N, this session and N-1 workers. */
export interface WorkersOption {
  /** Sessions on the admin database that share the tenants (p_workers); absent: this session alone. */
  workers?: number;
}

export function workersArgs(o: WorkersOption): Sql[] {
  const workers = intOption('workers', o.workers, 1, 64);
  return workers === undefined ? [] : [sql`p_workers => ${lit(workers)}`];
}

export interface ApplyOptions extends CallOptions, Selection, KindOption, WorkersOption {
  /** Up to this script id only. */
  upto?: number;
  maxFailures?: number;
  canary?: number;
}

export const applyScripts = (c: pg.Client, o: ApplyOptions = {}) => {
  const first = [...kindArgs(o), ...selectionArgs(o)];
  const upto = intOption('to', o.upto, 0);
  const maxFailures = intOption('max-failures', o.maxFailures, 1);
  const canary = intOption('canary', o.canary, 1);
  if (upto !== undefined) first.push(sql`p_upto => ${lit(upto)}`);
  if (maxFailures !== undefined) first.push(sql`p_max_failures => ${lit(maxFailures)}`);
  if (canary !== undefined) first.push(sql`p_canary => ${lit(canary)}`);
  first.push(...workersArgs(o));
  return runCall(c, sql`CALL admmgt.applyScripts(${callArgs(o, first)})`);
};

/** What a plan of apply narrows to: the same targets and scripts as applyScripts() with these options. */
export type PlanOptions = Selection & KindOption & { upto?: number };

/** The named arguments of plan_scripts(), plan_steps() and plan_destructive() for a plan's options. */
export function planArgs(o: PlanOptions): Sql {
  const args = [...kindArgs(o), ...selectionArgs(o)];
  const upto = intOption('to', o.upto, 0);
  if (upto !== undefined) args.push(sql`p_upto => ${lit(upto)}`);
  return join(args);
}

export interface RollbackOptions extends CallOptions, Selection {
  /** The script id to go back to: every script above it is rolled back. */
  to: number;
}

/** CALL admmgt.rollbackScripts(p_to => N, ...): the down steps of every script above N, newest first, on the chosen targets. */
export const rollbackScripts = (c: pg.Client, o: RollbackOptions) => {
  const to = intOption('to', o.to, 0);
  if (to === undefined) throw usageError('rollback needs --to N, the script id to go back to');
  return runCall(c, sql`CALL admmgt.rollbackScripts(${callArgs(o, [sql`p_to => ${lit(to)}`, ...selectionArgs(o)])})`);
};

export type MaintenanceOptions = CallOptions & Selection & KindOption & VerifyOption & WorkersOption & { asOf?: string };

export const applyMaintenance = (c: pg.Client, days: number, o: MaintenanceOptions = {}) => {
  const first = [...kindArgs(o), sql`t_numdays => ${lit(intOption('days', days, 0) ?? 30)}`, ...selectionArgs(o), ...verifyArgs(o), ...workersArgs(o)];
  if (o.asOf !== undefined) first.push(sql`p_asof => ${asOfDate(o.asOf)}`);
  return runCall(c, sql`CALL admmgt.applyMaintenance(${callArgs(o, first)})`);
};

export const applyLifecycle = (c: pg.Client, o: CallOptions & Selection & WorkersOption & { asOf?: string; plan?: boolean } = {}) => {
  const first: Sql[] = [...selectionArgs(o), ...workersArgs(o)];
  if (o.asOf !== undefined) first.push(sql`p_asof => ${asOfDate(o.asOf)}`);
  if (o.plan) first.push(sql`p_plan => true`);
  return runCall(c, sql`CALL admmgt.applyLifecycle(${callArgs(o, first)})`);
};

export const detectDrift = (c: pg.Client, o: CallOptions & Selection & VerifyOption & WorkersOption = {}) =>
  runCall(c, sql`CALL admmgt.detectDrift(${callArgs(o, [...selectionArgs(o), ...verifyArgs(o), ...workersArgs(o)])})`);

/** What a refresh works on: the targets of a kind, and only those at version sinceScript or above (t_scriptid). */
export interface RefreshOptions extends CallOptions, Selection, KindOption, VerifyOption, WorkersOption {
  sinceScript?: number;
}

function refreshArgs(o: RefreshOptions): Sql[] {
  const first = kindArgs(o);
  const since = intOption('since-script', o.sinceScript, 0);
  if (since !== undefined) first.push(sql`t_scriptid => ${lit(since)}`);
  return [...first, ...selectionArgs(o), ...verifyArgs(o), ...workersArgs(o)];
}

export const refreshProcedures = (c: pg.Client, o: RefreshOptions = {}) =>
  runCall(c, sql`CALL admmgt.refesh_stored_procedures(${callArgs(o, refreshArgs(o))})`);

export const refreshViews = (c: pg.Client, o: RefreshOptions = {}) =>
  runCall(c, sql`CALL admmgt.refesh_views(${callArgs(o, refreshArgs(o))})`);

export interface DropTenantOptions {
  /** The tenant's name, retyped: without it the procedure only says what it would do. */
  confirm?: string;
  /** false: drop the database or schema instead of renaming it to its archive name. */
  archive?: boolean;
  plan?: boolean;
  waitSeconds?: number;
}

export const dropTenant = (c: pg.Client, tenant: string, o: DropTenantOptions = {}) => {
  const first = [lit(tenant)];
  if (o.confirm !== undefined) first.push(sql`p_confirm => ${lit(o.confirm)}`);
  if (o.archive === false) first.push(sql`p_archive => false`);
  if (o.plan) first.push(sql`p_plan => true`);
  return runCall(c, sql`CALL admmgt.drop_tenant(${callArgs({ waitSeconds: o.waitSeconds }, first)})`);
};

/** Report a run; one with failed targets ends the command with an error (exit code 3). */
export function checkRun(run: RunSummary | undefined, out: (l: string) => void, json = false, operation?: string): void {
  // One shape whether or not the call made a run: {"run_id", "operation", "targets", "failed", "skipped"}.
  if (json) process.stdout.write(JSON.stringify(run ?? { run_id: null, operation: operation ?? null, targets: 0, failed: 0, skipped: 0 }) + '\n');
  if (!run) return;
  const left = run.skipped > 0 ? `, ${run.skipped} left out (up to date, not connected)` : '';
  out(`run ${run.run_id}: ${run.targets} target(s), ${run.targets - run.failed} done, ${run.failed} failed${left}`);
  if (run.failed > 0) {
    throw new AdmmgtError(`${run.failed} of ${run.targets} target(s) failed in run ${run.run_id}`, {
      hint: 'See `admmgt status` (or SELECT * FROM admmgt.failures); fix the cause and run the command again: it retries only what is left.',
      exitCode: 3,
    });
  }
}

export interface CallArgv extends GlobalArgs {
  parallel?: number;
  wait?: number;
  json?: boolean;
}

export interface SelectionArgv {
  tenant?: string[];
  server?: string;
  tag?: string;
}

/** --tenant NAME (repeatable), --server NAME, --tag TAG: the targets an operation works on. */
export function selectionOptions<T>(y: Argv<T>): Argv<T & SelectionArgv> {
  return y
    .option('tenant', { type: 'string', array: true, describe: 'Only this tenant, a database or a schema (repeat for several); apply still runs the template first' })
    .option('server', { type: 'string', describe: 'Only the tenants on this registered server' })
    .option('tag', { type: 'string', describe: 'Only the tenants with this tag (vendor_db_settings.tags)' }) as Argv<T & SelectionArgv>;
}

export interface VerifyArgv {
  verify?: boolean;
}

/** --verify (p_verify => true): upkeep connects to every chosen target and checks it for real; drift fingerprints every one anew. */
export function verifyOptions<T>(
  y: Argv<T>,
  describe = 'Connect to every chosen target and send its batch, even those the upkeep records say are up to date (p_verify => true)',
): Argv<T & VerifyArgv> {
  return y.option('verify', { type: 'boolean', describe }) as Argv<T & VerifyArgv>;
}

export interface WorkersArgv {
  workers?: number;
}

/** --workers N (p_workers => N): the targets shared among N sessions on the admin database. */
export function workersOptions<T>(y: Argv<T>): Argv<T & WorkersArgv> {
  return y.option('workers', {
    type: 'string', coerce: integerArg('workers', 1, 64),
    describe: 'Share the tenants among this many sessions on the admin database (this one and N-1 workers), each with --parallel targets at once (default 1); off by default',
  }) as unknown as Argv<T & WorkersArgv>;
}

export interface KindArgv {
  kind?: Kind;
}

/** --kind database|schema: only the targets of that kind (t_separatedb 1 or 0); absent: every kind. */
export function kindOptions<T>(y: Argv<T>): Argv<T & KindArgv> {
  return y.option('kind', {
    type: 'string',
    choices: KINDS,
    describe: 'Only the targets of this kind: database (a database per tenant, t_separatedb => 1) or schema (a schema per tenant, t_separatedb => 0); default: every kind',
  }) as Argv<T & KindArgv>;
}

export function callOptions<T>(y: Argv<T>): Argv<T & CallArgv> {
  return withGlobalOptions(y)
    .option('parallel', { type: 'string', coerce: integerArg('parallel', 1, 64), describe: 'Targets worked on at once, 1 to 64 (default 4)' })
    .option('wait', {
      type: 'string',
      coerce: integerArg('wait', 0),
      describe: 'Seconds to wait for another run of the same operation (default 0: stop at once)',
    })
    .option('json', { type: 'boolean', describe: 'Print a JSON summary of the run on stdout' }) as Argv<T & CallArgv>;
}
