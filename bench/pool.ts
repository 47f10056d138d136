// The warm pool's provisioning latency (npm run bench -- --only pool [--pool-tenants 100]).
//
// A fleet of its own: an admin database with the control plane and a template at the demo's
// script 1 (partitioned tables, a foreign key); refill_pool(p_size => N) fills the pool before the
// clock starts. Then N rounds, each of:
//   pooled create_database()  one new pending tenant, CALL admmgt.create_database() timed from the
//                             client (the tenant takes a pool database: rename, grants, registry)
//   CREATE DATABASE TEMPLATE  a plain CREATE DATABASE ... TEMPLATE of the same template from a
//                             client, the copy create_database() makes without a pool
//   rename floor              that copy renamed and closed to PUBLIC from a client, in one
//                             transaction (ALTER DATABASE ... RENAME, REVOKE, COMMIT): what a take
//                             cannot do without, with none of admmgt's bookkeeping
// alternating, so that all meet the same disk. Then, with the pool empty, N rounds of
//   plain create_database()   one new pending tenant, CALL admmgt.create_database() copying the template
// All in one warm admin session (the routines compiled), one tenant per call. Reports p50 and p99
// of each, in ms, and the pooled p50 against the target (under 10 ms).
import os from 'node:os';
import type pg from 'pg';
import { installControlPlane } from '../src/install.js';
import { DEMO, script1 } from '../templates/demo.js';
import { markReadySql, scriptRowsSql } from '../templates/script.js';
import { client, median, timed } from './support.js';

const ADMIN = 'bpool_admin';
const TPL = 'bpool_tpl';

/** The q-quantile of xs (nearest rank). */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}

async function dropAll(server: pg.Client): Promise<void> {
  const { rows } = await server.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'bpool\\_%' ORDER BY 1`);
  for (const r of rows) await server.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`);
}

export interface PoolResult {
  tenants: number;
  loadavg: number[];
  samples: Record<string, number[]>;
  p50: Record<string, number>;
  p99: Record<string, number>;
  ratios: Record<string, number>;
}

export async function poolPhase(server: pg.Client, n: number): Promise<PoolResult> {
  await dropAll(server);
  await server.query(`CREATE DATABASE ${ADMIN}`);
  await server.query(`CREATE DATABASE ${TPL}`);
  const tpl = await client(TPL);
  await tpl.query(`CREATE SCHEMA ${DEMO.schema}`);
  await tpl.end();
  const admin = await client(ADMIN);
  try {
    await installControlPlane(admin);
    await admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('${TPL}', true, 2, 0)`);
    await admin.query(`BEGIN;\n${scriptRowsSql(script1).text}\n${markReadySql(1).text}\nCOMMIT;`);
    await admin.query('CALL admmgt.applyScripts()');
    const fill = await timed(() => admin.query(`CALL admmgt.refill_pool(p_size => ${n})`));
    const ready = (await admin.query<{ n: number }>(`SELECT ready::int AS n FROM admmgt.pool_status WHERE server = 'local'`)).rows[0]?.n;
    if (ready !== n) throw new Error(`bench pool: refill_pool made ${ready} of ${n} ready`);
    console.log(`\nwarm pool: ${n} tenants, one per call; refill_pool(p_size => ${n}) took ${(fill / 1000).toFixed(1)} s; ` +
      `load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    await server.query('CHECKPOINT');
    const register = (name: string) => admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('${name}', 1)`);
    const samples: Record<string, number[]> = { 'pooled create_database()': [], 'rename floor': [], 'CREATE DATABASE TEMPLATE': [], 'plain create_database()': [] };
    for (let i = 1; i <= n; i++) {
      await register(`bpool_t${i}`);
      samples['pooled create_database()']!.push(await timed(() => admin.query('CALL admmgt.create_database()')));
      samples['CREATE DATABASE TEMPLATE']!.push(await timed(() => server.query(`CREATE DATABASE bpool_c${i} TEMPLATE ${TPL}`)));
      samples['rename floor']!.push(await timed(() => server.query(
        `BEGIN; ALTER DATABASE bpool_c${i} RENAME TO bpool_r${i}; REVOKE CONNECT, TEMPORARY ON DATABASE bpool_r${i} FROM PUBLIC; COMMIT`)));
    }
    const pooled = (await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM admmgt.script_log WHERE operation = 'create' AND commstat LIKE 'ALTER DATABASE % RENAME TO bpool\\_t%'`)).rows[0]?.n;
    if (pooled !== n) throw new Error(`bench pool: ${pooled} of ${n} tenants came from the pool`);
    await admin.query(`UPDATE admmgt.servers SET pool_size = 0 WHERE name = 'local'`);
    for (let i = 1; i <= n; i++) {
      await register(`bpool_u${i}`);
      samples['plain create_database()']!.push(await timed(() => admin.query('CALL admmgt.create_database()')));
    }
    const p50 = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
    const p99 = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, quantile(v, 0.99)]));
    console.log('  ' + 'ms per new tenant'.padEnd(32) + 'p50'.padStart(9) + 'p99'.padStart(9));
    for (const k of Object.keys(samples)) console.log('  ' + k.padEnd(32) + p50[k]!.toFixed(2).padStart(9) + p99[k]!.toFixed(2).padStart(9));
    const ratios = {
      'pooled create_database() p50 / CREATE DATABASE TEMPLATE p50': p50['pooled create_database()']! / p50['CREATE DATABASE TEMPLATE']!,
      'pooled create_database() p50 / plain create_database() p50': p50['pooled create_database()']! / p50['plain create_database()']!,
      'pooled create_database() p50 / rename floor p50': p50['pooled create_database()']! / p50['rename floor']!,
    };
    for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(64)} ${v.toFixed(3)}`);
    console.log(`  pooled create_database() p50 ${p50['pooled create_database()']!.toFixed(2)} ms (target < 10)`);
    return { tenants: n, loadavg: os.loadavg(), samples, p50, p99, ratios };
  } finally {
    await admin.end();
    await dropAll(server);
  }
}
