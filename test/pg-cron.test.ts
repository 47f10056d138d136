// The scheduling recipe of docs/operations.md ("With pg_cron in the admin database") on pg_cron
// itself: a cluster of its own with pg_cron preloaded, admmgt in its postgres database (pg_cron's
// cron.database_name), a template and two tenants. The documented cron.schedule lines run
// verbatim; then the test moves their schedules to every minute (pg_cron 1.4 has no seconds) and
// reads cron.job_run_details and the tenants' catalogs:
//  - minute 1: apply and maintenance succeed; a tenant that fails its script leaves the job
//    'succeeded' and shows in admmgt.failures;
//  - minute 2: lifecycle succeeds and drops expired partitions; apply, while another session holds
//    its operation lock, stops at once: the job is 'failed' with admmgt's message in return_message.
// Runs on Debian's PostgreSQL 15 with postgresql-15-cron (CI installs it); skipped elsewhere.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../src/cluster.js';
import { installControlPlane, OPERATION_LOCKS } from '../src/install.js';
import type { ScriptSpec } from '../templates/script.js';
import { addScript } from './support/env.js';
import { extensionGate, gatedTitle } from './support/extension.js';

const gate = await extensionGate('pg_cron', 'postgresql-15-cron', true);

const TPL = 'pgc_tpl';
const T1 = 'pgc_t1';
const T2 = 'pgc_t2'; // has a table of script 2 made by hand: the script fails there
const EVERY_MINUTE = '* * * * *';
/** A minute tick, the job's own run and some slack. */
const TICK_TIMEOUT_MS = 150_000;

/** The cron.schedule lines of docs/operations.md, "With pg_cron in the admin database", as written there. */
async function documentedLines(): Promise<string[]> {
  const text = await readFile(new URL('../docs/operations.md', import.meta.url), 'utf8');
  const after = text.split('With pg_cron in the admin database')[1];
  const block = after?.split('```sql\n')[1]?.split('```')[0];
  if (block === undefined) throw new Error('docs/operations.md has no sql block after "With pg_cron in the admin database"');
  return block.split('\n').filter((l) => l.startsWith('SELECT cron.schedule('));
}

const SCRIPT1: ScriptSpec = {
  id: 1,
  description: 'events by day, kept three days',
  tables: [{
    schema: 'app', name: 'events', lifecycle: { at: 'current_date-3' },
    columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'at', type: 'date', nullable: false }],
    partitions: [{ column: 'at', type: 'range', value: 'day' }],
  }],
};
const SCRIPT2: ScriptSpec = {
  id: 2,
  description: 'notes',
  tables: [{ schema: 'app', name: 'notes', columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'body', type: 'text' }] }],
};

let tmp: string | undefined;
let cluster: Cluster | undefined;
let admin: pg.Client;

