// node dist/bench/call-cost.js [--runs 5] [--url URL]
//
// The fixed cost of a CALL: what one CALL spends beyond its targets' own work. A scheduler or a
// psql user calls each procedure in a new session, so every CALL here runs in a session of its own
// (connected before the clock starts), against a fleet of the template and one tenant database,
// through the demo's sequence: script 1 (partitioned tables, a foreign key), maintenance 200 days
// ahead, script 2, refresh after testproc1 is created in the template, script 3 (a CALL of it),
// script 4 (a column change, an index built CONCURRENTLY, a view), and an applyScripts() with
// nothing to do. For each CALL:
//   wall     the CALL's time, from the client
//   targets  the sum of its work items' elapsed_ms (script_log: from just before the target's
//            connection is opened until the admin loop has read its last result); every CALL
//            passes p_parallel => 1, so that items run one after the other and their times add up
//   fixed    wall - targets, what the CALL spent outside its items: validation, rendering, locks,
//            the run's rows, the bookkeeping of two targets, the session's first use of each
//            routine (PL/pgSQL compiles a routine once per session) and, for refresh, reading the
//            template's routines over dblink. Target (issue 15): under 100 ms.
// Prints medians of --runs (each on a fresh fleet) and writes bench/results/call-cost.json. Never
// part of npm test.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { installControlPlane } from '../src/install.js';
import { projectRoot } from '../src/paths.js';
import { DEMO, demoScripts, testProc1Sql } from '../templates/demo.js';
import { markReadySql, scriptRowsSql, type ScriptSpec } from '../templates/script.js';
import { client, copyDb, median, withServer } from './support.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    url: { type: 'string' },
  },
});
const RUNS = Number(args.runs);
const CP = 'cc_cp';
const ADMIN = 'cc_admin';
const TPL = 'cc_tpl';
const TENANT = 'cc_t1';

interface Cost {
  wall: number;
  targets: number;
  fixed: number;
}

/** One CALL in a new session of the admin database, and what its run's items spent on the targets. */
async function timeCall(call: string): Promise<Cost> {
  const admin = await client(ADMIN);
  try {
    const t0 = performance.now();
    await admin.query(call);
    const wall = performance.now() - t0;
    const { rows } = await admin.query<{ targets: number; failed: number }>(
      // An item may log several rows (maintenance: one per partition it created), each with the
      // item's time; a script in parts logs a row per part, each with its own time.
      `SELECT coalesce((SELECT sum(e) FROM (SELECT DISTINCT l.dbname, l.server, l.scriptid, l.elapsed_ms AS e
                                               FROM admmgt.script_log l WHERE l.run_id = r.run_id) i), 0)::float8 AS targets,
              coalesce(r.failed, 0)::int AS failed
         FROM admmgt.runs r
        WHERE r.run_id = (SELECT max(run_id) FROM admmgt.runs WHERE pid = pg_backend_pid())`);
    // A CALL with nothing to do opens no run.
    const row = rows[0] ?? { targets: 0, failed: 0 };
    if (row.failed) throw new Error(`${call}: ${row.failed} target(s) failed; see admmgt.failures in ${ADMIN}`);
    return { wall, targets: row.targets, fixed: wall - row.targets };
  } finally {
    await admin.end();
  }
}

