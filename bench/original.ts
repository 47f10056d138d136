// The original procedures (steveoliai/DB_Admin, 1_admin_setup.sql) timed beside admmgt: `npm run
// bench -- --original PATH`, PATH a checkout of that repository or its 1_admin_setup.sql, which the
// user fetches. None of its code is in this project: the file is read at run time, patched in
// memory (below, each patch "to make it run") and installed in an admin database of its own on the
// bench's server, since it creates schema admmgt too.
//
// One cycle, on N fresh tenants and a fresh template, with the demo's script 1 as the original's
// own demo types it (test/fixtures/original-demo.psql): create_database(), applyScripts(1),
// applyMaintenance(1, t_numdays => 30) twice (the second with nothing to create, the figure beside
// admmgt's), then refesh_stored_procedures(1, 1) after the demo's testproc1 is added to the template.
// The original has no parallelism: its figures are p1's. Every timed call is checked for what it
// made, so that a patch that stops the original from working shows as an error, not a fast figure.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../src/paths.js';
import { testProc1Sql } from '../templates/demo.js';
import { client, copyDb, timed, urlFor } from './support.js';

const OADMIN = 'bench_oadmin';    // the admin database the original works in, a fresh copy of OPRISTINE per cycle
const OPRISTINE = 'bench_oadmin0'; // the original installed, script 1 ready, template and N tenants registered
const OTPL = 'bench_otpl';
const OREF = 'bench_oref';        // admmgt's script 1 statements run once by hand: what the original must make
const otenant = (i: number) => `bench_o${String(i).padStart(5, '0')}`;

/** The metrics of a cycle, each at p1, and the admmgt metric each is compared with. */
export const ORIGINAL_METRICS: ReadonlyArray<{ metric: string; admmgt: string }> = [
  { metric: 'original create_database', admmgt: 'create_database' },
  { metric: 'original applyScripts', admmgt: 'applyScripts cold' },
  { metric: 'original applyMaintenance(30) first', admmgt: '' },
  { metric: 'original applyMaintenance(30) nothing to create', admmgt: 'applyMaintenance(30) nothing to create' },
  { metric: 'original refesh_stored_procedures', admmgt: 'refesh_stored_procedures' },
];

interface Patch {
  why: string;
  from: string | RegExp;
  to: string;
}

