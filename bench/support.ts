// What the benchmarks share: the server they reach (or start), a client of one of its databases, a median,
// and a database copied from another.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startCluster, type Cluster } from '../src/cluster.js';

let baseUrl: string;

/** The server every client() reaches: a superuser URL of any of its databases. */
export function setServer(url: string): void {
  baseUrl = url;
}

export const urlFor = (db: string) => {
  const u = new URL(baseUrl);
  u.pathname = '/' + db;
  return u.toString();
};

export async function client(db: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: urlFor(db) });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** Run fn over items, at most p at a time. */
export async function pool<T>(items: T[], p: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(p, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** The wall time of fn, in ms. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** CREATE DATABASE to TEMPLATE from, waiting out an autovacuum worker still connected to from. */
export async function copyDb(server: pg.Client, from: string, to: string): Promise<void> {
  await server.query(`DROP DATABASE IF EXISTS ${to} WITH (FORCE)`);
  for (let i = 0; ; i++) {
    try {
      await server.query(`CREATE DATABASE ${to} TEMPLATE ${from}`);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== '55006' || i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Run fn with a client of the server's postgres database: the server at url, or else an embedded
 * PostgreSQL started for it in a temporary directory (prefix) with these settings and stopped after.
 */
export async function withServer(url: string | undefined, prefix: string, settings: Record<string, string | number>,
                                 fn: (server: pg.Client) => Promise<void>): Promise<void> {
  let cluster: Cluster | undefined;
  let dir: string | undefined;
  if (url) {
    setServer(url);
  } else {
    dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    cluster = await startCluster({ dir, settings });
    setServer(cluster.url);
  }
  const server = await client('postgres');
  try {
    await fn(server);
  } finally {
    await server.end().catch(() => {});
    if (cluster) await cluster.stop('fast');
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/** Register a schema template and n pending tenant schemas (s00001, ...) in an admin database. */
export async function registerSchemas(admin: pg.Client, template: string, n: number): Promise<void> {
  await admin.query(`BEGIN;
    INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('${template}', true, 1);
    INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT 's' || lpad(i::text, 5, '0'), 1 FROM generate_series(1, ${n}) i;
    COMMIT;`);
}

const TICK_MS = 1000 / 100; // USER_HZ is 100 on Linux

/** The fields after a process's command name in /proc/<pid>/stat (field 3, the state, first), or undefined when it is gone. */
async function statFields(pid: number | string): Promise<string[] | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // The command name is in parentheses and may hold spaces.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime of a process of this machine, in ms (a server's backend: pg_backend_pid()). */
export async function cpuMs(pid: number): Promise<number> {
  const f = await statFields(pid);
  if (!f) throw new Error(`no process ${pid} on this machine`);
  return (Number(f[11]) + Number(f[12])) * TICK_MS;
}

/**
 * The CPU time the whole server has spent so far, in ms: every live child of the postmaster (the
 * backends, worker sessions and target connections among them, and the background processes) and
 * the children it has reaped (cutime + cstime of the postmaster). Its difference over a call is
 * all the server spent on it, whichever backends did the work, as long as nothing else ran.
 */
export async function serverCpuMs(postmasterPid: number): Promise<number> {
  const pm = await statFields(postmasterPid);
  if (!pm) return NaN;
  let ticks = Number(pm[13]) + Number(pm[14]);
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d));
  for (const f of await Promise.all(pids.map((d) => statFields(d)))) {
    if (f && Number(f[1]) === postmasterPid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks * TICK_MS;
}

/** The pid of the postmaster of a backend of this machine (its parent). */
export async function postmasterOf(backendPid: number): Promise<number> {
  return Number((await statFields(backendPid))?.[1]);
}

/** The peak resident set of a process of this machine, in MiB (VmHWM), or NaN when it cannot be read. */
export async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}
