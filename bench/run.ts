// npm run bench [-- --tenants 300 --runs 3 --parallel 1,2,4,8 --idle-tenants 1000 --maint-tenants 100 --deploy-tenants 50 --deploy-once --url URL]
//                [-- --schemas 100,1000 --only schemas|databases|deploy|pool|workers --pool-tenants 100 --workers 1,2,4,8 --original PATH --help]
//
// Times the four procedures on N tenants at several degrees of parallelism and, in the same run on
// the same server, the references they are judged against. applyScripts is timed twice: on half
// the tenants at their first connection ever ("cold": a new database builds its relation cache
// then) and on the other half after one connection, as the floor's pre-opened connections were:
//   create-loop  plain CREATE DATABASE ... TEMPLATE from Node, p at a time
//   cold floor   a new connection into each never-used database, the rendered script in one
//                transaction, no bookkeeping, p at a time (the reference of applyScripts cold)
//   node-pg-migrate  the migration tool's runner on each never-used database, one SQL migration
//                with the same statements, p = 1 and 4 (a plain migration-tool loop)
//   floor        pre-opened connections, one transaction per tenant, p at a time, no bookkeeping
//   connect+q    one new connection plus one catalog query per tenant, p at a time (the
//                reference of applyMaintenance, refesh_stored_procedures and detectDrift)
// and runs with nothing to do on --idle-tenants tenants: applyScripts(), applyMaintenance() and
// refesh_stored_procedures() after a first one of each (connections to tenant databases counted
// in pg_stat_database.sessions; the cycle's maintenance with nothing to create passes p_verify). Prints ms per tenant, medians of --runs, every ratio, and
// writes bench/results/latest.json and a chart of applyScripts beside its floors and
// node-pg-migrate against p, bench/results/apply.svg. When the server runs on this machine it
// also reads the admin backend's CPU time over the applies (per target) and its peak memory from
// /proc. Never part of npm test.
//
// The deploy pass (--deploy-tenants N, 0 skips it): a fleet of its own (admin database, template
// and N tenants at script 1, with their partitions and routines) gets a new script with a daily
// table and a new routine in the template, and is copied whole (copyDb); on one fresh copy
// CALL admmgt.deploy(t_numdays => 30) is timed, on another the same with p_workers => 4 instead of
// p_parallel => 4, on another identical one applyScripts(),
// refesh_stored_procedures() and applyMaintenance(t_numdays => 30) in a row, all at p = 4, with the
// connections each made into the tenant databases (and, at p_parallel => 4, the calling backend's
// CPU per target and the deploy's peak memory, VmHWM); on a third, the deploy floor: per database one
// new connection from Node, 4 at a time, running the script, the routine and the partitions
// maintenance renders with no bookkeeping (one cold-floor pass plus the maintenance work). Prints
// the ratios. --deploy-once times deploy() once on the fleet as built instead, with nothing to
// compare it with in the same run: each copy of a database took about a second with 3,000 on the
// server (2026-12-08), so the four fresh copies of a 2,000-tenant fleet would take hours.
//
// The warm pool (--pool-tenants N, 0 skips it; --only pool runs nothing else): bench/pool.ts, p50
// and p99 of create_database() taking a pool database beside plain CREATE DATABASE ... TEMPLATE.
//
// Schema mode (--schemas, a list of N; --only schemas runs nothing else): for each N, run and p, a
// fresh admin database with the control plane gets a schema template and N tenant schemas at
// version 0 (create_schema timed), then the demo's script 1 written for the template schema. Two
// copies of that database (CREATE DATABASE ... TEMPLATE, so both have the same catalog) are then
// timed, each after a CHECKPOINT, in alternating order from run to run:
//   applyScripts(0)  in one: CALL admmgt.applyScripts(0, p_parallel => p) (template + N schemas)
//   schema floor     in the other: one open connection per p from Node to that database; per
//                    schema (template + N) one query string: BEGIN; the ledger row admmgt writes
//                    (INSERT INTO admmgt.applied_schema_scripts); script_batch(1)'s statements with
//                    the template schema replaced by the tenant's (_schema_template + replace,
//                    rendered before the clock starts); COMMIT. No bookkeeping, no SET LOCALs.
// then, in the first copy, applyMaintenance(0) with nothing to create, refesh_stored_procedures(0)
// (the demo's testproc1 in the template schema) and a no-op applyScripts(0). Ratios:
// applyScripts(0) at p / floor on one connection (the target, <= 1.3) and / floor at p connections.
//
// The workers sweep (--workers, a list of k; empty skips it; --only workers runs nothing else):
// applyScripts(p_workers => k) beside applyScripts(p_parallel => k) and the cold floor at k, N new
// databases each, bench/workers.ts.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import { installControlPlane } from '../src/install.js';
import { projectRoot } from '../src/paths.js';
import { script1, testProc1Sql } from '../templates/demo.js';
import { markReadySql, scriptRowsSql } from '../templates/script.js';
import { id } from '../src/sql.js';
import { lineChart, type Series } from './chart.js';
import { ORIGINAL_METRICS, originalRatios, prepareOriginal } from './original.js';
import { poolPhase } from './pool.js';
import { workersPhase } from './workers.js';
import { client, copyDb, cpuMs, median, peakRssMiB, pool, registerSchemas, timed, urlFor, withServer } from './support.js';