async function inDb(db: string, text: string): Promise<void> {
  const c = await client(db);
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

const addScript = (spec: ScriptSpec) => inDb(ADMIN, `BEGIN;\n${scriptRowsSql(spec).text}\n${markReadySql(spec.id).text}\nCOMMIT;`);

async function freshFleet(server: pg.Client): Promise<void> {
  for (const db of [TENANT, TPL, ADMIN]) await server.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await server.query(`CREATE DATABASE ${TPL}`);
  await inDb(TPL, `CREATE SCHEMA ${DEMO.schema}`);
  await copyDb(server, CP, ADMIN);
  await inDb(ADMIN, `BEGIN;
    INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('${TPL}', true, 2, 0);
    INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('${TENANT}', 1);
    COMMIT;`);
  await inDb(ADMIN, 'CALL admmgt.create_database()');
}

/** The demo's sequence, each CALL timed: label -> cost. */
async function oneRun(server: pg.Client): Promise<Record<string, Cost>> {
  await freshFleet(server);
  await server.query('CHECKPOINT');
  const [s1, s2, s3, s4] = demoScripts as [ScriptSpec, ScriptSpec, ScriptSpec, ScriptSpec];
  const out: Record<string, Cost> = {};
  await addScript(s1);
  out['applyScripts() script 1'] = await timeCall('CALL admmgt.applyScripts(p_parallel => 1)');
  out[`applyMaintenance(t_numdays => ${DEMO.lookaheadDays})`] = await timeCall(`CALL admmgt.applyMaintenance(t_numdays => ${DEMO.lookaheadDays}, p_parallel => 1)`);
  await addScript(s2);
  out['applyScripts() script 2'] = await timeCall('CALL admmgt.applyScripts(p_parallel => 1)');
  await inDb(TPL, testProc1Sql().text);
  out['refesh_stored_procedures()'] = await timeCall('CALL admmgt.refesh_stored_procedures(p_parallel => 1)');
  await addScript(s3);
  out['applyScripts() script 3'] = await timeCall('CALL admmgt.applyScripts(p_parallel => 1)');
  await addScript(s4);
  out['applyScripts() script 4'] = await timeCall('CALL admmgt.applyScripts(p_parallel => 1)');
  out['applyScripts() nothing to do'] = await timeCall('CALL admmgt.applyScripts(p_parallel => 1)');
  return out;
}

async function main(): Promise<void> {
  await withServer(args.url, 'admmgt-cc-', { max_connections: 100 }, async (server) => {
    const version = (await server.query('SHOW server_version')).rows[0].server_version as string;
    console.log(`admmgt call-cost: PostgreSQL ${version}, ${RUNS} run(s), template + 1 tenant, a new session per CALL, ` +
      `load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    await server.query(`DROP DATABASE IF EXISTS ${CP} WITH (FORCE)`);
    await server.query(`CREATE DATABASE ${CP}`);
    const cp = await client(CP);
    await installControlPlane(cp);
    await cp.end();
    const samples: Record<string, Cost[]> = {};
    for (let r = 1; r <= RUNS; r++) {
      for (const [k, v] of Object.entries(await oneRun(server))) (samples[k] ??= []).push(v);
      console.log(`  run ${r} done`);
    }
    console.log(`\nms, median of ${RUNS}:`);
    console.log('  ' + 'CALL'.padEnd(44) + ['wall', 'targets', 'fixed'].map((h) => h.padStart(9)).join(''));
    const medians: Record<string, Cost> = {};
    for (const [k, v] of Object.entries(samples)) {
      const m = { wall: median(v.map((c) => c.wall)), targets: median(v.map((c) => c.targets)), fixed: median(v.map((c) => c.fixed)) };
      medians[k] = m;
      console.log('  ' + k.padEnd(44) + [m.wall, m.targets, m.fixed].map((x) => x.toFixed(1).padStart(9)).join(''));
    }
    const worst = Math.max(...Object.values(medians).map((m) => m.fixed));
    console.log(`\nlargest median fixed cost: ${worst.toFixed(1)} ms (target < 100)`);
    for (const db of [TENANT, TPL, ADMIN, CP]) await server.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    const outDir = path.join(projectRoot(), 'bench', 'results');
    await mkdir(outDir, { recursive: true });
    await writeFile(path.join(outDir, 'call-cost.json'), JSON.stringify({
      date: new Date().toISOString(), postgres: version, runs: RUNS, loadavg: os.loadavg(), samples, medians,
    }, null, 2) + '\n');
    console.log('wrote bench/results/call-cost.json');
  });
}

await main();
