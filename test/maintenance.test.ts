// applyMaintenance: every RANGE period from the day given through that day + t_numdays gets its
// partition, in the template and in every created tenant (updateflag or not), idempotently, with
// the partitions it created logged per target, and a failing tenant reported while the others
// complete. Expected partitions are computed here in TypeScript, independently of the SQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec, TableSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

const TEMPLATE = 'maint_tpl';
const T1 = 'maint_t1';
const T2 = 'maint_t2'; // updateflag = false from the first maintenance run on
const DBS = [TEMPLATE, T1, T2];
const SCHEMA = 'app';

type Unit = 'day' | 'week' | 'month' | 'quarter' | 'year';

// ---- calendar arithmetic in UTC, independent of PostgreSQL -------------------------------------
const day = (iso: string): Date => {
  const [y, m, d] = iso.split('-').map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d));
};
const iso = (d: Date): string => d.toISOString().slice(0, 10);
const addDays = (d: Date, n: number): Date => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + n));
const addMonths = (d: Date, n: number): Date => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, 1));

function periodStart(unit: Unit, d: Date): Date {
  switch (unit) {
    case 'day': return d;
    case 'week': return addDays(d, -((d.getUTCDay() + 6) % 7)); // ISO weeks start on Monday
    case 'month': return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
    case 'quarter': return new Date(Date.UTC(d.getUTCFullYear(), Math.floor(d.getUTCMonth() / 3) * 3, 1));
    case 'year': return new Date(Date.UTC(d.getUTCFullYear(), 0, 1));
  }
}
function nextStart(unit: Unit, start: Date): Date {
  switch (unit) {
    case 'day': return addDays(start, 1);
    case 'week': return addDays(start, 7);
    case 'month': return addMonths(start, 1);
    case 'quarter': return addMonths(start, 3);
    case 'year': return addMonths(start, 12);
  }
}
/** Start days (YYYY-MM-DD) of every period holding a day from `from` through `from + days`. */
function periods(unit: Unit, from: string, days: number): string[] {
  const last = periodStart(unit, addDays(day(from), days));
  const out: string[] = [];
  for (let p = periodStart(unit, day(from)); p <= last; p = nextStart(unit, p)) out.push(iso(p));
  return out;
}

// ---- the tables of the scripts ----------------------------------------------------------------
/** A RANGE parent: the table itself or a LIST partition of it, its interval and key type. */
interface RangeParent { parent: string; unit: Unit; timestamp: boolean; script: number }
const PARENTS: RangeParent[] = [
  { parent: 'm_day', unit: 'day', timestamp: false, script: 1 },
  { parent: 'm_week', unit: 'week', timestamp: false, script: 1 },
  { parent: 'm_month', unit: 'month', timestamp: false, script: 1 },
  { parent: 'm_quarter', unit: 'quarter', timestamp: false, script: 1 },
  { parent: 'm_year', unit: 'year', timestamp: true, script: 1 },
  { parent: 'm_list_eu', unit: 'quarter', timestamp: false, script: 1 },
  { parent: 'm_list_us', unit: 'quarter', timestamp: false, script: 1 },
  { parent: 'm_late', unit: 'month', timestamp: false, script: 2 },
];
const parentOf = (name: string): RangeParent => PARENTS.find((p) => p.parent === name)!;

const rangeTable = (name: string, unit: Unit, type = 'date'): TableSpec => ({
  schema: SCHEMA, name,
  columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'd', type, nullable: false }, { name: 'note', type: 'text' }],
  partitions: [{ column: 'd', type: 'range', value: unit }],
});

const SCRIPT1: ScriptSpec = {
  id: 1,
  description: 'one RANGE table per interval and a LIST table with quarterly RANGE subpartitions',
  tables: [
    rangeTable('m_day', 'day'),
    rangeTable('m_week', 'week'),
    rangeTable('m_month', 'month'),
    rangeTable('m_quarter', 'quarter'),
    rangeTable('m_year', 'year', 'timestamp'),
    {
      schema: SCHEMA, name: 'm_list',
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'region', type: 'text', nullable: false },
        { name: 'd', type: 'date', nullable: false }],
      partitions: ['eu', 'us'].map((v) => ({ column: 'region', type: 'list' as const, value: v, sub: { column: 'd', interval: 'quarter' } })),
    },
  ],
};
const SCRIPT2: ScriptSpec = { id: 2, description: 'a monthly table added later', tables: [rangeTable('m_late', 'month')] };