const { values: args } = parseArgs({
  options: {
    tenants: { type: 'string', default: '300' },
    runs: { type: 'string', default: '3' },
    parallel: { type: 'string', default: '1,2,4,8' },
    'idle-tenants': { type: 'string', default: '1000' },
    'maint-tenants': { type: 'string', default: '100' },
    'deploy-tenants': { type: 'string', default: '50' },
    'deploy-once': { type: 'boolean', default: false },
    'pool-tenants': { type: 'string', default: '100' },
    url: { type: 'string' },
    schemas: { type: 'string', default: '100,1000' },
    only: { type: 'string' },
    original: { type: 'string' },
    help: { type: 'boolean', default: false },
    workers: { type: 'string', default: '1,2,4,8' },
  },
});
if (args.help) {
  console.log(`npm run bench [-- options]: admmgt's procedures timed beside their references on one server; never part of npm test.
  --tenants N          tenants of the timed cycles (300)
  --runs N             runs of every cycle; medians are printed (3)
  --parallel LIST      degrees of parallelism (1,2,4,8)
  --idle-tenants N     tenants of the nothing-to-do run, 0 skips it (1000)
  --maint-tenants N    tenants of the partition upkeep run, 0 skips it (100)
  --deploy-tenants N   tenants of the deploy pass, 0 skips it (50)
  --deploy-once        the deploy pass times deploy() once on its fleet as built, with no copies
                       and no references: for fleets in the thousands, which take hours to copy
  --schemas LIST       schema mode: tenant schemas per run, empty skips it (100,1000)
  --pool-tenants N     tenants provisioned from a warm pool, one per create_database(), 0 skips it (100)
  --workers LIST       applyScripts(p_workers => k) beside p_parallel => k and the cold floor, empty skips it (1,2,4,8)
  --only PART          schemas, databases, deploy, pool or workers: run that part alone, keep the rest of latest.json
  --original PATH      also time the original procedures (steveoliai/DB_Admin) on the same N fresh
                       tenants, one cycle per run alternating with admmgt's: PATH is a checkout of
                       that repository or its 1_admin_setup.sql, which you fetch; patched in memory
                       only to make it run (docs/performance.md lists how); ratios admmgt / original
  --url URL            a superuser URL of a server to use instead of an embedded one
  --help               this text
Writes bench/results/latest.json and bench/results/apply.svg.`);
  process.exit(0);
}
const N = Number(args.tenants);
const RUNS = Number(args.runs);
const PARALLEL = (args.parallel ?? '1,2,4,8').split(',').map(Number);
const IDLE = Number(args['idle-tenants']);
const MAINT = Number(args['maint-tenants']);
const DEPLOY = Number(args['deploy-tenants']);
const DEPLOY_ONCE = args['deploy-once'] === true;
const POOL = Number(args['pool-tenants']);
const SCHEMA_NS = (args.schemas ?? '').split(',').filter((x) => x.trim() !== '').map(Number);
const ONLY = args.only;
const ORIGINAL = args.original;
if (ORIGINAL !== undefined && (ONLY === 'schemas' || ONLY === 'deploy')) throw new Error(`bench: --original runs in the databases phase, which --only ${ONLY} skips`);
const WORKERS = (args.workers ?? '').split(',').filter((x) => x.trim() !== '').map(Number);
// The migration-tool loop runs sequentially and four at once, as issue 15 measured it.
const TOOL_P = [1, 4];
if (ONLY !== undefined && !['schemas', 'databases', 'deploy', 'pool', 'workers'].includes(ONLY)) {
  throw new Error(`bench: --only is schemas, databases, deploy, pool or workers, not ${ONLY}`);
}

const ADMIN = 'bench_admin';
const TEMPLATE = 'bench_tpl';
const tenant = (i: number) => `bench_t${String(i).padStart(5, '0')}`;
const refdb = (i: number) => `bench_r${String(i).padStart(5, '0')}`;

async function dropPrefixed(server: pg.Client, prefixes: string[]): Promise<void> {
  const { rows } = await server.query<{ datname: string }>(
    `SELECT datname FROM pg_database WHERE datname LIKE ANY ($1) ORDER BY 1`, [prefixes.map((p) => p + '%')]);
  for (const r of rows) await server.query(`DROP DATABASE IF EXISTS ${id(r.datname).text} WITH (FORCE)`);
}

/** A fresh template at version 0 and N pending tenants; script 1 ready again. */
async function resetFleet(server: pg.Client, admin: pg.Client, n: number): Promise<void> {
  await dropPrefixed(server, ['bench_t', 'bench_r']);
  await server.query(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);
  await server.query(`CREATE DATABASE ${TEMPLATE}`);
  const t = await client(TEMPLATE);
  await t.query('CREATE SCHEMA mgttest');
  await t.end();
  await admin.query(`BEGIN;
    DELETE FROM admmgt.target_results;
    DELETE FROM admmgt.drift; DELETE FROM admmgt.target_fingerprints; DELETE FROM admmgt.template_fingerprints;
    DELETE FROM admmgt.vendor_db_settings;
    INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('${TEMPLATE}', true, 2, 0);
    INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT 'bench_t' || lpad(i::text, 5, '0'), 1 FROM generate_series(1, ${n}) i;
    UPDATE admmgt.scripts SET status = 1, applied_at = NULL;
    COMMIT;`);
}

async function stmtsOfScript1(admin: pg.Client): Promise<string[]> {
  const { rows } = await admin.query<{ stmts: string[] }>('SELECT admmgt.script_batch(1) AS stmts');
  return rows[0]?.stmts ?? [];
}

async function call(admin: pg.Client, text: string): Promise<number> {
  return timed(() => admin.query(text));
}

interface Sample {
  [metric: string]: number;
}

