// The workers sweep (npm run bench -- --only workers [--workers 1,2,4,8] [--tenants 300] [--runs 3]):
// applyScripts spread over k sessions (p_workers => k, one target at a time each) beside the
// single session at p_parallel => k and the cold floor at k, on the same server in the same run.
// Each cycle (one k) gets a fleet of its own: a template at script 1 and three sets of N databases
// copied from it that no session has ever used, so all three meet the same work (the first
// connection into a new database, which builds its relation cache, then the demo's script 1):
//   applyScripts p=k        CALL admmgt.applyScripts(p_parallel => k) on the first N
//   applyScripts workers=k  CALL admmgt.applyScripts(p_workers => k) on the second N
//   cold floor k            a new connection into each of the third N, the rendered script in
//                           one transaction, no bookkeeping, k at a time from Node
// The two applies run in alternating order from run to run, each after a CHECKPOINT and once no
// autovacuum worker runs (the new databases draw them for a while). Also read,
// when the server runs on this machine: the calling backend's CPU per target (with workers, the
// rest of the admin side's CPU is spent in the worker backends). Writes bench/results/workers.json.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { installControlPlane } from '../src/install.js';
import { projectRoot } from '../src/paths.js';
import { script1 } from '../templates/demo.js';
import { markReadySql, scriptRowsSql } from '../templates/script.js';
import { client, cpuMs, median, pool, postmasterOf, serverCpuMs, timed } from './support.js';

const WADMIN = 'bench_wadmin';
const WTPL = 'bench_wtpl';
const wdb = (set: string, i: number) => `bench_w${set}${String(i).padStart(5, '0')}`;