// ---- expected state: per database, per RANGE parent, the period starts it must have ------------
type Model = Map<string, Map<string, Set<string>>>;
const model: Model = new Map(DBS.map((db) => [db, new Map<string, Set<string>>()]));
let serverToday = '';

const compact = (isoDay: string) => isoDay.replace(/-/g, '');
const partName = (parent: string, start: string) => `${parent}_p${compact(start)}`;
function boundText(p: RangeParent, start: string): string {
  const next = iso(nextStart(p.unit, day(start)));
  const v = (s: string) => (p.timestamp ? `'${s} 00:00:00'` : `'${s}'`);
  return `FOR VALUES FROM (${v(start)}) TO (${v(next)})`;
}

/** What applying a script does to the model: each new RANGE parent gets the period of the server's today. */
function modelApply(db: string, script: number) {
  for (const p of PARENTS.filter((x) => x.script === script)) {
    model.get(db)!.set(p.parent, new Set(periods(p.unit, serverToday, 0)));
  }
}
/** What a maintenance run does to the model of one database; returns the partitions it adds. */
function modelMaintain(db: string, from: string, days: number): string[] {
  const added: string[] = [];
  for (const [parent, starts] of model.get(db)!) {
    for (const s of periods(parentOf(parent).unit, from, days)) {
      if (!starts.has(s)) added.push(`created partition ${SCHEMA}.${partName(parent, s)}`);
      starts.add(s);
    }
  }
  return added.sort();
}
function expectedCatalog(db: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [parent, starts] of model.get(db)!) {
    out[parent] = [...starts].sort().map((s) => `${partName(parent, s)} r ${boundText(parentOf(parent), s)}`);
  }
  return out;
}

// ---- catalog and log readers -------------------------------------------------------------------
let env: TestEnv;

/** Every RANGE period partition in the app schema of a database, by parent: name, relkind, bound. */
async function rangeCatalog(db: string): Promise<Record<string, string[]>> {
  const rows = await env.partitions(db, { schema: SCHEMA });
  const out: Record<string, string[]> = {};
  for (const r of rows.filter((p) => p.bound.startsWith('FOR VALUES FROM'))) (out[r.parent] ??= []).push(`${r.name} ${r.kind} ${r.bound}`);
  return out;
}

async function lastRun(op = 'maintain'): Promise<{ run_id: string; targets: number | null; failed: number | null }> {
  const { rows } = await env.admin.query(
    `SELECT run_id::text, targets, failed FROM admmgt.runs WHERE operation = $1 ORDER BY run_id DESC LIMIT 1`, [op]);
  return rows[0];
}

/** The 'created partition ...' rows of one maintenance run, by target. */
async function createdRows(runId: string): Promise<Record<string, string[]>> {
  const { rows } = await env.admin.query<{ dbname: string; commstat: string }>(
    `SELECT dbname, commstat FROM admmgt.script_log
      WHERE run_id = $1 AND operation = 'maintain' AND commstat LIKE 'created partition %'
      ORDER BY dbname, commstat`, [runId]);
  const out: Record<string, string[]> = {};
  for (const r of rows) (out[r.dbname] ??= []).push(r.commstat);
  return out;
}