async function cycle(server: pg.Client, admin: pg.Client, p: number): Promise<Sample> {
  const s: Sample = {};
  const adminPid = (await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
  await resetFleet(server, admin, N);
  s[`create_database p${p}`] = (await call(admin, `CALL admmgt.create_database(p_parallel => ${p})`)) / N;
  // Half the tenants get the script on their first connection ever (a new database builds its
  // relation cache then), half after one earlier connection, as the floor's pre-opened ones had.
  const half = Math.floor(N / 2);
  const warmHalf = Array.from({ length: N - half }, (_, i) => tenant(half + i + 1));
  await admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = ANY ($1)`, [warmHalf]);
  // The admin backend's own CPU over both applies, per target (template included): read from
  // /proc, so only when the server runs on this machine (NaN otherwise).
  const cpu0 = await cpuMs(adminPid).catch(() => NaN);
  s[`applyScripts cold p${p}`] = (await call(admin, `CALL admmgt.applyScripts(p_parallel => ${p})`)) / half;
  const cpu1 = await cpuMs(adminPid).catch(() => NaN);
  for (const db of warmHalf) await (await client(db)).end();
  await admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = true WHERE dbname = ANY ($1)`, [warmHalf]);
  const cpu2 = await cpuMs(adminPid).catch(() => NaN);
  s[`applyScripts p${p}`] = (await call(admin, `CALL admmgt.applyScripts(p_parallel => ${p})`)) / warmHalf.length;
  s[`admin CPU ms per target p${p}`] = ((cpu1 - cpu0) + ((await cpuMs(adminPid).catch(() => NaN)) - cpu2)) / (N + 1);
  const failed = await admin.query('SELECT count(*)::int AS n FROM admmgt.failures');
  if (failed.rows[0].n) throw new Error(`bench: ${failed.rows[0].n} failures; see admmgt.failures`);
  await call(admin, `CALL admmgt.applyMaintenance(t_numdays => 30, p_parallel => ${p})`);
  // p_verify: connect and check every target, as before upkeep records (the idle run times the call that connects to none).
  s[`applyMaintenance(30) nothing to create p${p}`] = (await call(admin, `CALL admmgt.applyMaintenance(t_numdays => 30, p_parallel => ${p}, p_verify => true)`)) / N;
  const t = await client(TEMPLATE);
  await t.query(testProc1Sql().text);
  await t.end();
  s[`refesh_stored_procedures p${p}`] = (await call(admin, `CALL admmgt.refesh_stored_procedures(p_parallel => ${p})`)) / N;
  // Drift detection over the whole fleet, compared on the admin side: first every fingerprint
  // taken anew (p_verify), then as a daily check finds it, each target's catalog stamp alone.
  s[`detectDrift full p${p}`] = (await call(admin, `CALL admmgt.detectDrift(p_parallel => ${p}, p_verify => true)`)) / N;
  s[`detectDrift p${p}`] = (await call(admin, `CALL admmgt.detectDrift(p_parallel => ${p})`)) / N;
  const drifted = await admin.query('SELECT count(*)::int AS n FROM admmgt.drift');
  if (drifted.rows[0].n) throw new Error(`bench: ${drifted.rows[0].n} drift rows in an untouched fleet; see admmgt.drift`);

  // References on fresh databases from the same template state as before the apply.
  await server.query(`DROP DATABASE IF EXISTS bench_reftpl WITH (FORCE)`);
  await server.query(`CREATE DATABASE bench_reftpl`);
  const rt = await client('bench_reftpl');
  await rt.query('CREATE SCHEMA mgttest');
  await rt.end();
  const refs = Array.from({ length: N }, (_, i) => refdb(i + 1));
  const creators = await Promise.all(Array.from({ length: p }, () => client('postgres')));
  const idle = [...creators];
  s[`create-loop p${p}`] = (await timed(() =>
    pool(refs, p, async (db) => {
      const c = idle.pop() as pg.Client;
      await c.query(`CREATE DATABASE ${db} TEMPLATE bench_reftpl`);
      idle.push(c);
    }))) / N;
  await Promise.all(creators.map((c) => c.end()));
  // The remote batch without the executor's BEGIN/COMMIT wrapper, which the floor adds itself.
  const stmts = await stmtsOfScript1(admin);
  // Thirds of the fresh databases: the cold floor, node-pg-migrate, the warm floor.
  const third = Math.floor(N / 3);
  const coldRefs = refs.slice(0, third);
  const toolRefs = refs.slice(third, 2 * third);
  const rest = refs.slice(2 * third);
  s[`cold floor p${p}`] = (await timed(() =>
    pool(coldRefs, p, async (db) => {
      const c = await client(db);
      await c.query(['BEGIN', ...stmts, 'COMMIT'].join(';\n'));
      await c.end();
    }))) / coldRefs.length;
  if (TOOL_P.includes(p)) s[`node-pg-migrate p${p}`] = (await nodePgMigrate(toolRefs, p, stmts)) / toolRefs.length;
  const conns = await Promise.all(rest.map((db) => client(db)));
  s[`floor p${p}`] = (await timed(() =>
    pool(conns, p, async (c) => {
      await c.query(['BEGIN', ...stmts, 'COMMIT'].join(';\n'));
    }))) / rest.length;
  await Promise.all(conns.map((c) => c.end()));
  s[`connect+query p${p}`] = (await timed(() =>
    pool(refs, p, async (db) => {
      const c = await client(db);
      await c.query('SELECT count(*) FROM pg_catalog.pg_class');
      await c.end();
    }))) / N;
  // The fingerprint query and the catalog stamp query themselves from a client, on a new
  // connection each: what any tool that reads these catalogs this way pays, beside which
  // detectDrift's own share shows (full, and in a fleet where nothing changed).
  const refQuery = async (q: string) => (await timed(() =>
    pool(refs, p, async (db) => {
      const c = await client(db);
      await c.query(q);
      await c.end();
    }))) / N;
  const { rows: [queries] } = await admin.query<{ fingerprint: string; stamp: string }>(
    'SELECT admmgt._fingerprint_sql() AS fingerprint, admmgt._stamp_sql() AS stamp');
  s[`connect+fingerprint p${p}`] = await refQuery(queries?.fingerprint ?? '');
  s[`connect+stamp p${p}`] = await refQuery(`SELECT ${queries?.stamp ?? ''}`);
  return s;
}

/**
 * A plain migration-tool loop: node-pg-migrate's runner on each database, p at a time, a new
 * connection each (as the tool opens one), one SQL migration holding the floor's statements. Its
 * ledger (pgmigrations), advisory lock and transaction are its own. Returns the elapsed ms.
 */
