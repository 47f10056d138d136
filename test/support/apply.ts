// What the applyScripts test files share: a fresh scenario (template and tenants made from
// nothing), and readers of what a target holds and what admmgt recorded.
import pg from 'pg';
import { expect } from 'vitest';
import type { TestEnv } from './env.js';

/** The schema the scripts of these files write to. */
export const S = 'mgttest';

/** Procedures the template holds before its tenants are created (tenants copy them). */
export const TEMPLATE_PROCS = `
CREATE PROCEDURE mgttest.log_step(p_label text) LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.steps (label) VALUES (p_label); END $$;
CREATE PROCEDURE mgttest.seed(p_n int) LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.kinds (note) SELECT 'seed ' || g FROM generate_series(1, p_n) g; END $$;
CREATE PROCEDURE mgttest.bump() LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.iso_a (label) VALUES ('bumped'); END $$;`;

export interface Column {
  name: string;
  type: string;
  notnull: boolean;
  identity: string;
  def: string | null;
}

/**
 * The helpers on the env of a file (given as a function: the env is made in its beforeAll) whose
 * template is `template`.
 */
export function applyHelpers(getEnv: () => TestEnv, template: string) {
  const admin = <T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]) => getEnv().rows<T>(text, values);

  const adminError = (text: string) => getEnv().errorOf(text);

  /**
   * Start a scenario from nothing: drop this file's template and tenants, empty admmgt's tables,
   * create the template (schema mgttest, `setup` run in it) and the tenants from it.
   */
  async function fresh(tenants: string[], setup?: string): Promise<void> {
    const env = getEnv();
    for (const db of await env.databases()) {
      if (db !== env.adminDb) await env.admin.query(`DROP DATABASE "${db}" WITH (FORCE)`);
    }
    await env.admin.query(`TRUNCATE admmgt.script_log, admmgt.target_results, admmgt.runs, admmgt.script_table_partitions,
      admmgt.script_table_columns, admmgt.script_table_fkeys, admmgt.script_procs, admmgt.script_tables, admmgt.scripts,
      admmgt.vendor_db_settings, admmgt.template_fingerprints, admmgt.target_fingerprints, admmgt.drift RESTART IDENTITY CASCADE`);
    await env.makeTemplate(template);
    if (setup) await env.queryIn(template, setup);
    if (tenants.length) await env.makeTenants(tenants);
    expect(await env.databases()).toEqual([env.adminDb, template, ...tenants].sort());
    env.notices.length = 0;
  }

  async function scriptStatus(): Promise<Record<number, number>> {
    const rows = await admin<{ id: number; status: number }>('SELECT id, status FROM admmgt.scripts ORDER BY id');
    return Object.fromEntries(rows.map((r) => [r.id, r.status]));
  }

  async function runCount(): Promise<number> {
    return (await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n;
  }

  /** Tables of schema mgttest: name:relkind. */
  async function tables(db: string): Promise<string[]> {
    return (await getEnv().queryIn<{ t: string }>(db,
      `SELECT c.relname || ':' || c.relkind::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'mgttest' AND c.relkind IN ('r', 'p') ORDER BY c.relname`)).map((r) => r.t);
  }

  async function hasTable(db: string, name: string): Promise<boolean> {
    return (await getEnv().queryIn<{ ok: boolean }>(db, `SELECT to_regclass($1) IS NOT NULL AS ok`, [`mgttest.${name}`]))[0]!.ok;
  }

  /** The tenant-side ledger; [] when the target has none yet. */
  async function ledger(db: string): Promise<number[]> {
    const env = getEnv();
    const [{ ok }] = await env.queryIn<{ ok: boolean }>(db, `SELECT to_regclass('admmgt.applied_scripts') IS NOT NULL AS ok`) as [{ ok: boolean }];
    if (!ok) return [];
    return (await env.queryIn<{ scriptid: number }>(db, 'SELECT scriptid FROM admmgt.applied_scripts ORDER BY scriptid'))
      .map((r) => r.scriptid);
  }

  async function columns(db: string, table: string): Promise<Column[]> {
    return getEnv().queryIn<Column>(db,
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
              a.attidentity::text AS identity, pg_get_expr(d.adbin, d.adrelid) AS def
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, [`mgttest.${table}`]);
  }

  return { admin, adminError, fresh, scriptStatus, runCount, tables, hasTable, ledger, columns };
}