async function maintain(days: number, asof: string, verify = false): Promise<string> {
  await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => ${days}, p_asof => '${asof}'::date${verify ? ', p_verify => true' : ''})`);
  return (await lastRun()).run_id;
}

async function applyScript(spec: ScriptSpec) {
  await env.addScript(spec);
  await env.admin.query('CALL admmgt.applyScripts()');
}

beforeAll(async () => {
  env = await createEnv('maint');
  await env.makeTemplate(TEMPLATE, [SCHEMA]);
  await env.waitIdle(TEMPLATE);
  await env.makeTenants([T1, T2]);
  serverToday = (await env.admin.query(`SELECT current_date::text AS d`)).rows[0].d;
  await applyScript(SCRIPT1);
  for (const db of DBS) modelApply(db, 1);
  const { rows } = await env.admin.query(`SELECT lower(dbname) AS db, status, scriptversion FROM admmgt.vendor_db_settings ORDER BY id`);
  expect(rows).toEqual(DBS.map((db) => ({ db, status: 2, scriptversion: 1 })));
  // Partitions are upkeep, not updates: a tenant kept off updates still gets them.
  await env.admin.query(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = $1`, [T2]);
});

afterAll(async () => {
  await env?.close();
});

describe('applyMaintenance', () => {
  it('has, after the apply, only the period of today in every RANGE parent (the baseline of the model)', async () => {
    for (const db of DBS) expect(await rangeCatalog(db)).toEqual(expectedCatalog(db));
    // The LIST level of the subpartitioned table.
    expect(await env.partitions(T1, 'app.m_list')).toEqual([
      { name: 'm_list_eu', kind: 'p', bound: "FOR VALUES IN ('eu')" },
      { name: 'm_list_us', kind: 'p', bound: "FOR VALUES IN ('us')" },
    ]);
  });

  it('creates day partitions through a leap day (2028-02-28 + 3 days holds 2028-02-29)', async () => {
    const expectedLog = Object.fromEntries(DBS.map((db) => [db, modelMaintain(db, '2028-02-28', 3)]));
    const run = await maintain(3, '2028-02-28');
    expect(periods('day', '2028-02-28', 3)).toEqual(['2028-02-28', '2028-02-29', '2028-03-01', '2028-03-02']);
    for (const db of DBS) {
      const cat = await rangeCatalog(db);
      expect(cat).toEqual(expectedCatalog(db));
      expect(cat.m_day).toContain("m_day_p20280229 r FOR VALUES FROM ('2028-02-29') TO ('2028-03-01')");
    }
    expect(await createdRows(run)).toEqual(expectedLog);
    // The bound is real: a row of the leap day lands in the leap day's partition.
    const routed = await env.queryIn(T1, `
      INSERT INTO app.m_day (id, d) VALUES (1, '2028-02-29') RETURNING tableoid::regclass::text AS part`);
    expect(routed).toEqual([{ part: 'app.m_day_p20280229' }]);
  });

  it('creates EVERY period from D through D + N across a year end, in the template and every tenant', async () => {
    const D = '2027-12-15';
    const N = 100; // through 2028-03-24
    const expectedLog = Object.fromEntries(DBS.map((db) => [db, modelMaintain(db, D, N)]));
    const run = await maintain(N, D);
    // The window of each interval, spelled out for the reader (and checked against the TS calendar).
    expect(periods('month', D, N)).toEqual(['2027-12-01', '2028-01-01', '2028-02-01', '2028-03-01']);
    expect(periods('quarter', D, N)).toEqual(['2027-10-01', '2028-01-01']);
    expect(periods('year', D, N)).toEqual(['2027-01-01', '2028-01-01']);
    expect(periods('day', D, N)).toHaveLength(N + 1);
    for (const db of DBS) {
      const cat = await rangeCatalog(db);
      expect(cat).toEqual(expectedCatalog(db));
      expect(cat.m_month).toEqual(expect.arrayContaining([
        "m_month_p20271201 r FOR VALUES FROM ('2027-12-01') TO ('2028-01-01')",
        "m_month_p20280101 r FOR VALUES FROM ('2028-01-01') TO ('2028-02-01')",
        "m_month_p20280201 r FOR VALUES FROM ('2028-02-01') TO ('2028-03-01')",
        "m_month_p20280301 r FOR VALUES FROM ('2028-03-01') TO ('2028-04-01')",
      ]));
      expect(cat.m_year).toEqual(expect.arrayContaining([
        "m_year_p20270101 r FOR VALUES FROM ('2027-01-01 00:00:00') TO ('2028-01-01 00:00:00')",
        "m_year_p20280101 r FOR VALUES FROM ('2028-01-01 00:00:00') TO ('2029-01-01 00:00:00')",
      ]));
      expect(cat.m_list_us).toEqual(expect.arrayContaining([
        "m_list_us_p20271001 r FOR VALUES FROM ('2027-10-01') TO ('2028-01-01')",
        "m_list_us_p20280101 r FOR VALUES FROM ('2028-01-01') TO ('2028-04-01')",
      ]));
    }
    // One 'created partition' row per partition that did not exist yet, per target; the days of
    // the leap-year run are not logged twice.
    const log = await createdRows(run);
    expect(log).toEqual(expectedLog);
    expect(log[T1]).not.toContain('created partition app.m_day_p20280229');
    expect(log[T1]).toContain('created partition app.m_day_p20271215');
    expect(await lastRun()).toMatchObject({ targets: 3, failed: 0 });
  });

  it('makes week partitions start on Monday and span seven days', async () => {
    for (const db of DBS) {
      const rows = (await env.partitions(db, 'app.m_week')).map((p) => {
        const [, lo = '', hi = ''] = /FROM \('([0-9-]+)'\) TO \('([0-9-]+)'\)/.exec(p.bound) ?? [];
        return { relname: p.name, lo, hi, dow: day(lo).getUTCDay() };
      });
      expect(rows.length).toBeGreaterThan(10);
      for (const r of rows) {
        expect(r.dow).toBe(1);
        expect(r.relname).toBe(`m_week_p${compact(r.lo)}`);
        expect(r.hi).toBe(iso(addDays(day(r.lo), 7)));
      }
      // 2027-12-15 is a Wednesday: its week starts on 2027-12-13.
      expect(rows.map((r) => r.relname)).toContain('m_week_p20271213');
      expect(rows.map((r) => r.relname)).not.toContain('m_week_p20271215');
    }
  });

  it('maintains a tenant with updateflag = false as well', async () => {
    const { rows } = await env.admin.query(`SELECT updateflag FROM admmgt.vendor_db_settings WHERE dbname = $1`, [T2]);
    expect(rows).toEqual([{ updateflag: false }]);
    const cat = await rangeCatalog(T2);
    expect(cat.m_day).toHaveLength(1 + 4 + 101 - 4); // today's, the leap-year run, the year-end run (overlapping 4 days)
    expect(cat).toEqual(expectedCatalog(T2));
    const { rows: results } = await env.admin.query(
      `SELECT ok FROM admmgt.target_results WHERE operation = 'maintain' AND dbname = $1`, [T2]);
    expect(results).toEqual([{ ok: true }]);
  });

  it('changes nothing when run again: same partitions, no new "created partition" rows', async () => {
    const before = await Promise.all(DBS.map((db) => rangeCatalog(db)));
    const relcount = async (db: string) =>
      (await env.queryIn(db, `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app'`))[0]!.n;
    const countsBefore = await Promise.all(DBS.map(relcount));
    // p_verify: the batch itself must be idempotent, so send it although the upkeep records say every target holds the window.
    const run = await maintain(100, '2027-12-15', true);
    expect(await Promise.all(DBS.map((db) => rangeCatalog(db)))).toEqual(before);
    expect(await Promise.all(DBS.map(relcount))).toEqual(countsBefore);
    expect(await createdRows(run)).toEqual({});
    // It did visit every target (p_verify), and every one is fine.
    const { rows } = await env.admin.query(
      `SELECT dbname, ok FROM admmgt.target_results WHERE operation = 'maintain' AND run_id = $1 ORDER BY target_id`, [run]);
    expect(rows).toEqual(DBS.map((db) => ({ dbname: db, ok: true })));
  });

  it('gives a table added by a later script its window at the next run, where the script was applied', async () => {
    await applyScript(SCRIPT2);
    const { rows } = await env.admin.query(`SELECT lower(dbname) AS db, scriptversion FROM admmgt.vendor_db_settings ORDER BY id`);
    expect(rows).toEqual([{ db: TEMPLATE, scriptversion: 2 }, { db: T1, scriptversion: 2 }, { db: T2, scriptversion: 1 }]);
    modelApply(TEMPLATE, 2);
    modelApply(T1, 2);

    const expectedLog = Object.fromEntries(DBS.map((db) => [db, modelMaintain(db, '2027-12-15', 100)]).filter(([, l]) => l!.length));
    expect(Object.keys(expectedLog)).toEqual([TEMPLATE, T1]);
    const run = await maintain(100, '2027-12-15');
    for (const db of DBS) expect(await rangeCatalog(db)).toEqual(expectedCatalog(db));
    expect((await rangeCatalog(T1)).m_late).toEqual(expect.arrayContaining([
      "m_late_p20271201 r FOR VALUES FROM ('2027-12-01') TO ('2028-01-01')",
      "m_late_p20280301 r FOR VALUES FROM ('2028-03-01') TO ('2028-04-01')",
    ]));
    expect(await createdRows(run)).toEqual(expectedLog);
    // The tenant at version 1 has no m_late and is not asked to partition it.
    expect(await env.queryIn(T2, `SELECT to_regclass('app.m_late') AS t`)).toEqual([{ t: null }]);
    expect((await env.admin.query(`SELECT * FROM admmgt.failures`)).rows).toEqual([]);
  });

  it('refuses a negative, too large or NULL t_numdays with SQLSTATE 22023 before starting a run', async () => {
    const runsBefore = (await lastRun()).run_id;
    for (const n of ['-1', '3661', 'NULL']) {
      await expect(env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => ${n})`))
        .rejects.toMatchObject({ code: '22023', message: expect.stringContaining('t_numdays') });
    }
    expect((await lastRun()).run_id).toBe(runsBefore);
  });

  it('reports a tenant whose partition cannot be created in admmgt.failures and completes the others', async () => {
    // In T1 only, a partition under another name already covers June 2029.
    await env.queryIn(T1, `CREATE TABLE app.m_month_squatter PARTITION OF app.m_month FOR VALUES FROM ('2029-06-01') TO ('2029-07-01')`);
    const D = '2029-05-20';
    const N = 20;
    const logT = modelMaintain(TEMPLATE, D, N);
    const logT2 = modelMaintain(T2, D, N);
    const t1Before = await rangeCatalog(T1);

    const run = await maintain(N, D);
    expect(await lastRun()).toMatchObject({ targets: 3, failed: 1 });
    const { rows: failures } = await env.admin.query(`SELECT operation, scriptid, dbname, sqlstate, statement, message FROM admmgt.failures`);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      operation: 'maintain', scriptid: null, dbname: T1, sqlstate: '42P17',
      statement: expect.stringContaining('app.m_month_p20290601 PARTITION OF app.m_month'),
      message: expect.stringContaining('overlap'),
    });
    // The others complete...
    expect(await rangeCatalog(TEMPLATE)).toEqual(expectedCatalog(TEMPLATE));
    expect(await rangeCatalog(T2)).toEqual(expectedCatalog(T2));
    const log = await createdRows(run);
    expect(log).toEqual({ [TEMPLATE]: logT, [T2]: logT2 });
    expect(logT).toContain('created partition app.m_month_p20290601');
    // ...and the failed tenant's batch is one transaction: none of its partitions were created.
    expect(await rangeCatalog(T1)).toEqual(t1Before);
    const { rows: errors } = await env.admin.query(
      `SELECT outcome, sqlstate FROM admmgt.script_log WHERE run_id = $1 AND dbname = $2`, [run, T1]);
    expect(errors).toEqual([{ outcome: 'error', sqlstate: '42P17' }]);

    // Once the squatter is gone, the next run catches the tenant up and clears the failure.
    await env.queryIn(T1, `DROP TABLE app.m_month_squatter`);
    const logT1 = modelMaintain(T1, D, N);
    const rerun = await maintain(N, D);
    expect(await createdRows(rerun)).toEqual({ [T1]: logT1 });
    for (const db of DBS) expect(await rangeCatalog(db)).toEqual(expectedCatalog(db));
    expect((await env.admin.query(`SELECT * FROM admmgt.failures`)).rows).toEqual([]);
  });
});