async function nodePgMigrate(dbs: string[], p: number, stmts: string[]): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'admmgt-bench-npm-'));
  try {
    await writeFile(path.join(dir, '1_script1.sql'), `-- Up Migration\n${stmts.join(';\n')};\n\n-- Down Migration\n`);
    const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: (m: string) => console.error(m) };
    return await timed(() =>
      pool(dbs, p, async (db) => {
        await runner({ databaseUrl: urlFor(db), dir, direction: 'up', migrationsTable: 'pgmigrations', logger: quiet, singleTransaction: true });
      }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function idleRun(server: pg.Client, admin: pg.Client): Promise<Record<string, number>> {
  // IDLE tenants, all at the template's version: applyScripts must touch none of them.
  await resetFleet(server, admin, IDLE);
  await admin.query('CALL admmgt.create_database(p_parallel => 4)');
  await admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
  await admin.query('SELECT pg_stat_clear_snapshot()');
  // sessions counts client connections only (autovacuum workers also run transactions in new
  // databases). The template is left out: refresh reads its routines on every call.
  const stats = `SELECT coalesce(sum(sessions), 0)::bigint AS sessions FROM pg_stat_database WHERE datname ~ '^bench_t[0-9]+$'`;
  await new Promise((r) => setTimeout(r, 1000));
  // Upkeep with nothing to do: a first maintenance and refresh make the partitions and push the
  // routine (and leave their upkeep records); the timed ones after them have nothing to send.
  await admin.query('CALL admmgt.applyMaintenance(t_numdays => 30, p_parallel => 4)');
  const t = await client(TEMPLATE);
  await t.query(testProc1Sql().text);
  await t.end();
  await admin.query('CALL admmgt.refesh_stored_procedures(p_parallel => 4)');
  await new Promise((r) => setTimeout(r, 1000));
  await admin.query('SELECT pg_stat_clear_snapshot()');
  const before = (await admin.query(stats)).rows[0];
  const ms: Record<string, number[]> = { apply: [], maintain: [], refresh: [] };
  for (let i = 0; i < 5; i++) {
    ms.apply?.push(await call(admin, 'CALL admmgt.applyScripts()'));
    ms.maintain?.push(await call(admin, 'CALL admmgt.applyMaintenance(t_numdays => 30)'));
    ms.refresh?.push(await call(admin, 'CALL admmgt.refesh_stored_procedures()'));
  }
  await new Promise((r) => setTimeout(r, 1000));
  await admin.query('SELECT pg_stat_clear_snapshot()');
  const after = (await admin.query(stats)).rows[0];
  return {
    tenants: IDLE,
    'median ms': median(ms.apply ?? []),
    'applyMaintenance(30) median ms': median(ms.maintain ?? []),
    'refesh_stored_procedures median ms': median(ms.refresh ?? []),
    'connections to tenant databases during the calls': Number(after.sessions) - Number(before.sessions),
  };
}

/**
 * Partition upkeep: MAINT tenants with the demo's quarterly-subpartitioned table and a monthly
 * table, applyMaintenance(t_numdays => 90) once with partitions to create and once with none.
 */
async function maintenancePhase(server: pg.Client, admin: pg.Client): Promise<Record<string, number>> {
  await resetFleet(server, admin, MAINT);
  await admin.query(`BEGIN; ${scriptRowsSql({
    id: 2, description: 'bench: a monthly table',
    tables: [{ schema: 'mgttest', name: 'bench_events', columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true },
      { name: 'at', type: 'timestamptz', nullable: false }], partitions: [{ column: 'at', type: 'range', value: 'month' }] }],
  }).text} ${markReadySql(2).text} COMMIT;`);
  try {
    await admin.query('CALL admmgt.create_database(p_parallel => 4)');
    await admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
    const out: Record<string, number> = { tenants: MAINT };
    for (const p of [1, 4]) {
      // An as-of day a year ahead, so that every run of the bench has the same partitions to create.
      const asof = `${new Date().getUTCFullYear() + 1 + p}-01-15`;
      const first = await call(admin, `CALL admmgt.applyMaintenance(t_numdays => 90, p_parallel => ${p}, p_asof => '${asof}')`);
      const created = await admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM admmgt.script_log WHERE operation = 'maintain' AND dbname = $1 AND run_id = (SELECT max(run_id) FROM admmgt.runs)`,
        [tenant(1)]);
      const again = await call(admin, `CALL admmgt.applyMaintenance(t_numdays => 90, p_parallel => ${p}, p_asof => '${asof}')`);
      out[`p${p} first run ms/tenant`] = (first) / (MAINT + 1);
      out[`p${p} partitions created per tenant`] = created.rows[0]?.n ?? 0;
      out[`p${p} rerun ms/tenant`] = again / (MAINT + 1);
    }
    Object.assign(out, await indexPhase(admin));
    return out;
  } finally {
    // The registry first: with no template that has them, scripts 2 to 4 are no longer frozen.
    await admin.query(`BEGIN;
      DELETE FROM admmgt.target_results; DELETE FROM admmgt.vendor_db_settings;
      DELETE FROM admmgt.script_indexes WHERE scriptid IN (3, 4);
      DELETE FROM admmgt.script_table_partitions WHERE tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = 2);
      DELETE FROM admmgt.script_table_columns WHERE scriptid = 2; DELETE FROM admmgt.script_tables WHERE scriptid = 2;
      DELETE FROM admmgt.scripts WHERE id IN (2, 3, 4); COMMIT;`);
  }
}

/**
 * An index on the monthly partitioned table of the maintenance fleet (1,000 rows per target over its
 * partitions): script 3 builds one in the script's transaction, script 4 one CONCURRENTLY, partition
 * by partition (the parent's index, each partition's CONCURRENTLY, attached). p = 4.
 */
async function indexPhase(admin: pg.Client): Promise<Record<string, number>> {
  const targets = [TEMPLATE, ...Array.from({ length: MAINT }, (_, i) => tenant(i + 1))];
  await admin.query('CALL admmgt.applyMaintenance(t_numdays => 90, p_parallel => 4)');
  await pool(targets, 4, async (db) => {
    const c = await client(db);
    await c.query(`INSERT INTO mgttest.bench_events (at) SELECT now() + (g % 80) * interval '1 day' FROM generate_series(1, 1000) g`);
    await c.end();
  });
  const out: Record<string, number> = {};
  const spec = (id: number, concurrent: boolean) => scriptRowsSql({
    id, description: `bench: an index ${concurrent ? 'concurrently' : 'in the transaction'}`,
    indexes: [{ schema: 'mgttest', table: 'bench_events', name: `bench_events_${id}`, columns: [concurrent ? 'at DESC' : 'at'], concurrent }],
  }).text;
  await admin.query(`BEGIN; ${spec(3, false)} ${markReadySql(3).text} COMMIT;`);
  out['index in the transaction, ms/tenant'] = (await call(admin, 'CALL admmgt.applyScripts(p_parallel => 4)')) / (MAINT + 1);
  await admin.query(`BEGIN; ${spec(4, true)} ${markReadySql(4).text} COMMIT;`);
  out['index concurrently, partition by partition, ms/tenant'] = (await call(admin, 'CALL admmgt.applyScripts(p_parallel => 4)')) / (MAINT + 1);
  const failed = await admin.query('SELECT count(*)::int AS n FROM admmgt.failures');
  if (failed.rows[0].n) throw new Error(`bench: ${failed.rows[0].n} failures; see admmgt.failures`);
  out['concurrently / in the transaction'] = (out['index concurrently, partition by partition, ms/tenant'] ?? NaN) / (out['index in the transaction, ms/tenant'] ?? NaN);
  return out;
}

const DADMIN = 'bench_dadmin';
const DTPL = 'bench_dtpl';
const dtenant = (i: number) => `bench_d${String(i).padStart(5, '0')}`;
/** A database of the deploy fleet and its snapshot, by the same suffix. */
const snap = (db: string) => db.replace(/^bench_d/, 'bench_k');

/** The deploy fleet, steady: template and DEPLOY tenants at script 1, partitions and routines pushed; then a new script and routine, waiting. */
async function deployFleet(server: pg.Client): Promise<string[]> {
  await dropPrefixed(server, ['bench_d', 'bench_k']);
  await server.query(`CREATE DATABASE ${DADMIN}`);
  await server.query(`CREATE DATABASE ${DTPL}`);
  // The template takes no session of its own while create_database() copies it.
  const inTemplate = async (text: string) => {
    const t = await client(DTPL);
    await t.query(text).finally(() => t.end());
  };
  await inTemplate('CREATE SCHEMA mgttest');
  const admin = await client(DADMIN);
  try {
    await installControlPlane(admin);
    await admin.query(`BEGIN;\n${scriptRowsSql(script1).text}\n${markReadySql(1).text}
      INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('${DTPL}', true, 2, 0);
      INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT 'bench_d' || lpad(i::text, 5, '0'), 1 FROM generate_series(1, ${DEPLOY}) i;
      COMMIT;`);
    await admin.query('CALL admmgt.create_database(p_parallel => 4)');
    await admin.query('CALL admmgt.applyScripts(p_parallel => 4)');
    await inTemplate(testProc1Sql().text);
    await admin.query('CALL admmgt.refesh_stored_procedures(p_parallel => 4)');
    await admin.query('CALL admmgt.applyMaintenance(t_numdays => 30, p_parallel => 4)');
    // The release: a script with a daily table, and a routine changed in the template.
    await admin.query(`BEGIN; ${scriptRowsSql({
      id: 2, description: 'bench: a daily table',
      tables: [{ schema: 'mgttest', name: 'bench_days', columns: [{ name: 'id', type: 'bigint', primaryKey: true },
        { name: 'at', type: 'date', nullable: false }], partitions: [{ column: 'at', type: 'range', value: 'day' }] }],
    }).text} ${markReadySql(2).text} COMMIT;`);
    await inTemplate(`CREATE FUNCTION mgttest.bench_release() RETURNS int LANGUAGE sql AS 'SELECT 2'`);
  } finally {
    await admin.end();
  }
  return [DADMIN, DTPL, ...Array.from({ length: DEPLOY }, (_, i) => dtenant(i + 1))];
}

/** Put the deploy fleet back as its snapshot has it: every database a fresh copy. */
async function restoreFleet(server: pg.Client, dbs: string[]): Promise<void> {
  for (const db of dbs) await copyDb(server, snap(db), db);
  await server.query('CHECKPOINT');
}

interface FleetCalls { ms: number; sessions: number; cpuMs: number; peakMiB: number }

/** Time calls on a fresh copy of the deploy fleet, with the connections they made into its tenant databases. */
async function onFreshFleet(server: pg.Client, dbs: string[], calls: string[]): Promise<FleetCalls> {
  await restoreFleet(server, dbs);
  return timedCalls(server, calls);
}

/** Time calls on the deploy fleet as it is, with the connections they made into its tenant databases, the caller's CPU and peak memory. */
async function timedCalls(server: pg.Client, calls: string[]): Promise<FleetCalls> {
  const stats = `SELECT coalesce(sum(sessions), 0)::bigint AS n FROM pg_stat_database WHERE datname ~ '^bench_d[0-9]+$'`;
  await server.query('SELECT pg_stat_clear_snapshot()');
  const before = Number((await server.query(stats)).rows[0].n);
  const admin = await client(DADMIN);
  let ms = 0;
  let cpu = NaN;
  let peakMiB = NaN;
  try {
    const pid = (await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? NaN;
    const cpu0 = await cpuMs(pid).catch(() => NaN);
    for (const c of calls) ms += await call(admin, c);
    cpu = (await cpuMs(pid).catch(() => NaN)) - cpu0;
    peakMiB = await peakRssMiB(pid).catch(() => NaN);
    await noFailures(admin, calls.join('; '));
  } finally {
    await admin.end();
  }
  // A session is counted when its backend exits.
  await new Promise((r) => setTimeout(r, 1000));
  await server.query('SELECT pg_stat_clear_snapshot()');
  return { ms, sessions: Number((await server.query(stats)).rows[0].n) - before, cpuMs: cpu, peakMiB };
}

/** The release's partitions in the deploy fleet's last tenant: what the floor must also leave. */
async function releasePartitions(): Promise<number> {
  const c = await client(dtenant(DEPLOY));
  try {
    const { rows } = await c.query(`SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'mgttest.bench_days'::regclass`);
    return rows[0].n;
  } finally {
    await c.end();
  }
}

/**
 * The deploy floor, on a fresh copy of the fleet: per database (the template first, then the
 * tenants 4 at a time) one new connection from Node that runs, with no bookkeeping, the work of
 * the three steps: script 2 as one transaction (script_batch, its ledger row included), the new
 * routine's definition, and in one more transaction the partition statements maintenance renders
 * for the 30 days (CREATE TABLE IF NOT EXISTS, so the ones the script made cost a lookup).
 */
async function deployFloor(server: pg.Client, dbs: string[]): Promise<{ ms: number; partitions: number }> {
  await restoreFleet(server, dbs);
  const admin = await client(DADMIN);
  const tpl = await client(DTPL);
  let script: string[];
  let maintenance: string[];
  let routine: string;
  try {
    script = (await admin.query<{ s: string[] }>('SELECT admmgt.script_batch(2) AS s')).rows[0]?.s ?? [];
    maintenance = (await admin.query<{ stmt: string }>(
      'SELECT stmt FROM admmgt.render_maintenance(2, current_date, current_date + 30) ORDER BY seq')).rows.map((r) => r.stmt);
    routine = (await tpl.query<{ d: string }>(`SELECT pg_get_functiondef('mgttest.bench_release()'::regprocedure) AS d`)).rows[0]?.d ?? '';
  } finally {
    await admin.end();
    await tpl.end();
  }
  if (!script.length || !maintenance.length || !routine) throw new Error('bench: the deploy floor found no script, partitions or routine to run');
  const one = async (db: string) => {
    const c = await client(db);
    try {
      await c.query(['BEGIN', ...script, 'COMMIT'].join(';\n'));
      await c.query(routine);
      await c.query(['BEGIN', ...maintenance, 'COMMIT'].join(';\n'));
    } finally {
      await c.end();
    }
  };
  const ms = await timed(async () => {
    await one(DTPL);
    await pool(dbs.slice(2), 4, one);
  });
  return { ms, partitions: await releasePartitions() };
}

/** deploy() against the three calls it stands for and against its floor, each on a fresh copy of one fleet. */
async function deployPhase(server: pg.Client): Promise<Record<string, number>> {
  const dbs = await deployFleet(server);
  try {
    if (DEPLOY_ONCE) {
      await server.query('CHECKPOINT');
      const once = await timedCalls(server, ['CALL admmgt.deploy(t_numdays => 30, p_parallel => 4)']);
      return {
        tenants: DEPLOY,
        'deploy ms': once.ms,
        'deploy ms per target': once.ms / (DEPLOY + 1),
        'deploy connections into tenants': once.sessions,
        'deploy admin CPU ms per target': once.cpuMs / (DEPLOY + 1),
        'deploy admin peak memory MiB': once.peakMiB,
      };
    }
    for (const db of dbs) await copyDb(server, db, snap(db));
    const one = await onFreshFleet(server, dbs, ['CALL admmgt.deploy(t_numdays => 30, p_parallel => 4)']);
    const deployed = await releasePartitions();
    const spread = await onFreshFleet(server, dbs, ['CALL admmgt.deploy(t_numdays => 30, p_workers => 4)']);
    if (await releasePartitions() !== deployed) throw new Error('bench: deploy(p_workers => 4) left other partitions than deploy(p_parallel => 4)');
    const three = await onFreshFleet(server, dbs, ['CALL admmgt.applyScripts(p_parallel => 4)',
      'CALL admmgt.refesh_stored_procedures(p_parallel => 4)', 'CALL admmgt.applyMaintenance(t_numdays => 30, p_parallel => 4)']);
    const floor = await deployFloor(server, dbs);
    if (floor.partitions !== deployed) {
      throw new Error(`bench: the deploy floor left ${floor.partitions} partitions of mgttest.bench_days in ${dtenant(DEPLOY)}, deploy() ${deployed}`);
    }
    return {
      tenants: DEPLOY,
      'deploy ms': one.ms,
      'apply + refresh + maintain ms': three.ms,
      'deploy floor ms': floor.ms,
      'deploy workers 4 ms': spread.ms,
      'deploy / apply + refresh + maintain': one.ms / three.ms,
      'deploy / deploy floor (target <= 1.3)': one.ms / floor.ms,
      'deploy workers 4 / deploy floor': spread.ms / floor.ms,
      'deploy connections into tenants': one.sessions,
      'deploy workers 4 connections into tenants': spread.sessions,
      'apply + refresh + maintain connections into tenants': three.sessions,
      // The caller's own backend: with p_workers the work runs in other backends, so only p_parallel is read.
      'deploy admin CPU ms per target': one.cpuMs / (DEPLOY + 1),
      'apply + refresh + maintain admin CPU ms per target': three.cpuMs / (DEPLOY + 1),
      'deploy admin peak memory MiB': one.peakMiB,
    };
  } finally {
    await dropPrefixed(server, ['bench_d', 'bench_k']);
  }
}

async function printedDeployPhase(server: pg.Client): Promise<Record<string, number>> {
  const deploy = await deployPhase(server);
  console.log(`\ndeploy pass, ${DEPLOY} tenants + template, one script with a daily table and one new routine, ${DEPLOY_ONCE ? 'p = 4, once on the fleet as built' : 'p = 4 (or 4 workers), each on a fresh copy of one fleet'}:`);
  for (const [k, v] of Object.entries(deploy)) if (k !== 'tenants') console.log(`  ${k.padEnd(52)} ${v.toFixed(2)}`);
  return deploy;
}

// ---- Schema mode ----------------------------------------------------------------------------

const STPL = 'unitemplate';
const SCP = 'bench_scp';       // the control plane installed, nothing registered: copied for every cycle
const SBASE = 'bench_sbase';   // template + N schemas made, script 1 ready
const SAPPLY = 'bench_sapply'; // copy of SBASE that admmgt works on
const SFLOOR = 'bench_sfloor'; // copy of SBASE that the floor works on

async function noFailures(c: pg.Client, what: string): Promise<void> {
  const failed = await c.query('SELECT count(*)::int AS n FROM admmgt.failures');
  if (failed.rows[0].n) throw new Error(`bench ${what}: ${failed.rows[0].n} failures; see admmgt.failures`);
}

/** The demo's script 1 written for the template schema, as originalScripts() of the tests makes it. */
function schemaScript1(): typeof script1 {
  return JSON.parse(JSON.stringify(script1).replaceAll('"mgttest"', JSON.stringify(STPL))) as typeof script1;
}

async function schemaCycle(server: pg.Client, n: number, p: number, floorFirst: boolean): Promise<Sample> {
  const s: Sample = {};
  const per = n + 1; // the template and the N tenants: both sides do all of them
  await copyDb(server, SCP, SBASE);
  const base = await client(SBASE);
  await registerSchemas(base, STPL, n);
  s[`create_schema p${p}`] = (await call(base, `CALL admmgt.create_schema(p_parallel => ${p})`)) / per;
  await noFailures(base, 'create_schema');
  await base.query(`BEGIN;\n${scriptRowsSql(schemaScript1()).text}\n${markReadySql(1).text}\nCOMMIT;`);
  // Every schema's query string, rendered before any clock starts.
  const { rows: batches } = await base.query<{ nsp: string; text: string }>(`
    WITH b AS (SELECT admmgt.script_batch(1) AS stmts),
         own AS (SELECT (b.stmts)[cardinality(admmgt._ledger_tables(false)) + 2:] AS stmts FROM b)
    SELECT r.nsp, array_to_string(ARRAY['BEGIN', admmgt._ledger_insert(1, r.nsp)]
             || ARRAY(SELECT replace(admmgt._schema_template(x.s, '${STPL}'), chr(1), quote_ident(r.nsp))
                        FROM own, unnest(own.stmts) WITH ORDINALITY AS x(s, k) ORDER BY x.k)
             || 'COMMIT'::text, E';\\n') AS text
      FROM (SELECT lower(dbname) AS nsp, istemplate, id FROM admmgt.vendor_db_settings) r
     ORDER BY r.istemplate DESC, r.id`);
  if (batches.length !== per) throw new Error(`bench: ${batches.length} schemas registered, not ${per}`);
  await base.end();
  await copyDb(server, SBASE, SAPPLY);
  await copyDb(server, SBASE, SFLOOR);

  // Copying a database writes it all to the WAL: a checkpoint before each timed part, so that
  // none of them pays for one that the copies started.
  const quiet = () => server.query('CHECKPOINT');
  const floor = async () => {
    await quiet();
    const conns = await Promise.all(Array.from({ length: p }, () => client(SFLOOR)));
    const idle = [...conns];
    const tpl = batches[0] as { text: string };
    s[`schema floor p${p}`] = (await timed(async () => {
      // The template first, alone, as admmgt does.
      await (idle[0] as pg.Client).query(tpl.text);
      await pool(batches.slice(1), p, async (b) => {
        const c = idle.pop() as pg.Client;
        await c.query(b.text);
        idle.push(c);
      });
    })) / per;
    await Promise.all(conns.map((c) => c.end()));
  };
  const admin = await client(SAPPLY);
  const apply = async () => {
    await quiet();
    s[`applyScripts(0) p${p}`] = (await call(admin, `CALL admmgt.applyScripts(0, p_parallel => ${p})`)) / per;
    await noFailures(admin, 'applyScripts(0)');
    // What the executor measured on the targets (send to last result), per schema.
    const { rows } = await admin.query<{ ms: number }>(`SELECT avg(elapsed_ms)::float8 AS ms FROM admmgt.target_results WHERE operation = 'apply'`);
    s[`applyScripts(0) executor ms p${p}`] = rows[0]?.ms ?? NaN;
  };
  if (floorFirst) { await floor(); await apply(); } else { await apply(); await floor(); }

  // Both sides made the same objects.
  const relsOf = async (db: string) => {
    const c = await client(db);
    const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
                                                     WHERE ns.nspname ~ '^s[0-9]{5}$' OR ns.nspname = '${STPL}'`);
    const l = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM admmgt.applied_schema_scripts WHERE scriptid = 1`);
    await c.end();
    return `${rows[0]?.n} relations, ${l.rows[0]?.n} ledger rows`;
  };
  const [ra, rf] = [await relsOf(SAPPLY), await relsOf(SFLOOR)];
  if (ra !== rf) throw new Error(`bench: applyScripts(0) made ${ra}, the floor ${rf}`);

  await call(admin, `CALL admmgt.applyMaintenance(0, t_numdays => 30, p_parallel => ${p})`);
  s[`applyMaintenance(0) nothing to create p${p}`] = (await call(admin, `CALL admmgt.applyMaintenance(0, t_numdays => 30, p_parallel => ${p})`)) / per;
  await admin.query(testProc1Sql(STPL).text);
  s[`refesh_stored_procedures(0) p${p}`] = (await call(admin, `CALL admmgt.refesh_stored_procedures(0, p_parallel => ${p})`)) / per;
  await noFailures(admin, 'maintenance and refresh');
  s[`no-op applyScripts(0) ms p${p}`] = await call(admin, `CALL admmgt.applyScripts(0, p_parallel => ${p})`);
  await admin.end();
  for (const db of [SAPPLY, SFLOOR, SBASE]) await server.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  return s;
}

async function schemaPhase(server: pg.Client): Promise<Record<string, unknown>> {
  await server.query(`DROP DATABASE IF EXISTS ${SCP} WITH (FORCE)`);
  await server.query(`CREATE DATABASE ${SCP}`);
  const cp = await client(SCP);
  await installControlPlane(cp);
  await cp.end();
  const out: Record<string, unknown> = { parallel: PARALLEL, runs: RUNS, schemas: SCHEMA_NS };
  const perN: Record<string, unknown> = {};
  const metrics = ['create_schema', 'applyScripts(0)', 'applyScripts(0) executor ms', 'schema floor', 'applyMaintenance(0) nothing to create',
    'refesh_stored_procedures(0)', 'no-op applyScripts(0) ms'];
  for (const n of SCHEMA_NS) {
    const samples: Record<string, number[]> = {};
    for (let r = 1; r <= RUNS; r++) {
      for (const p of PARALLEL) {
        const s = await schemaCycle(server, n, p, r % 2 === 0);
        for (const [k, v] of Object.entries(s)) (samples[k] ??= []).push(v);
        console.log(`  schemas ${n} run ${r} parallel ${p}: ` + Object.entries(s).map(([k, v]) => `${k.replace(/ p\d+$/, '')} ${v.toFixed(2)}`).join(', '));
      }
    }
    const med: Record<string, number> = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
    const at = (metric: string, p: number) => med[`${metric} p${p}`] ?? NaN;
    console.log(`\nschema mode, ${n} schemas + template in one database: ms per schema (no-op: ms per call), median of ${RUNS}:`);
    console.log('  ' + 'metric'.padEnd(42) + PARALLEL.map((p) => `p${p}`.padStart(9)).join(''));
    for (const m of metrics) console.log('  ' + m.padEnd(42) + PARALLEL.map((p) => at(m, p).toFixed(2).padStart(9)).join(''));
    const ratios: Record<string, number> = {};
    for (const p of PARALLEL) {
      ratios[`applyScripts(0) p${p} / floor on one connection (target <= 1.3)`] = at('applyScripts(0)', p) / at('schema floor', 1);
      ratios[`applyScripts(0) p${p} / floor on ${p} connection(s)`] = at('applyScripts(0)', p) / at('schema floor', p);
    }
    for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(64)} ${v.toFixed(2)}`);
    perN[String(n)] = { samples, medians: med, ratios };
  }
  out.results = perN;
  await server.query(`DROP DATABASE IF EXISTS ${SCP} WITH (FORCE)`);
  return out;
}