/** The conninfo the original's procedures use to reach the bench's server, after its "dbname=X ". */
function conninfoTail(): string {
  const u = new URL(urlFor('postgres'));
  if (u.password) {
    throw new Error('bench --original: the original procedures keep their connection string in their bodies; ' +
      'give a --url whose role needs no password in it (trust, peer, or a .pgpass of the server\'s OS user)');
  }
  const host = u.searchParams.get('host') ?? u.hostname;
  const user = decodeURIComponent(u.username) || 'postgres';
  const parts = [`user=${user}`, `host=${host}`, `port=${u.port || '5432'}`];
  // The values go unquoted into SQL string literals of the original's bodies.
  if (parts.some((p) => /[\s'\\]/.test(p))) throw new Error(`bench --original: cannot put ${parts.join(' ')} in the original's connection strings`);
  return parts.join(' ');
}

/**
 * The patches to make it run on the bench's server. The original's own procedures are otherwise
 * run as they are, defects and all (a new connection per statement is its design, not a defect).
 */
function patches(): Patch[] {
  const user = decodeURIComponent(new URL(urlFor('postgres')).username) || 'postgres';
  return [
    { why: 'to make it run: its connection strings name a password placeholder and port 5432; the bench\'s server is elsewhere',
      from: /user=postgres password=your-password port = 5432/g, to: conninfoTail() },
    { why: 'to make it run: create_database() copies a template database hard-coded as unitemplate; the bench\'s is ' + OTPL,
      from: /TEMPLATE unitemplate\b/g, to: `TEMPLATE ${OTPL}` },
    { why: `to make it run: schema admmgt is created for role postgres; the bench's role is ${user}`,
      from: /CREATE SCHEMA admmgt\s+AUTHORIZATION postgres;/, to: `CREATE SCHEMA admmgt AUTHORIZATION "${user}";` },
  ];
}

/** The original's setup SQL with the patches applied; each patch must match, or the file is not the one this bench knows. */
async function patchedSetup(location: string): Promise<{ text: string; applied: string[] }> {
  const file = (await stat(location)).isDirectory() ? path.join(location, '1_admin_setup.sql') : location;
  let text = await readFile(file, 'utf8');
  const applied: string[] = [];
  for (const p of patches()) {
    const before = text;
    text = text.replace(p.from, p.to);
    if (text === before) throw new Error(`bench --original: ${file} has no ${String(p.from)}, so this patch no longer applies: ${p.why}`);
    if (!applied.includes(p.why)) applied.push(p.why);
  }
  return { text, applied };
}

/** Script 1's rows as the original's demo types them: the project's fixture of that demo, from its first script to the first CALL. */
async function script1Rows(): Promise<string> {
  const demo = await readFile(path.join(projectRoot(), 'test', 'fixtures', 'original-demo.psql'), 'utf8');
  const m = /^insert into admmgt\.scripts\(id, description\)\s+values \(1,[\s\S]*?(?=^call admmgt\.create_database\(\);)/m.exec(demo);
  if (!m) throw new Error('bench --original: test/fixtures/original-demo.psql has no script 1 before its first create_database()');
  return m[0];
}

/**
 * What a script made in schema mgttest: tables by name, partitions by bound, constraints with
 * their columns in name order. Partition names and key column order are the tools' own choices.
 */
async function madeIn(db: string): Promise<string> {
  const c = await client(db);
  try {
    const { rows } = await c.query<{ x: string }>(`
      SELECT string_agg(x, E'\\n' ORDER BY x) AS x FROM (
        SELECT format('%s %s %s', CASE WHEN c.relispartition THEN 'partition' ELSE c.relname END, c.relkind,
                      coalesce(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '')) AS x
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'mgttest' AND c.relkind IN ('r', 'p')
        UNION ALL
        SELECT format('%s %s (%s) %s', t.relname, k.contype,
                      (SELECT string_agg(a.attname, ', ' ORDER BY a.attname) FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)),
                      CASE WHEN k.contype = 'f' THEN pg_catalog.pg_get_constraintdef(k.oid) ELSE '' END)
          FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class t ON t.oid = k.conrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'mgttest' AND k.contype IN ('p', 'f') AND k.conparentid = 0) s`);
    return rows[0]?.x ?? '';
  } finally {
    await c.end();
  }
}

async function dropAll(server: pg.Client, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await server.query(`DROP DATABASE IF EXISTS ${otenant(i)} WITH (FORCE)`);
  await server.query(`DROP DATABASE IF EXISTS ${OTPL} WITH (FORCE)`);
  await server.query(`DROP DATABASE IF EXISTS ${OADMIN} WITH (FORCE)`);
}

export interface Original {
  /** The patches applied, as docs/performance.md lists them. */
  patches: string[];
  /** One timed cycle on n fresh tenants: ms per tenant, keyed "<metric> p1". */
  cycle(): Promise<Record<string, number>>;
  /** Drop everything the original made on the server. */
  drop(): Promise<void>;
}

/**
 * Install the original from location in its own admin database, with script 1 ready and n
 * tenants registered; script1Stmts is admmgt's rendered script 1, run once in a scratch database
 * so that every cycle can check the original made the same tables and constraints.
 */
export async function prepareOriginal(server: pg.Client, location: string, n: number, script1Stmts: string[]): Promise<Original> {
  const { text, applied } = await patchedSetup(location);
  await dropAll(server, n);
  for (const db of [OPRISTINE, OREF]) await server.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await server.query(`CREATE DATABASE ${OPRISTINE}`);
  const rows = await script1Rows();
  const a = await client(OPRISTINE);
  try {
    await a.query(text);
    await a.query(`BEGIN;\n${rows}
      INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('${OTPL}', true, 2);
      INSERT INTO admmgt.vendor_db_settings (dbname, status) SELECT 'bench_o' || lpad(i::text, 5, '0'), 1 FROM generate_series(1, ${n}) i;
      COMMIT;`);
  } finally {
    await a.end();
  }
  await server.query(`CREATE DATABASE ${OREF}`);
  const r = await client(OREF);
  try {
    await r.query('CREATE SCHEMA mgttest');
    await r.query(['BEGIN', ...script1Stmts, 'COMMIT'].join(';\n'));
  } finally {
    await r.end();
  }
  const expected = await madeIn(OREF);

  const cycle = async (): Promise<Record<string, number>> => {
    const s: Record<string, number> = {};
    await dropAll(server, n);
    await server.query(`CREATE DATABASE ${OTPL}`);
    const t = await client(OTPL);
    await t.query('CREATE SCHEMA mgttest');
    await t.end();
    await copyDb(server, OPRISTINE, OADMIN);
    await server.query('CHECKPOINT');
    const admin = await client(OADMIN);
    const count = async (q: string) => Number((await admin.query<{ n: string }>(q)).rows[0]?.n);
    try {
      s['original create_database p1'] = await timed(() => admin.query('CALL admmgt.create_database()')) / n;
      const created = await count(`SELECT count(*) AS n FROM pg_catalog.pg_database WHERE datname ~ '^bench_o[0-9]{5}$'`);
      if (created !== n) throw new Error(`bench --original: create_database() made ${created} databases, not ${n}`);
      s['original applyScripts p1'] = await timed(() => admin.query('CALL admmgt.applyScripts(1)')) / n;
      const behind = await count(`SELECT count(*) AS n FROM admmgt.vendor_db_settings WHERE coalesce(scriptversion, 0) < 1`);
      if (behind) throw new Error(`bench --original: applyScripts(1) left ${behind} databases before script 1`);
      const made = await madeIn(otenant(n));
      if (made !== expected) throw new Error(`bench --original: applyScripts(1) made in ${otenant(n)}:\n${made}\nadmmgt's script 1 makes:\n${expected}`);
      s['original applyMaintenance(30) first p1'] = await timed(() => admin.query('CALL admmgt.applyMaintenance(1, t_numdays => 30)')) / n;
      s['original applyMaintenance(30) nothing to create p1'] = await timed(() => admin.query('CALL admmgt.applyMaintenance(1, t_numdays => 30)')) / n;
      const tpl = await client(OTPL);
      await tpl.query(testProc1Sql().text);
      await tpl.end();
      s['original refesh_stored_procedures p1'] = await timed(() => admin.query('CALL admmgt.refesh_stored_procedures(1, 1)')) / n;
      const last = await client(otenant(n));
      const procs = Number((await last.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
          WHERE ns.nspname = 'mgttest' AND p.proname = 'testproc1'`)).rows[0]?.n);
      await last.end();
      if (procs !== 1) throw new Error(`bench --original: refesh_stored_procedures(1, 1) left ${otenant(n)} without mgttest.testproc1`);
    } finally {
      await admin.end();
    }
    return s;
  };
  const drop = async () => {
    await dropAll(server, n);
    for (const db of [OPRISTINE, OREF]) await server.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  };
  return { patches: applied, cycle, drop };
}

/** admmgt / original for each metric, at p1 and at admmgt's best p (target for applyScripts: <= 0.2, five times faster). */
export function originalRatios(at: (metric: string, p: number) => number, parallel: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { metric, admmgt } of ORIGINAL_METRICS) {
    if (!admmgt) continue;
    const best = parallel.reduce((b, p) => (at(admmgt, p) < at(admmgt, b) ? p : b), parallel[0] as number);
    const target = admmgt === 'applyScripts cold' ? ' (target <= 0.2)' : '';
    if (parallel.includes(1)) out[`${admmgt} p1 / ${metric}${target}`] = at(admmgt, 1) / at(metric, 1);
    if (best !== 1) out[`${admmgt} p${best} / ${metric}${target}`] = at(admmgt, best) / at(metric, 1);
  }
  return out;
}