async function on<T extends pg.QueryResultRow>(database: string, text: string, values?: unknown[]): Promise<T[]> {
  const c = new pg.Client({ connectionString: cluster!.urlFor(database) });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

const rows = async <T extends pg.QueryResultRow>(text: string, values?: unknown[]) => (await admin.query<T>(text, values)).rows;

interface JobRun {
  jobname: string;
  status: string;
  return_message: string;
}

/** Wait until each job has a finished run that started after `since`; its first such run, by name. */
async function finishedRuns(jobs: string[], since: Date): Promise<Record<string, JobRun>> {
  const deadline = Date.now() + TICK_TIMEOUT_MS;
  for (;;) {
    const found = await rows<JobRun>(
      `SELECT DISTINCT ON (j.jobname) j.jobname, d.status, d.return_message
         FROM cron.job_run_details d JOIN cron.job j ON j.jobid = d.jobid
        WHERE d.start_time > $1 AND j.jobname = ANY($2) AND d.status IN ('succeeded', 'failed')
        ORDER BY j.jobname, d.start_time`, [since, jobs]);
    if (found.length === jobs.length) return Object.fromEntries(found.map((r) => [r.jobname, r]));
    if (Date.now() > deadline) {
      const all = await rows(`SELECT j.jobname, j.schedule, d.* FROM cron.job j LEFT JOIN cron.job_run_details d ON d.jobid = j.jobid ORDER BY d.start_time`);
      throw new Error(`no finished run of ${jobs.join(', ')} after ${since.toISOString()} within ${TICK_TIMEOUT_MS / 1000} s: ${JSON.stringify(all)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

const serverNow = async (): Promise<Date> => (await rows<{ now: Date }>('SELECT clock_timestamp() AS now'))[0]!.now;

const reschedule = (jobname: string, schedule: string) =>
  admin.query('SELECT cron.alter_job(jobid, schedule => $2) FROM cron.job WHERE jobname = $1', [jobname, schedule]);

/** The daily partitions of app.events in a database, by name. */
const eventPartitions = async (database: string) =>
  (await on<{ name: string }>(database,
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'app.events'::regclass ORDER BY 1`)).map((r) => r.name);

/** events_pYYYYMMDD for every day from current_date + from through current_date + to, on the server's calendar. */
const days = async (from: number, to: number) =>
  (await rows<{ name: string }>(
    `SELECT 'events_p' || to_char(d, 'YYYYMMDD') AS name
       FROM generate_series(current_date + $1::int, current_date + $2::int, interval '1 day') AS d ORDER BY 1`, [from, to])).map((r) => r.name);

const versions = async () => Object.fromEntries((await rows<{ dbname: string; v: number }>(
  `SELECT dbname, coalesce(scriptversion, 0) AS v FROM admmgt.vendor_db_settings ORDER BY id`)).map((r) => [r.dbname, r.v]));

describe.skipIf(gate.skipReason !== null)(gatedTitle('pg_cron', gate, 'test/pg-cron.test.ts'), () => {
  beforeAll(async () => {
    if (gate.version === null) throw new Error(`pg_cron is not installed for ${process.env.ADMMGT_TEST_BINDIR}: apt-get install postgresql-15-cron`);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'admmgt-test-cron-'));
    await chmod(tmp, 0o755); // the server runs as the postgres OS user
    cluster = await startCluster({
      dir: tmp,
      binDir: process.env.ADMMGT_TEST_BINDIR,
      settings: {
        fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off',
        shared_preload_libraries: "'pg_cron'",
        'cron.database_name': "'postgres'",
        // pg_cron runs each job on a libpq connection of its own, to localhost over TCP unless told
        // otherwise; here over the cluster's socket, where its user needs no password.
        'cron.host': `'${path.join(tmp, 'run')}'`,
      },
    });
    admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    await installControlPlane(admin);
    await admin.query('CREATE EXTENSION pg_cron');
    await admin.query(`CREATE DATABASE ${TPL}`);
    await on(TPL, 'CREATE SCHEMA app');
    await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ($1, true, 2)`, [TPL]);
    await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ($1, 1), ($2, 1)`, [T1, T2]);
    await admin.query('CALL admmgt.create_database()');
    // Script 1 and partitions for days long past, so that lifecycle has something to drop.
    await addScript(admin, SCRIPT1);
    await admin.query('CALL admmgt.applyScripts()');
    await admin.query('CALL admmgt.applyMaintenance(t_numdays => 5, p_asof => current_date - 10)');
    await on(T2, 'CREATE TABLE app.notes (id bigint)');
    await addScript(admin, SCRIPT2);
  });

  afterAll(async () => {
    if (admin) {
      await admin.query('SELECT cron.unschedule(jobid) FROM cron.job').catch(() => {});
      await admin.end().catch(() => {});
    }
    await cluster?.stop('immediate');
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('the server has pg_cron 1.4', async () => {
    expect(gate.version, `CI runs this on Debian's PostgreSQL 15: apt-get install postgresql-15-cron`).not.toBeNull();
    expect((await rows<{ extversion: string }>(`SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'`))[0]?.extversion)
      .toMatch(/^1\.4/);
  });

  it('the documented lines schedule the three jobs in the admin database', async () => {
    const lines = await documentedLines();
    expect(lines).toHaveLength(3);
    for (const line of lines) await admin.query(line);
    expect(await rows(`SELECT jobname, schedule, command, database, username FROM cron.job ORDER BY jobname`)).toEqual([
      { jobname: 'admmgt-apply', schedule: '*/10 * * * *', command: 'CALL admmgt.applyScripts()', database: 'postgres', username: 'postgres' },
      { jobname: 'admmgt-lifecycle', schedule: '45 2 * * 0', command: 'CALL admmgt.applyLifecycle(p_wait_seconds => 3600)', database: 'postgres', username: 'postgres' },
      { jobname: 'admmgt-maintenance', schedule: '15 2 * * *', command: 'CALL admmgt.applyMaintenance(t_numdays => 30)', database: 'postgres', username: 'postgres' },
    ]);
  });

  it('apply and maintenance run as jobs and succeed; a tenant that fails its script shows in admmgt.failures, not in the job', async () => {
    const since = await serverNow();
    await reschedule('admmgt-apply', EVERY_MINUTE);
    await reschedule('admmgt-maintenance', EVERY_MINUTE);
    const runs = await finishedRuns(['admmgt-apply', 'admmgt-maintenance'], since);
    expect(runs['admmgt-apply']).toMatchObject({ status: 'succeeded', return_message: 'CALL' });
    expect(runs['admmgt-maintenance']).toMatchObject({ status: 'succeeded', return_message: 'CALL' });

    // apply: script 2 in the template and T1; T2 had the table already and stays at script 1.
    expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 1 });
    expect(await on(T1, `SELECT scriptid FROM admmgt.applied_scripts ORDER BY 1`)).toEqual([{ scriptid: 1 }, { scriptid: 2 }]);
    expect(await on(T1, `SELECT to_regclass('app.notes')::text AS t`)).toEqual([{ t: 'app.notes' }]);
    expect(await rows(`SELECT operation, scriptid, dbname, sqlstate FROM admmgt.failures`)).toEqual([
      { operation: 'apply', scriptid: 2, dbname: T2, sqlstate: '42P07' },
    ]);
    expect(await rows(`SELECT targets, failed, finished_at IS NOT NULL AS finished FROM admmgt.runs
                        WHERE operation = 'apply' AND started_at > $1`, [since])).toEqual([{ targets: 3, failed: 1, finished: true }]);

    // maintenance: every day from today through today + 30, in the template and in every tenant,
    // next to the partitions of days long past.
    const past = await days(-10, -5);
    const window = await days(0, 30);
    for (const db of [TPL, T1, T2]) expect(await eventPartitions(db)).toEqual([...past, ...window]);
  }, TICK_TIMEOUT_MS + 30_000);

  it('lifecycle runs as a job and drops expired partitions; apply, while another session holds its lock, fails the job with admmgt\'s message', async () => {
    const holder = new pg.Client({ connectionString: cluster!.url, application_name: 'pgc-holder' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [OPERATION_LOCKS.classId, OPERATION_LOCKS.keys[0]]);
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await reschedule('admmgt-maintenance', '15 2 * * *');
      await reschedule('admmgt-lifecycle', EVERY_MINUTE);
      const since = await serverNow();
      const runs = await finishedRuns(['admmgt-apply', 'admmgt-lifecycle'], since);

      expect(runs['admmgt-lifecycle']).toMatchObject({ status: 'succeeded', return_message: 'CALL' });
      const window = await days(0, 30);
      for (const db of [TPL, T1, T2]) expect(await eventPartitions(db)).toEqual(window);

      const failed = runs['admmgt-apply']!;
      expect(failed.status).toBe('failed');
      // What libpq reports of the error: severity, message, then DETAIL, HINT and CONTEXT lines. No SQLSTATE.
      const lines = failed.return_message.split('\n');
      expect(lines[0]).toBe(
        `ERROR:  admmgt.applyScripts is already running: pid ${pid} (no admmgt run; application 'pgc-holder', user postgres), ` +
        `now idle: a call of that session failed and it keeps the lock until its next admmgt call or until it disconnects ` +
        `(SELECT pg_terminate_backend(${pid}))`);
      expect(lines).toContain('HINT:  Wait for that run to end, or pass p_wait_seconds => N to wait up to N seconds.');
      expect(failed.return_message).not.toMatch(/55P03/);
      // The refused call started no run and touched no target.
      expect(await rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'apply' AND started_at > $1`, [since])).toEqual([{ n: 0 }]);
      expect(await versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 1 });
    } finally {
      await holder.end();
    }
  }, TICK_TIMEOUT_MS + 30_000);
});
