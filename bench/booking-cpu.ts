// node dist/bench/booking-cpu.js [--schemas 300] [--databases 50] [--runs 3] [--url URL] [--top 15] [--profile PREFIX]
//
// What the admin backend spends on one target: its CPU time (utime + stime of the backend process
// that runs the CALL, read from /proc/<pg_backend_pid()>/stat before and after), divided by the
// targets the CALL worked on (template included). CPU time of one process does not depend on how
// loaded the machine is, which wall-clock time does. Two fleets, each fresh for every run:
//   schemas    the demo's script 1 (written for the template schema) by CALL admmgt.applyScripts(0)
//              to a schema template and --schemas schemas in the admin database, p_parallel 1;
//   databases  the demo's script 1 by CALL admmgt.applyScripts(1) to a template database and
//              --databases tenant databases made by create_database(), p_parallel 1.
// Prints per run the ms of admin-backend CPU per target, their median, and where the time went:
// pg_stat_user_functions (track_functions = 'all') self time per target of the --top admmgt
// routines. --keep leaves the schema fleet (cpu_sbase) and its last run (cpu_sapply) behind, to
// look at or to copy for a profile. --profile PREFIX records the measured backend with
// `perf record -e cpu-clock -g` into PREFIX-<database>.data (read it with `perf report -i`),
// without track_functions. The server must run on this machine (to read /proc), e.g. the embedded PostgreSQL this
// script starts when no --url is given. Needs the process to be allowed to read the server's /proc
// entries (the same user, or root). Never part of npm test.
import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { installControlPlane } from '../src/install.js';
import { script1 } from '../templates/demo.js';
import { markReadySql, scriptRowsSql } from '../templates/script.js';
import { client, copyDb, cpuMs, median, registerSchemas, withServer } from './support.js';