async function main(): Promise<void> {
  await withServer(args.url, 'admmgt-bench-', { max_connections: Math.max(N, 100) + 50 }, async (server) => {
    const version = (await server.query('SHOW server_version')).rows[0].server_version as string;
    const outDir = path.join(projectRoot(), 'bench', 'results');
    const outFile = path.join(outDir, 'latest.json');
    // A run of one part keeps what latest.json says of the other. Each phase is saved when it
    // ends: a phase that fails late does not lose the ones before it.
    let result: Record<string, unknown> = {};
    if (ONLY) result = JSON.parse(await readFile(outFile, 'utf8').catch(() => '{}')) as Record<string, unknown>;
    const save = async (part: Record<string, unknown>) => {
      result = { ...result, ...part };
      await mkdir(outDir, { recursive: true });
      await writeFile(outFile, JSON.stringify(result, null, 2) + '\n');
    };
    if (ONLY === 'deploy') await save({ deploy: await printedDeployPhase(server) });
    else if (ONLY !== 'schemas' && ONLY !== 'pool' && ONLY !== 'workers') await save(await databasePhase(server, version));
    if (ONLY === 'pool' || (!ONLY && POOL > 0)) await save({ pool: await poolPhase(server, POOL) });
    if ((ONLY === undefined || ONLY === 'workers') && WORKERS.length > 0) {
      await save({ workers: await workersPhase(server, { tenants: N, runs: RUNS, ks: WORKERS, version }) });
    }
    if (ONLY !== 'databases' && ONLY !== 'deploy' && ONLY !== 'pool' && ONLY !== 'workers' && SCHEMA_NS.length > 0) {
      console.log(`\nadmmgt bench, schema mode: ${SCHEMA_NS.join(', ')} schemas, ${RUNS} run(s), parallel ${PARALLEL.join(',')}, PostgreSQL ${version}, ${os.cpus().length} cores`);
      await save({ schemas: { date: new Date().toISOString(), postgres: version, ...(await schemaPhase(server)) } });
    }
    console.log(`\nwrote bench/results/latest.json`);
  });
}

