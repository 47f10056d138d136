// How often each admmgt routine runs in one CALL must grow with the targets, not with their square.
// A join on an opaque function (a SQL function with a SET clause is never inlined) is evaluated
// for every pair of rows: _keep_partitions and _keep_refresh once joined every work item to every
// target through _same_target, 2 * n^2 calls a deploy (20,301 measured at 101 targets, about 0.6 ms
// of self time per target; by 2 n^2, 180,000 at 300 tenants and 8 million at 2,000). Calls are
// counted, not timed: the count is the same on any machine. Every database of this file starts with growth.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markReadySql, type ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';
import { until } from './support/sessions.js';

const TPL = 'growth_tpl';
const SMALL = 4;
const LARGE = 16;
const tenant = (i: number) => `growth_t${String(i).padStart(2, '0')}`;

const SCRIPT1: ScriptSpec = {
  id: 1, description: 'a daily table',
  tables: [{ schema: 'app', name: 'events', columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'at', type: 'date', nullable: false }],
             partitions: [{ column: 'at', type: 'range', value: 'day' }], lifecycle: { at: 'current_date-30' } }],
};

const SCRIPT2: ScriptSpec = {
  id: 2, description: 'a plain table, with its down step',
  tables: [{ schema: 'app', name: 'notes', columns: [{ name: 'id', type: 'bigint', primaryKey: true }] }],
  down: [{ seq: 1, body: 'DROP TABLE app.notes' }],
};

let env: TestEnv;

type Counts = Map<string, number>;

/** Calls of every admmgt routine so far in the admin database, by signature. */
async function counts(): Promise<Counts> {
  await env.admin.query('SELECT pg_stat_clear_snapshot()');
  const rows = await env.rows<{ f: string; calls: string }>(
    `SELECT funcid::regprocedure::text AS f, calls FROM pg_stat_user_functions WHERE schemaname = 'admmgt'`);
  return new Map(rows.map((r) => [r.f, Number(r.calls)]));
}

/** The calls of every admmgt routine that one CALL, in a session of its own, made. */
async function callsOf(call: string, procedure: string): Promise<Counts> {
  const before = await counts();
  const s = new pg.Client({ connectionString: env.adminUrl });
  await s.connect();
  try {
    await s.query(`SET track_functions = 'all'`);
    await s.query(call);
  } finally {
    await s.end();
  }
  // A session's counts are reported when its backend exits, a moment after end() returns.
  const of = (c: Counts) => [...c].filter(([f]) => f.startsWith(`${procedure}(`)).reduce((a, [, n]) => a + n, 0);
  let after = before;
  await until(`the counts of ${call}`, async () => {
    after = await counts();
    return of(after) > of(before);
  });
  return new Map([...after].map(([f, n]) => [f, n - (before.get(f) ?? 0)]).filter(([, n]) => (n as number) > 0) as [string, number][]);
}

// How often the run loop polls a busy connection depends on how long the targets take and how many
// wait at once, not on the code: these are left out.
const POLLING = ['admmgt._exec_poll(', 'admmgt._conn_name('];

/** Routines called more often, going from SMALL + 1 to LARGE + 1 targets, than targets grow (with room for per-target steps that run twice). */
function outgrown(small: Counts, large: Counts): string[] {
  const grew = (LARGE + 1) / (SMALL + 1);
  return [...large].filter(([f]) => !POLLING.some((p) => f.startsWith(p)))
    .filter(([f, n]) => n >= 40 && n > 1.5 * grew * Math.max(small.get(f) ?? 0, 1))
    .map(([f, n]) => `${f}: ${small.get(f) ?? 0} -> ${n}`);
}

/** Each fleet-wide CALL and the routine whose count says that CALL's counts have arrived. */
const CALLS: [string, string][] = [
  ['CALL admmgt.create_database()', 'admmgt.create_database'],
  ['CALL admmgt.applyScripts()', 'admmgt.applyscripts'],
  ['CALL admmgt.deploy(t_numdays => 10, p_verify => true)', 'admmgt.deploy'],
  ['CALL admmgt.applyMaintenance(t_numdays => 12, p_verify => true)', 'admmgt.applymaintenance'],
  ['CALL admmgt.refesh_stored_procedures(p_verify => true)', 'admmgt.refesh_stored_procedures'],
  ['CALL admmgt.refesh_views(p_verify => true)', 'admmgt.refesh_views'],
  ['CALL admmgt.applyLifecycle()', 'admmgt.applylifecycle'],
  ['CALL admmgt.detectDrift(p_verify => true)', 'admmgt.detectdrift'],
  ['SELECT count(*) FROM admmgt.check_targets()', 'admmgt.check_targets'],
  ['SELECT count(*) FROM admmgt.plan_scripts()', 'admmgt.plan_scripts'],
  ['SELECT count(*) FROM admmgt.metrics()', 'admmgt.metrics'],
  ['CALL admmgt.rollbackScripts(p_to => 1)', 'admmgt.rollbackscripts'],
];

/** New pending tenants up to n, and every CALL in turn; script 2 is ready (again) before the apply. */
async function measureAll(from: number, to: number): Promise<Counts[]> {
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT unnest($1::text[]), 1`,
    [Array.from({ length: to - from }, (_, i) => tenant(from + i + 1))]);
  await env.admin.query(markReadySql(2).text);
  const out: Counts[] = [];
  for (const [call, procedure] of CALLS) out.push(await callsOf(call, procedure));
  return out;
}

beforeAll(async () => {
  env = await createEnv('growth');
  await env.makeTemplate(TPL, ['app']);
  await env.queryIn(TPL, `CREATE FUNCTION app.f_v() RETURNS int LANGUAGE sql AS 'SELECT 1';
                          CREATE VIEW app.v_one AS SELECT 1 AS one`);
  await env.waitIdle(TPL);
  await env.addScript(SCRIPT1);
  await env.addScript(SCRIPT2, false);
  await env.admin.query('CALL admmgt.applyScripts()');
});
afterAll(async () => {
  await env?.close();
});

describe('calls per CALL', () => {
  it('grow linearly with the targets in every fleet-wide CALL', async () => {
    const small = await measureAll(0, SMALL);
    const large = await measureAll(SMALL, LARGE);

    // The CALLs really worked on every target: each tenant is at script 1 again after the rollback.
    expect(Object.values(await env.versions())).toEqual(Array(LARGE + 1).fill(1));
    const booked = (k: number) => [...large[k]!].find(([f]) => f.startsWith('admmgt._record('))?.[1];
    expect(booked(1)).toBeGreaterThanOrEqual(LARGE + 1);
    expect(CALLS.map(([call], k) => ({ call, outgrown: outgrown(small[k]!, large[k]!) })))
      .toEqual(CALLS.map(([call]) => ({ call, outgrown: [] })));
  });
});