const { values: args } = parseArgs({
  options: {
    schemas: { type: 'string', default: '300' },
    databases: { type: 'string', default: '50' },
    runs: { type: 'string', default: '3' },
    url: { type: 'string' },
    top: { type: 'string', default: '15' },
    keep: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const NS = Number(args.schemas);
const ND = Number(args.databases);
const RUNS = Number(args.runs);
const TOP = Number(args.top);
const CP = 'cpu_cp';
const STPL = 'unitemplate';


interface Measured {
  cpuPerTarget: number;
  functions: { name: string; calls: number; selfMs: number }[];
}

/** Run one CALL in a fresh session of db and measure that backend. */
async function measure(db: string, call: string, targets: number): Promise<Measured> {
  const admin = await client(db);
  try {
    // Timing every routine call would show up in the profile, so a profiled run counts none.
    if (!args.profile) await admin.query(`SET track_functions = 'all'`);
    await admin.query('SELECT pg_stat_reset()');
    const pid = (await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
    const perf = args.profile ? await startPerf(pid, `${args.profile}-${db}.data`) : undefined;
    const before = await cpuMs(pid);
    await admin.query(call);
    const after = await cpuMs(pid);
    if (perf) await stopPerf(perf);
    const failed = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.failures');
    if (failed.rows[0]?.n) throw new Error(`${call}: ${failed.rows[0].n} failures; see admmgt.failures`);
    await admin.query('SELECT pg_stat_force_next_flush()');
    await admin.query('SELECT 1');
    const reader = await client(db);
    const { rows } = await reader.query<{ name: string; calls: number; self_ms: number }>(
      `SELECT funcname AS name, calls::int, self_time::float8 AS self_ms FROM pg_stat_user_functions
        WHERE schemaname = 'admmgt' ORDER BY self_time DESC LIMIT ${TOP}`);
    await reader.end();
    return { cpuPerTarget: (after - before) / targets, functions: rows.map((r) => ({ name: r.name, calls: r.calls, selfMs: r.self_ms })) };
  } finally {
    await admin.end();
  }
}

/** perf record of one backend (cpu-clock, call graphs), for --profile; started before the CALL. */
async function startPerf(pid: number, file: string): Promise<ChildProcess> {
  const perf = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '1999', '-g', '-p', String(pid), '-o', file], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  console.log(`  perf record of backend ${pid} into ${file}`);
  return perf;
}

async function stopPerf(perf: ChildProcess): Promise<void> {
  const ended = new Promise((resolve) => perf.once('exit', resolve));
  perf.kill('SIGINT');
  await ended;
}

function report(label: string, runs: Measured[], targets: number): void {
  const cpu = runs.map((r) => r.cpuPerTarget);
  console.log(`\n${label}: admin-backend CPU ms per target, runs ${cpu.map((x) => x.toFixed(2)).join(', ')}; median ${median(cpu).toFixed(2)}`);
  console.log(`  where it went (pg_stat_user_functions self time, last run, ms per target; calls per target):`);
  for (const f of runs[runs.length - 1]?.functions ?? []) {
    console.log(`    ${f.name.padEnd(32)} ${(f.selfMs / targets).toFixed(3).padStart(8)}  ${(f.calls / targets).toFixed(1).padStart(6)}`);
  }
}

async function schemaFleet(server: pg.Client): Promise<void> {
  const base = 'cpu_sbase';
  await copyDb(server, CP, base);
  const b = await client(base);
  await registerSchemas(b, STPL, NS);
  await b.query('CALL admmgt.create_schema(p_parallel => 2)');
  const spec = JSON.parse(JSON.stringify(script1).replaceAll('"mgttest"', JSON.stringify(STPL))) as typeof script1;
  await b.query(`BEGIN;\n${scriptRowsSql(spec).text}\n${markReadySql(1).text}\nCOMMIT;`);
  await b.end();
  const runs: Measured[] = [];
  for (let r = 1; r <= RUNS; r++) {
    await copyDb(server, base, 'cpu_sapply');
    await server.query('CHECKPOINT');
    const m = await measure('cpu_sapply', 'CALL admmgt.applyScripts(0, p_parallel => 1)', NS + 1);
    console.log(`  schemas run ${r}: ${m.cpuPerTarget.toFixed(2)} ms CPU per target`);
    runs.push(m);
  }
  report(`applyScripts(0), ${NS} schemas + template`, runs, NS + 1);
  if (!args.keep) for (const db of ['cpu_sapply', base]) await server.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
}

async function dropTenants(server: pg.Client): Promise<void> {
  const { rows } = await server.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'cpu\\_t%' OR datname = 'cpu_tpl'`);
  for (const r of rows) await server.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`);
}

async function databaseFleet(server: pg.Client): Promise<void> {
  const runs: Measured[] = [];
  for (let r = 1; r <= RUNS; r++) {
    await dropTenants(server);
    await server.query('CREATE DATABASE cpu_tpl');
    const t = await client('cpu_tpl');
    await t.query('CREATE SCHEMA mgttest');
    await t.end();
    await copyDb(server, CP, 'cpu_dadmin');
    const a = await client('cpu_dadmin');
    await a.query(`BEGIN;
      INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('cpu_tpl', true, 2, 0);
      INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT 'cpu_t' || lpad(i::text, 5, '0'), 1 FROM generate_series(1, ${ND}) i;
      ${scriptRowsSql(script1).text}
      ${markReadySql(1).text}
      COMMIT;`);
    await a.query('CALL admmgt.create_database(p_parallel => 2)');
    await a.end();
    await server.query('CHECKPOINT');
    const m = await measure('cpu_dadmin', 'CALL admmgt.applyScripts(1, p_parallel => 1)', ND + 1);
    console.log(`  databases run ${r}: ${m.cpuPerTarget.toFixed(2)} ms CPU per target`);
    runs.push(m);
  }
  report(`applyScripts(1), ${ND} databases + template`, runs, ND + 1);
  await server.query('DROP DATABASE IF EXISTS cpu_dadmin WITH (FORCE)');
  await dropTenants(server);
}

async function main(): Promise<void> {
  await withServer(args.url, 'admmgt-cpu-', { max_connections: 100 }, async (server) => {
    const version = (await server.query('SHOW server_version')).rows[0].server_version as string;
    console.log(`admmgt booking-cpu: PostgreSQL ${version}, ${RUNS} run(s), load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    await server.query(`DROP DATABASE IF EXISTS ${CP} WITH (FORCE)`);
    await server.query(`CREATE DATABASE ${CP}`);
    const cp = await client(CP);
    await installControlPlane(cp);
    await cp.end();
    if (NS > 0) await schemaFleet(server);
    if (ND > 0) await databaseFleet(server);
    if (!args.keep) await server.query(`DROP DATABASE IF EXISTS ${CP} WITH (FORCE)`);
    console.log(`\nload average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  });
}

await main();