async function databasePhase(server: pg.Client, version: string): Promise<Record<string, unknown>> {
  {
    await server.query(`DROP DATABASE IF EXISTS ${ADMIN} WITH (FORCE)`);
    await server.query(`CREATE DATABASE ${ADMIN}`);
    const admin = await client(ADMIN);
    await installControlPlane(admin);
    await admin.query(`BEGIN;\n${scriptRowsSql(script1).text}\n${markReadySql(1).text}\nCOMMIT;`);
    console.log(`admmgt bench: ${N} tenants, ${RUNS} run(s), parallel ${PARALLEL.join(',')}, PostgreSQL ${version}, ${os.cpus().length} cores`);

    const samples: Record<string, number[]> = {};
    const keep = (label: string, s: Sample) => {
      for (const [k, v] of Object.entries(s)) (samples[k] ??= []).push(v);
      console.log(`  ${label}: ` + Object.entries(s).map(([k, v]) => `${k.replace(/ p\d+$/, '')} ${v.toFixed(2)}`).join(', '));
    };
    const original = ORIGINAL ? await prepareOriginal(server, ORIGINAL, N, await stmtsOfScript1(admin)) : undefined;
    if (original) console.log(`  the original procedures from ${ORIGINAL}, patched ${original.patches.length} way(s) to make them run`);
    for (let r = 1; r <= RUNS; r++) {
      // The original's cycle before admmgt's in odd runs, after them in even ones.
      if (original && r % 2 === 1) keep(`run ${r} original`, await original.cycle());
      for (const p of PARALLEL) keep(`run ${r} parallel ${p}`, await cycle(server, admin, p));
      if (original && r % 2 === 0) keep(`run ${r} original`, await original.cycle());
    }
    await original?.drop();
    const med: Record<string, number> = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
    const at = (metric: string, p: number) => med[`${metric} p${p}`] ?? NaN;
    const best = (metric: string) => PARALLEL.reduce((b, p) => (at(metric, p) < at(metric, b) ? p : b), PARALLEL[0] as number);

    console.log(`\nms per tenant, median of ${RUNS}:`);
    const metrics = ['create_database', 'create-loop', 'applyScripts', 'applyScripts cold', 'admin CPU ms per target', 'floor', 'cold floor', 'node-pg-migrate',
                     'applyMaintenance(30) nothing to create', 'refesh_stored_procedures', 'detectDrift', 'detectDrift full', 'connect+query', 'connect+stamp', 'connect+fingerprint',
                     ...(original ? ORIGINAL_METRICS.map((m) => m.metric) : [])];
    console.log('  ' + 'metric'.padEnd(50) + PARALLEL.map((p) => `p${p}`.padStart(9)).join(''));
    for (const m of metrics) console.log('  ' + m.padEnd(50) + PARALLEL.map((p) => at(m, p).toFixed(2).padStart(9)).join(''));

    const pa = best('applyScripts');
    const ratios: Record<string, number> = {
      [`applyScripts p${pa} / floor p${pa} (target <= 1.3)`]: at('applyScripts', pa) / at('floor', pa),
      [`applyScripts cold p${pa} / floor p${pa} (first connection into new databases)`]: at('applyScripts cold', pa) / at('floor', pa),
    };
    const pc = best('applyScripts cold');
    const pk = best('cold floor');
    ratios[`applyScripts cold p${pc} / cold floor p${pk}, each at its best (target <= 1.3)`] = at('applyScripts cold', pc) / at('cold floor', pk);
    for (const p of TOOL_P.filter((x) => PARALLEL.includes(x))) {
      ratios[`applyScripts cold p${p} / node-pg-migrate p${p} (target < 1; both first connections)`] = at('applyScripts cold', p) / at('node-pg-migrate', p);
    }
    for (const p of PARALLEL) ratios[`create_database / create-loop, p${p} (target <= 1.0)`] = at('create_database', p) / at('create-loop', p);
    const pm = best('applyMaintenance(30) nothing to create');
    ratios[`applyMaintenance p${pm} / connect+query p${pm} (target <= 2)`] = at('applyMaintenance(30) nothing to create', pm) / at('connect+query', pm);
    const pr = best('refesh_stored_procedures');
    ratios[`refesh_stored_procedures p${pr} / connect+query p${pr} (target <= 2)`] = at('refesh_stored_procedures', pr) / at('connect+query', pr);
    const pd = best('detectDrift');
    ratios[`detectDrift p${pd} / connect+query p${pd} (target <= 2)`] = at('detectDrift', pd) / at('connect+query', pd);
    ratios[`detectDrift p${pd} / connect+stamp p${pd} (the stamp query itself from a client)`] = at('detectDrift', pd) / at('connect+stamp', pd);
    const pf = best('detectDrift full');
    ratios[`detectDrift full p${pf} / connect+fingerprint p${pf} (every fingerprint anew; the query itself from a client)`] =
      at('detectDrift full', pf) / at('connect+fingerprint', pf);
    if (original) Object.assign(ratios, originalRatios(at, PARALLEL));
    console.log('\nratios (same run, same server):');
    for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(64)} ${v.toFixed(2)}`);
    const line = (metric: string, label: string, color: string, dashed = false): Series =>
      ({ label, color, dashed, points: PARALLEL.map((p) => ({ p, ms: at(metric, p) })) });
    const svg = lineChart(`applyScripts of the demo's script 1, ${N} tenants, PostgreSQL ${version.split(' ')[0]}, median of ${RUNS}`, PARALLEL, [
      line('applyScripts cold', 'admmgt, new databases', '#1f77b4'),
      line('cold floor', 'cold floor', '#1f77b4', true),
      line('applyScripts', 'admmgt, used databases', '#2ca02c'),
      line('floor', 'warm floor', '#2ca02c', true),
      line('node-pg-migrate', 'node-pg-migrate', '#d62728'),
    ]);
    const chartFile = path.join(projectRoot(), 'bench', 'results', 'apply.svg');
    await mkdir(path.dirname(chartFile), { recursive: true });
    await writeFile(chartFile, svg);
    console.log(`wrote bench/results/apply.svg`);

    let idle: Record<string, number> | undefined;
    if (IDLE > 0) {
      idle = await idleRun(server, admin);
      console.log(`\nnothing to do, ${IDLE} tenants registered, medians of 5 calls (targets under 100 ms): applyScripts() ${idle['median ms']?.toFixed(1)} ms, ` +
        `applyMaintenance(t_numdays => 30) ${idle['applyMaintenance(30) median ms']?.toFixed(1)} ms, ` +
        `refesh_stored_procedures() ${idle['refesh_stored_procedures median ms']?.toFixed(1)} ms; ` +
        `connections to tenant databases during the 15 calls (target 0): ${idle['connections to tenant databases during the calls']}`);
    }
    let maintenance: Record<string, number> | undefined;
    if (MAINT > 0) {
      maintenance = await maintenancePhase(server, admin);
      console.log(`\npartition upkeep, ${MAINT} tenants + template, a monthly and a quarterly-subpartitioned table, 90 days ahead; then an index on the monthly one:`);
      for (const [k, v] of Object.entries(maintenance)) if (k !== 'tenants') console.log(`  ${k.padEnd(40)} ${v.toFixed(2)}`);
    }
    // The admin session ran every CALL of the cycles: its peak memory (NaN for a server elsewhere).
    const adminPid = (await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
    const adminPeakMiB = await peakRssMiB(adminPid);
    console.log(`
admin backend: peak resident memory ${adminPeakMiB.toFixed(1)} MiB over the whole phase (${N} tenants)`);
    await admin.end();
    await dropPrefixed(server, ['bench_t', 'bench_r']);
    await server.query(`DROP DATABASE IF EXISTS ${ADMIN} WITH (FORCE)`);
    const deploy = DEPLOY > 0 ? await printedDeployPhase(server) : undefined;
    return {
      date: new Date().toISOString(), postgres: version, tenants: N, runs: RUNS, parallel: PARALLEL,
      samples, medians: med, ratios, idle, maintenance, deploy, adminPeakMiB,
      original: original ? { source: ORIGINAL, patches: original.patches } : undefined,
    };
  }
}

await main();