async function dropFleet(server: pg.Client): Promise<void> {
  const { rows } = await server.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_w%' ORDER BY 1`);
  for (const r of rows) await server.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`);
}

type Sample = Record<string, number>;

/** Before a timed part: a checkpoint, then up to 60 s for autovacuum to leave the new databases alone. */
async function settle(server: pg.Client): Promise<void> {
  await server.query('CHECKPOINT');
  for (let i = 0; i < 600; i++) {
    const { rows } = await server.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`);
    if (rows[0]?.n === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One k: a fresh fleet, then the two applies (in the given order) and the cold floor. */
async function cycle(server: pg.Client, n: number, k: number, workersFirst: boolean): Promise<Sample> {
  await dropFleet(server);
  await server.query(`CREATE DATABASE ${WADMIN}`);
  await server.query(`CREATE DATABASE ${WTPL}`);
  const t = await client(WTPL);
  await t.query('CREATE SCHEMA mgttest');
  await t.end();
  const admin = await client(WADMIN);
  try {
    await installControlPlane(admin);
    await admin.query(`BEGIN;\n${scriptRowsSql(script1).text}\n${markReadySql(1).text}
      INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('${WTPL}', true, 2, 0);
      COMMIT;`);
    // The template takes script 1 alone first, so that the timed calls do tenants only.
    await admin.query('CALL admmgt.applyScripts()');
    const stmts = (await admin.query<{ stmts: string[] }>('SELECT admmgt.script_batch(1) AS stmts')).rows[0]?.stmts ?? [];
    const sets = { p: 'p', workers: 'k', floor: 'f' } as const;
    // Every set is copied from one plain database with the template's schema, as the template was
    // before script 1; the applies' sets are registered as created tenants at version 0.
    await server.query(`CREATE DATABASE bench_wbase`);
    const b = await client('bench_wbase');
    await b.query('CREATE SCHEMA mgttest');
    await b.end();
    const all = Object.values(sets).flatMap((s) => Array.from({ length: n }, (_, i) => wdb(s, i + 1)));
    const creators = await Promise.all(Array.from({ length: 4 }, () => client('postgres')));
    const idle = [...creators];
    await pool(all, 4, async (db) => {
      const c = idle.pop() as pg.Client;
      await c.query(`CREATE DATABASE ${db} TEMPLATE bench_wbase`);
      idle.push(c);
    });
    await Promise.all(creators.map((c) => c.end()));
    await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion, updateflag)
      SELECT d, 2, 0, false FROM unnest($1::text[]) d`, [all.filter((d) => !d.startsWith(`bench_w${sets.floor}`))]);

    const s: Sample = {};
    const adminPid = (await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid as number;
    const pm = await postmasterOf(adminPid).catch(() => NaN);
    const serverCpu = () => serverCpuMs(pm).catch(() => NaN);
    // Once the backends that ended with their connections have been reaped by the postmaster.
    const serverCpuAfter = async () => {
      await new Promise((r) => setTimeout(r, 500));
      return serverCpu();
    };
    const apply = async (label: string, set: string, call: string) => {
      await admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = starts_with(dbname, $1) WHERE NOT istemplate`, [`bench_w${set}`]);
      await settle(server);
      const cpu0 = await cpuMs(adminPid).catch(() => NaN);
      const srv0 = await serverCpu();
      s[label] = (await timed(() => admin.query(call))) / n;
      s[`${label} caller CPU ms per target`] = ((await cpuMs(adminPid).catch(() => NaN)) - cpu0) / n;
      // Its target connections end as it disconnects them.
      s[`${label} server CPU ms per target`] = ((await serverCpuAfter()) - srv0) / n;
      const failed = await admin.query('SELECT count(*)::int AS n FROM admmgt.failures');
      if (failed.rows[0].n) throw new Error(`bench workers: ${failed.rows[0].n} failures after ${call}; see admmgt.failures`);
      const { rows } = await admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM admmgt.vendor_db_settings WHERE starts_with(dbname, $1) AND scriptversion = 1`, [`bench_w${set}`]);
      if (rows[0]?.n !== n) throw new Error(`bench workers: ${rows[0]?.n} of ${n} targets at script 1 after ${call}`);
    };
    const single = () => apply('applyScripts p', sets.p, `CALL admmgt.applyScripts(p_parallel => ${k})`);
    const workers = () => apply('applyScripts workers', sets.workers, `CALL admmgt.applyScripts(p_workers => ${k})`);
    if (workersFirst) { await workers(); await single(); } else { await single(); await workers(); }

    await settle(server);
    const floorDbs = Array.from({ length: n }, (_, i) => wdb(sets.floor, i + 1));
    const srv0 = await serverCpu();
    s['cold floor'] = (await timed(() => pool(floorDbs, k, async (db) => {
      const c = await client(db);
      await c.query(['BEGIN', ...stmts, 'COMMIT'].join(';\n'));
      await c.end();
    }))) / n;
    s['cold floor server CPU ms per target'] = ((await serverCpuAfter()) - srv0) / n;
    return s;
  } finally {
    await admin.end();
    await dropFleet(server);
  }
}

/** The sweep over ks, runs times each; prints ms per tenant and the ratios, writes bench/results/workers.json. */
export async function workersPhase(server: pg.Client, o: { tenants: number; runs: number; ks: number[]; version: string }): Promise<Record<string, unknown>> {
  console.log(`\nadmmgt bench, workers: ${o.tenants} new databases per set, ${o.runs} run(s), k = ${o.ks.join(',')}, PostgreSQL ${o.version}`);
  const samples: Record<string, number[]> = {};
  for (let r = 1; r <= o.runs; r++) {
    for (const k of o.ks) {
      const s = await cycle(server, o.tenants, k, r % 2 === 0);
      for (const [m, v] of Object.entries(s)) (samples[`${m} k${k}`] ??= []).push(v);
      console.log(`  run ${r} k ${k}: ` + Object.entries(s).map(([m, v]) => `${m} ${v.toFixed(2)}`).join(', '));
    }
  }
  const med: Record<string, number> = Object.fromEntries(Object.entries(samples).map(([m, v]) => [m, median(v)]));
  const at = (m: string, k: number) => med[`${m} k${k}`] ?? NaN;
  const metrics = ['applyScripts p', 'applyScripts workers', 'cold floor', 'applyScripts p caller CPU ms per target', 'applyScripts workers caller CPU ms per target',
                   'applyScripts p server CPU ms per target', 'applyScripts workers server CPU ms per target', 'cold floor server CPU ms per target'];
  console.log(`\nms per tenant (first connection into new databases), median of ${o.runs}:`);
  console.log('  ' + 'metric (k = p, workers, floor connections)'.padEnd(48) + o.ks.map((k) => `k${k}`.padStart(9)).join(''));
  for (const m of metrics) console.log('  ' + m.padEnd(48) + o.ks.map((k) => at(m, k).toFixed(2).padStart(9)).join(''));
  const best = (m: string) => o.ks.reduce((b, k) => (at(m, k) < at(m, b) ? k : b), o.ks[0] as number);
  const ratios: Record<string, number> = {};
  for (const k of o.ks) {
    ratios[`workers=${k} / p=${k}`] = at('applyScripts workers', k) / at('applyScripts p', k);
    ratios[`workers=${k} / cold floor ${k}`] = at('applyScripts workers', k) / at('cold floor', k);
  }
  for (const k of o.ks) {
    // What admmgt costs the server beyond the statements themselves, whichever backends do it.
    ratios[`server CPU above the floor, ms per target, p=${k}`] = at('applyScripts p server CPU ms per target', k) - at('cold floor server CPU ms per target', k);
    ratios[`server CPU above the floor, ms per target, workers=${k}`] = at('applyScripts workers server CPU ms per target', k) - at('cold floor server CPU ms per target', k);
  }
  const bw = best('applyScripts workers');
  const bp = best('applyScripts p');
  const bf = best('cold floor');
  ratios[`workers at its best (k${bw}) / p at its best (p${bp})`] = at('applyScripts workers', bw) / at('applyScripts p', bp);
  ratios[`workers at its best (k${bw}) / cold floor at its best (k${bf}) (target <= 1.3)`] = at('applyScripts workers', bw) / at('cold floor', bf);
  ratios[`p at its best (p${bp}) / cold floor at its best (k${bf})`] = at('applyScripts p', bp) / at('cold floor', bf);
  console.log('\nratios (same run, same server):');
  for (const [m, v] of Object.entries(ratios)) console.log(`  ${m.padEnd(72)} ${v.toFixed(2)}`);
  const out = { date: new Date().toISOString(), postgres: o.version, tenants: o.tenants, runs: o.runs, ks: o.ks, samples, medians: med, ratios };
  const file = path.join(projectRoot(), 'bench', 'results', 'workers.json');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(out, null, 2) + '\n');
  console.log('wrote bench/results/workers.json');
  return out;
}
