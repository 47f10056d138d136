// What every command that talks to the admin database shares: where it is, one client, NOTICEs
// shown as they arrive, and the summary of the run a CALL made.
import type pg from 'pg';
import { AdmmgtError, sqlstateOf } from './errors.js';
import type { Argv } from 'yargs';
import { connect, resolveAdmin, type AdminTarget, type Notice } from './connection.js';

export interface GlobalArgs {
  url?: string;
  embedded?: boolean;
  quiet?: boolean;
}

export function withGlobalOptions<T>(y: Argv<T>): Argv<T & GlobalArgs> {
  return y
    .option('url', {
      type: 'string',
      describe: 'Admin database URL, postgresql://... (default: DATABASE_URL, then the libpq variables PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE, PGPASSFILE)',
    })
    .option('embedded', {
      type: 'boolean',
      describe: 'Use the embedded PostgreSQL (the one admmgt demo starts), starting it if it is stopped',
    })
    .option('quiet', { type: 'boolean', alias: 'q', describe: 'Print only errors and the result' }) as Argv<T & GlobalArgs>;
}

export type Out = (line: string) => void;

export interface Session {
  client: pg.Client;
  target: AdminTarget;
  out: Out;
}

/** A run's per-target progress NOTICE (admmgt._run in plpgsql/procedures/070_run.sql); a test pins the format. */
export const PROGRESS = /^admmgt (\w+): (\S+) (done|FAILED) {2}\((\d+)\/(\d+) done, (\d+) failed\)$/;

/**
 * NOTICEs as they arrive. On a terminal the per-target progress NOTICEs become one progress bar
 * (failures still get their own line); elsewhere every NOTICE is one line, for logs.
 */
export function noticePrinter(out: Out, tty: boolean = Boolean(process.stderr.isTTY)): (n: Notice) => void {
  let barShown = false;
  return (n) => {
    const severity = n.severity && n.severity !== 'NOTICE' ? `${n.severity}: ` : '';
    const text = `${severity}${n.message ?? ''}${n.detail ? ` (${n.detail})` : ''}`;
    const m = tty ? PROGRESS.exec(n.message ?? '') : null;
    if (m) {
      const [, op, db, , done, total, failed] = m;
      const width = 30;
      const filled = Math.round((Number(done) / Math.max(Number(total), 1)) * width);
      process.stderr.write(`\r\x1b[K${op} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}, ${failed} failed  ${db}`);
      barShown = Number(done) < Number(total);
      if (!barShown) process.stderr.write('\n');
      return;
    }
    if (barShown) {
      process.stderr.write('\n');
      barShown = false;
    }
    out(text);
  };
}

export interface AdminOptions {
  /** May use the embedded PostgreSQL when no server is given (the demo only). */
  embeddedByDefault?: boolean;
  /** Installs admmgt itself, so it may find it missing (install, demo). */
  installs?: boolean;
}

/** Refuse, saying what to run, an admin database without admmgt or a role that may not use it. */
async function checkInstalled(client: pg.Client, target: AdminTarget): Promise<void> {
  const { rows } = await client.query<{ installed: boolean; usable: boolean; role: string }>(
    `SELECT n.oid IS NOT NULL AS installed, coalesce(has_schema_privilege(n.oid, 'USAGE'), false) AS usable, current_user AS role
       FROM (SELECT 1) x LEFT JOIN pg_namespace n ON n.nspname = 'admmgt'`);
  const r = rows[0];
  if (r && !r.installed) {
    throw new AdmmgtError(`admmgt is not installed in ${target.describe}`, {
      hint: 'Install it there first: admmgt install (as a superuser), or psql -v ON_ERROR_STOP=1 -f <(admmgt sql).',
    });
  }
  if (r && !r.usable) {
    throw new AdmmgtError(`role ${r.role} may not use admmgt in ${target.describe}`, {
      hint: `As a superuser, in that database: GRANT admmgt_operator TO ${r.role};`,
    });
  }
}

/** Open the admin database, run fn, always close. */
export async function withAdmin<T>(args: GlobalArgs, fn: (s: Session) => Promise<T>, opts: AdminOptions = {}): Promise<T> {
  const out: Out = args.quiet ? () => {} : (line) => process.stderr.write(line + '\n');
  const target = await resolveAdmin({ url: args.url, embedded: args.embedded, embeddedByDefault: opts.embeddedByDefault });
  let client: pg.Client;
  try {
    client = await connect(target.config, noticePrinter(out));
  } catch (e) {
    // A refusal by the server (a wrong password, say) keeps its SQLSTATE and says which server it was.
    throw new AdmmgtError(`cannot connect to ${target.describe}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: sqlstateOf(e) ? e : undefined,
      hint: 'Check --url, DATABASE_URL or the libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE, PGPASSFILE) and the password file.',
    });
  }
  try {
    if (!opts.installs) await checkInstalled(client, target);
    return await fn({ client, target, out });
  } finally {
    await client.end().catch(() => {});
  }
}

export interface RunSummary {
  run_id: number;
  operation: string;
  targets: number;
  failed: number;
  /** Targets the upkeep records left out, not connected (maintenance and refresh). */
  skipped: number;
}

/** The run the last CALL of this session made, if it made one. */
export async function lastRun(client: pg.Client, since: number): Promise<RunSummary | undefined> {
  const { rows } = await client.query<RunSummary>(
    `SELECT run_id::int, operation, coalesce(targets, 0)::int AS targets, coalesce(failed, 0)::int AS failed,
            coalesce(skipped, 0)::int AS skipped
       FROM admmgt.runs WHERE pid = pg_backend_pid() AND run_id > $1 ORDER BY run_id DESC LIMIT 1`,
    [since],
  );
  return rows[0];
}

export async function maxRunId(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ m: number }>('SELECT coalesce(max(run_id), 0)::int AS m FROM admmgt.runs');
  return rows[0]?.m ?? 0;
}
