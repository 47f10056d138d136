// Scripts in parts: a SQL step with txmode 'none' runs alone outside any transaction, the steps
// around it are transactional parts of their own, and each target's ledger (applied_parts) makes
// every part exactly-once: a rerun after a failure, or after a run killed between two parts or
// during a part, never runs a finished part again; a part whose end admmgt did not see is refused
// until resolve_part says what happened. Frozen scripts: what the template ran is what every
// target runs. Every database of this file starts with sqlparts_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'sqlparts_tpl';
const { admin, adminError, fresh, scriptStatus, tables, ledger } = applyHelpers(() => env, TPL);

const SETUP = `
CREATE TABLE mgttest.steps (id bigint GENERATED ALWAYS AS IDENTITY, label text NOT NULL);
CREATE PROCEDURE mgttest.log_step(p_label text) LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.steps (label) VALUES (p_label); END $$;`;

type Step = string | { body: string; txmode?: 'script' | 'none' };

/** Write a script's typed rows and SQL steps (seq 1, 2, ...), ready unless told; the script_sql ids. */
async function sqlScript(spec: ScriptSpec, steps: Step[], ready = true): Promise<number[]> {
  await env.addScript(spec, false);
  const ids: number[] = [];
  for (const [i, s] of steps.entries()) {
    const step = typeof s === 'string' ? { body: s } : s;
    const [row] = await admin<{ id: number }>(
      `INSERT INTO admmgt.script_sql (scriptid, seq, body, txmode) VALUES ($1, $2, $3, $4) RETURNING id::int`,
      [spec.id, i + 1, step.body, step.txmode ?? 'script']);
    ids.push(row!.id);
  }
  if (ready) await admin(`UPDATE admmgt.scripts SET status = 1 WHERE id = $1`, [spec.id]);
  return ids;
}

const none = (body: string) => ({ body, txmode: 'none' as const });

/** How often the table mgttest.big of a database was vacuumed, waiting up to 10 s for the statistics to say so. */
async function vacuumCount(db: string): Promise<number> {
  for (let i = 0; ; i++) {
    const [row] = await env.queryIn<{ n: number }>(db, `SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE relid = 'mgttest.big'::regclass`);
    if ((row?.n ?? 0) > 0 || i >= 100) return row?.n ?? 0;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function steps(db: string): Promise<string[]> {
  return (await env.queryIn<{ label: string }>(db, 'SELECT label FROM mgttest.steps ORDER BY id')).map((r) => r.label);
}

/** A target's part ledger: scriptid/part and whether it finished. */
async function parts(db: string, scriptid?: number): Promise<string[]> {
  const [{ ok }] = await env.queryIn<{ ok: boolean }>(db, `SELECT to_regclass('admmgt.applied_parts') IS NOT NULL AS ok`) as [{ ok: boolean }];
  if (!ok) return [];
  return (await env.queryIn<{ p: string }>(db,
    `SELECT scriptid || '/' || part || CASE WHEN finished_at IS NULL THEN ' started' ELSE ' finished' END AS p
       FROM admmgt.applied_parts WHERE $1::int IS NULL OR scriptid = $1 ORDER BY scriptid, part`, [scriptid ?? null])).map((r) => r.p);
}

/** Indexes of schema mgttest that are not primary keys: name -> valid. */
async function indexes(db: string): Promise<Record<string, boolean>> {
  const rows = await env.queryIn<{ name: string; valid: boolean }>(db,
    `SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE c.relnamespace = 'mgttest'::regnamespace AND NOT i.indisprimary ORDER BY 1`);
  return Object.fromEntries(rows.map((r) => [r.name, r.valid]));
}

/** What the admin side keeps of parts whose end it has not seen: dbname script/part state. */
async function attempts(): Promise<string[]> {
  return (await admin<{ a: string }>(
    `SELECT v.dbname || ' ' || a.scriptid || '/' || a.part || ' ' || a.state AS a
       FROM admmgt.part_attempts a JOIN admmgt.vendor_db_settings v ON v.id = a.target_id ORDER BY 1`)).map((r) => r.a);
}

const sessions: pg.Client[] = [];
async function session(): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: env.adminUrl });
  client.on('error', () => {}); // a terminated session reports here
  await client.connect();
  sessions.push(client);
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0].pid };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
/** The sessions admmgt has open in a database, with what they wait for and run. */
async function admmgtSessions(db: string) {
  return admin<{ pid: number; wait: string | null; query: string }>(
    `SELECT pid, wait_event_type AS wait, query FROM pg_stat_activity WHERE datname = $1 AND application_name = 'admmgt'`, [db]);
}

/** Start applyScripts in a session of its own; kill it with kill(). */
async function backgroundApply(args = '') {
  const runner = await session();
  // A part kept waiting by a test must not give up on its own first.
  await runner.client.query(`SET admmgt.lock_timeout = '60s'`);
  const outcome = runner.client.query(`CALL admmgt.applyScripts(${args})`).then(() => 'finished', (e: Error) => e.message);
  return {
    outcome,
    async kill() {
      expect((await admin('SELECT pg_terminate_backend($1) AS ok', [runner.pid]))).toEqual([{ ok: true }]);
      expect(await outcome).toMatch(/terminat/i);
    },
  };
}

beforeAll(async () => {
  env = await createEnv('sqlparts');
});
afterAll(async () => {
  for (const c of sessions) await c.end().catch(() => {});
  await env?.close();
});

describe('steps outside a transaction (txmode none)', () => {
  const T = ['sqlparts_n1', 'sqlparts_n2'];
  let ids: number[];

  beforeAll(async () => {
    await fresh(T, SETUP);
    ids = await sqlScript({
      id: 1, description: 'an index built concurrently, an enum value, a vacuum',
      tables: [{ schema: S, name: 'big', columns: [{ name: 'id', type: 'int', primaryKey: true }, { name: 'code', type: 'text' }] }],
    }, [
      `CREATE TYPE mgttest.mood AS ENUM ('ok');
       CREATE TABLE mgttest.moods (m mgttest.mood);
       INSERT INTO mgttest.big SELECT g, 'c' || g FROM generate_series(1, 500) g;
       CALL mgttest.log_step('part 1')`,
      none('CREATE INDEX CONCURRENTLY big_code ON mgttest.big (code)'),
      none(`ALTER TYPE mgttest.mood ADD VALUE 'great'`),
      // A new enum value cannot be used in the transaction that adds it: this part is another one.
      `INSERT INTO mgttest.moods VALUES ('great'); CALL mgttest.log_step('part 4')`,
      none('VACUUM mgttest.big'),
    ]);
    await admin('CALL admmgt.applyScripts()');
  });

  it('makes the typed rows and the steps before a none step one part, each none step a part, the steps after it another', async () => {
    expect(await admin(`SELECT part, txmode, sources, index_def ->> 'schema' AS index_schema, index_def ->> 'name' AS index_name FROM admmgt.script_parts WHERE scriptid = 1 ORDER BY part`)).toEqual([
      { part: 1, txmode: 'script', index_schema: null, index_name: null, sources: [
        'schema mgttest', expect.stringMatching(/^admmgt\.script_tables id \d+$/),
        ...[1, 2, 3, 4].map((n) => `admmgt.script_sql id ${ids[0]}, statement ${n}`)] },
      { part: 2, txmode: 'none', sources: [`admmgt.script_sql id ${ids[1]}`], index_schema: 'mgttest', index_name: 'big_code' },
      { part: 3, txmode: 'none', sources: [`admmgt.script_sql id ${ids[2]}`], index_schema: null, index_name: null },
      { part: 4, txmode: 'script', sources: [`admmgt.script_sql id ${ids[3]}, statement 1`, `admmgt.script_sql id ${ids[3]}, statement 2`], index_schema: null, index_name: null },
      { part: 5, txmode: 'none', sources: [`admmgt.script_sql id ${ids[4]}`], index_schema: null, index_name: null },
    ]);
    // A none step is sent as it is, unwrapped.
    expect(await admin(`SELECT stmts FROM admmgt.script_parts WHERE scriptid = 1 AND part = 2`))
      .toEqual([{ stmts: ['CREATE INDEX CONCURRENTLY big_code ON mgttest.big (code)'] }]);
  });
  it('knows the index a CREATE INDEX CONCURRENTLY step builds, as the catalog spells it', async () => {
    const cases: [string, { schema: string; name: string } | null][] = [
      ['CREATE UNIQUE INDEX CONCURRENTLY Codes_Code ON MgtTest.Codes (code)', { schema: 'mgttest', name: 'codes_code' }],
      ['create index concurrently if not exists "Odd ""Name""" on only mgttest."T" using btree (a)', { schema: 'mgttest', name: 'Odd "Name"' }],
      // No name, or no schema (which would not resolve on a target anyway): not known.
      ['CREATE INDEX CONCURRENTLY ON mgttest.t (a)', null],
      ['CREATE INDEX CONCURRENTLY t_a ON t (a)', null],
      ['CREATE INDEX t_a ON mgttest.t (a)', null],
    ];
    for (const [stmt, want] of cases) {
      expect(await admin('SELECT admmgt._sql_concurrent_index($1) AS i', [stmt])).toEqual([{ i: want }]);
    }
  });

  it('runs them outside a transaction in every target: the index is valid, the value usable, the table vacuumed', async () => {
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await scriptStatus()).toEqual({ 1: 2 });
    await env.makeTenants(['sqlparts_n3']);
    for (const db of [TPL, ...T, 'sqlparts_n3']) {
      expect(await indexes(db)).toEqual({ big_code: true });
      expect(await env.queryIn(db, `SELECT enum_range(NULL::mgttest.mood)::text AS r, (SELECT array_agg(m::text) FROM mgttest.moods) AS m`))
        .toEqual([{ r: '{ok,great}', m: ['great'] }]);
      // A copy of the template has no statistics of its own.
      if (db !== 'sqlparts_n3') {
        // Before PostgreSQL 15 the statistics collector reports a VACUUM a moment later.
        expect(await vacuumCount(db)).toBe(1);
      }
      expect(await steps(db)).toEqual(['part 1', 'part 4']);
      // A ledger row per part, one for the script, written after the last part.
      expect(await parts(db)).toEqual(['1/1 finished', '1/2 finished', '1/3 finished', '1/4 finished', '1/5 finished']);
      expect(await ledger(db)).toEqual([1]);
      expect(await env.queryIn(db, `SELECT (SELECT applied_at FROM admmgt.applied_scripts WHERE scriptid = 1)
                                           >= (SELECT max(finished_at) FROM admmgt.applied_parts) AS last`)).toEqual([{ last: true }]);
    }
    expect(await env.versions()).toEqual({ [TPL]: 1, sqlparts_n1: 1, sqlparts_n2: 1, sqlparts_n3: 1 });
    expect(await attempts()).toEqual([]);
    // The log says what each part did on a target.
    expect((await admin<{ commstat: string }>(
      `SELECT commstat FROM admmgt.script_log WHERE dbname = $1 AND commstat LIKE 'part %' ORDER BY id`, ['sqlparts_n1'])).map((r) => r.commstat))
      .toEqual(['part 2 of script 1: started, outside a transaction', 'part 2 of script 1: finished',
                'part 3 of script 1: started, outside a transaction', 'part 3 of script 1: finished',
                'part 5 of script 1: started, outside a transaction', 'part 5 of script 1: finished']);
  });
});

describe('exactly once: a none step that fails in one tenant', () => {
  const T = ['sqlparts_e1', 'sqlparts_e2', 'sqlparts_e3'];

  beforeAll(async () => {
    await fresh(T, SETUP);
    await env.addScript({ id: 1, description: 'codes', tables: [{ schema: S, name: 'codes', columns: [{ name: 'code', type: 'text' }] }] });
    await admin('CALL admmgt.applyScripts()');
    for (const db of [TPL, ...T]) await env.queryIn(db, `INSERT INTO mgttest.codes VALUES ('a'), ('b')`);
    // Only sqlparts_e2 has a duplicate.
    await env.queryIn('sqlparts_e2', `INSERT INTO mgttest.codes VALUES ('a')`);
  });

  it('keeps the earlier parts there, leaves it below the version with an INVALID index; the others finish', async () => {
    await sqlScript({ id: 2, description: 'a unique index built concurrently' }, [
      `CALL mgttest.log_step('2: part 1')`,
      // Not idempotent and outside a transaction: a second run would show.
      none(`INSERT INTO mgttest.steps (label) VALUES ('2: part 2, alone')`),
      none('CREATE UNIQUE INDEX CONCURRENTLY codes_code ON mgttest.codes (code)'),
      `CALL mgttest.log_step('2: part 4')`,
    ]);
    await admin('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 2, sqlparts_e1: 2, sqlparts_e2: 1, sqlparts_e3: 2 });
    expect(await admin('SELECT dbname, sqlstate, message, statement FROM admmgt.failures')).toEqual([{
      dbname: 'sqlparts_e2', sqlstate: '23505', message: expect.stringMatching(/^admmgt\.script_sql id \d+: could not create unique index "codes_code"$/),
      statement: 'CREATE UNIQUE INDEX CONCURRENTLY codes_code ON mgttest.codes (code)' }]);
    expect(await steps('sqlparts_e2')).toEqual(['2: part 1', '2: part 2, alone']);
    expect(await parts('sqlparts_e2')).toEqual(['2/1 finished', '2/2 finished', '2/3 started']);
    expect(await ledger('sqlparts_e2')).toEqual([1]);
    expect(await indexes('sqlparts_e2')).toEqual({ codes_code: false });
    // The admin side knows that attempt failed: the very attempt the tenant recorded.
    expect(await attempts()).toEqual(['sqlparts_e2 2/3 failed']);
    const [{ token }] = await env.queryIn<{ token: string }>('sqlparts_e2', 'SELECT token FROM admmgt.applied_parts WHERE scriptid = 2 AND part = 3') as [{ token: string }];
    expect(await admin('SELECT token FROM admmgt.part_attempts')).toEqual([{ token }]);
    for (const db of [TPL, 'sqlparts_e1', 'sqlparts_e3']) {
      expect(await steps(db)).toEqual(['2: part 1', '2: part 2, alone', '2: part 4']);
      expect(await indexes(db)).toEqual({ codes_code: true });
      expect(await ledger(db)).toEqual([1, 2]);
    }
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 1 });
  });

  it('after the data is fixed, a rerun drops the INVALID leftover, builds it valid and runs no earlier part twice', async () => {
    await env.queryIn('sqlparts_e2', `DELETE FROM mgttest.codes WHERE ctid = (SELECT max(ctid) FROM mgttest.codes WHERE code = 'a')`);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await env.versions()).toEqual({ [TPL]: 2, sqlparts_e1: 2, sqlparts_e2: 2, sqlparts_e3: 2 });
    expect(await indexes('sqlparts_e2')).toEqual({ codes_code: true });
    expect(await steps('sqlparts_e2')).toEqual(['2: part 1', '2: part 2, alone', '2: part 4']);
    expect(await parts('sqlparts_e2')).toEqual(['2/1 finished', '2/2 finished', '2/3 finished', '2/4 finished']);
    expect(await ledger('sqlparts_e2')).toEqual([1, 2]);
    expect(await attempts()).toEqual([]);
    // What the rerun did there: part 1 was in the ledger already, part 2 was skipped whole.
    const run = (await admin<{ r: number }>(`SELECT max(run_id)::int AS r FROM admmgt.runs`))[0]!.r;
    expect(await admin(`SELECT outcome, commstat FROM admmgt.script_log WHERE run_id = $1 AND dbname = 'sqlparts_e2' AND outcome = 'already applied' ORDER BY id`, [run]))
      .toEqual([
        { outcome: 'already applied', commstat: 'INSERT INTO admmgt.applied_parts (scriptid, part, finished_at) VALUES (2, 1, now())' },
        { outcome: 'already applied', commstat: 'part 2 of script 2: finished before' }]);
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2 });
  });
});

describe('a run killed during a part outside a transaction, or between two parts', () => {
  const T = ['sqlparts_k1', 'sqlparts_k2'];

  beforeAll(async () => {
    await fresh(T, SETUP);
  });

  it('refuses, with 55000 and a hint naming resolve_part, a part whose end it did not see; resolve_part true goes on after it', async () => {
    await sqlScript({ id: 1, description: 'a slow insert alone' }, [
      `CALL mgttest.log_step('1: part 1')`,
      none(`INSERT INTO mgttest.steps (label) SELECT '1: part 2, slow' FROM pg_catalog.pg_sleep(2)`),
      `CALL mgttest.log_step('1: part 3')`,
    ]);
    const run = await backgroundApply();
    await until('the template to run the slow part', async () =>
      (await admmgtSessions(TPL)).some((s) => s.query.includes('pg_sleep(2)')));
    await run.kill();
    // The statement goes on without its client, and commits.
    await env.waitIdle(TPL, 10_000);
    expect(await steps(TPL)).toEqual(['1: part 1', '1: part 2, slow']);
    expect(await parts(TPL)).toEqual(['1/1 finished', '1/2 started']);
    expect(await attempts()).toEqual([`${TPL} 1/2 started`]);

    await admin('CALL admmgt.applyScripts()');
    const [f] = await admin<{ dbname: string; sqlstate: string; message: string; hint: string }>(
      'SELECT dbname, sqlstate, message, hint FROM admmgt.failures');
    expect(f).toMatchObject({ dbname: TPL, sqlstate: '55000' });
    expect(f!.message).toMatch(/^admmgt: part 2 of script 1 was started \(at 20\d\d-.*\) and admmgt cannot tell whether it finished$/);
    expect(f!.hint).toBe(`Check the target, then CALL admmgt.resolve_part('${TPL}', 1, 2, true) if it ran or false to run it again.`);
    // Not the script's fault: it stays ready, and no tenant gets it.
    expect(await scriptStatus()).toEqual({ 1: 1 });
    expect(await env.versions({ nullAs: 0 })).toEqual({ [TPL]: 0, sqlparts_k1: 0, sqlparts_k2: 0 });
    expect(await steps(TPL)).toEqual(['1: part 1', '1: part 2, slow']);

    await admin(`CALL admmgt.resolve_part('${TPL}', 1, 2, true)`);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await env.versions()).toEqual({ [TPL]: 1, sqlparts_k1: 1, sqlparts_k2: 1 });
    for (const db of [TPL, ...T]) {
      expect(await steps(db)).toEqual(['1: part 1', '1: part 2, slow', '1: part 3']);
      expect(await parts(db, 1)).toEqual(['1/1 finished', '1/2 finished', '1/3 finished']);
    }
    expect(await attempts()).toEqual([]);
  });

  it('runs the part again after resolve_part false, and no finished part twice', async () => {
    await sqlScript({ id: 2, description: 'a slow step alone' }, [
      `CALL mgttest.log_step('2: part 1')`,
      none('SELECT pg_catalog.pg_sleep(2)'),
      `CALL mgttest.log_step('2: part 3')`,
    ]);
    // One tenant at a time: the kill comes while the first tenant sleeps.
    const run = await backgroundApply('p_parallel => 1');
    await until('sqlparts_k1 to run the slow part', async () =>
      (await admmgtSessions('sqlparts_k1')).some((s) => s.query.includes('pg_sleep(2)')));
    await run.kill();
    await env.waitIdle('sqlparts_k1', 10_000);
    expect(await parts('sqlparts_k1', 2)).toEqual(['2/1 finished', '2/2 started']);

    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT dbname, sqlstate FROM admmgt.failures')).toEqual([{ dbname: 'sqlparts_k1', sqlstate: '55000' }]);
    expect(await env.versions()).toEqual({ [TPL]: 2, sqlparts_k1: 1, sqlparts_k2: 2 });

    await admin(`CALL admmgt.resolve_part('sqlparts_k1', 2, 2, false)`);
    expect(await attempts()).toEqual(['sqlparts_k1 2/2 failed']);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await env.versions()).toEqual({ [TPL]: 2, sqlparts_k1: 2, sqlparts_k2: 2 });
    expect(await steps('sqlparts_k1')).toEqual(['1: part 1', '1: part 2, slow', '1: part 3', '2: part 1', '2: part 3']);
    expect(await parts('sqlparts_k1', 2)).toEqual(['2/1 finished', '2/2 finished', '2/3 finished']);
    // The slow statement ran there twice: killed (its end never booked, so not logged), then again.
    expect(await admin(`SELECT count(*)::int AS n FROM admmgt.script_log WHERE dbname = 'sqlparts_k1' AND commstat = 'SELECT pg_catalog.pg_sleep(2)'`))
      .toEqual([{ n: 1 }]);
  });

  /**
   * Script 3 on sqlparts_k1, killed while the opening of its part 2 waits: a test session holds an
   * uncommitted ledger row of that part there, so the opening's INSERT waits for it.
   */
  async function killAtTheOpeningOfPart2(scriptid: number, killOpening: boolean) {
    await sqlScript({ id: scriptid, description: 'killed between parts' }, [
      `CALL mgttest.log_step('${scriptid}: part 1')`,
      none(`INSERT INTO mgttest.steps (label) VALUES ('${scriptid}: part 2, alone')`),
      `CALL mgttest.log_step('${scriptid}: part 3')`,
    ]);
    const blocker = new pg.Client({ connectionString: env.urlFor('sqlparts_k1') });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`INSERT INTO admmgt.applied_parts (scriptid, part, token) VALUES ($1, 2, 'the test')`, [scriptid]);
      const run = await backgroundApply('p_parallel => 1');
      await until('the opening of part 2 on sqlparts_k1 to wait', async () =>
        (await admmgtSessions('sqlparts_k1')).some((s) => s.wait === 'Lock'));
      // Part 1 is done there, and the admin side knows it.
      expect(await parts('sqlparts_k1', scriptid)).toEqual([`${scriptid}/1 finished`]);
      await run.kill();
      if (killOpening) {
        for (const s of await admmgtSessions('sqlparts_k1')) await admin('SELECT pg_terminate_backend($1)', [s.pid]);
      }
      await blocker.query('ROLLBACK');
    } finally {
      await blocker.end();
    }
    await env.waitIdle('sqlparts_k1', 10_000);
  }

  it('resumes at the next part after a kill between two parts', async () => {
    await killAtTheOpeningOfPart2(3, true);
    // The opening died with its session: nothing of part 2 there.
    expect(await parts('sqlparts_k1', 3)).toEqual(['3/1 finished']);
    expect(await attempts()).toEqual([]);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await env.versions()).toEqual({ [TPL]: 3, sqlparts_k1: 3, sqlparts_k2: 3 });
    for (const db of [TPL, ...T]) {
      expect((await steps(db)).filter((l) => l.startsWith('3:'))).toEqual(['3: part 1', '3: part 2, alone', '3: part 3']);
      expect(await parts(db, 3)).toEqual(['3/1 finished', '3/2 finished', '3/3 finished']);
    }
  });

  it('can be told with resolve_part about a part opened on the target that the admin side never saw open', async () => {
    await killAtTheOpeningOfPart2(4, false);
    // The opening committed there after the admin side was gone: started, and no record of it here.
    expect(await parts('sqlparts_k1', 4)).toEqual(['4/1 finished', '4/2 started']);
    expect(await attempts()).toEqual([]);
    expect((await steps('sqlparts_k1')).filter((l) => l.startsWith('4:'))).toEqual(['4: part 1']);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT dbname, sqlstate FROM admmgt.failures')).toEqual([{ dbname: 'sqlparts_k1', sqlstate: '55000' }]);

    await admin(`CALL admmgt.resolve_part('sqlparts_k1', 4, 2, false)`);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await env.versions()).toEqual({ [TPL]: 4, sqlparts_k1: 4, sqlparts_k2: 4 });
    expect((await steps('sqlparts_k1')).filter((l) => l.startsWith('4:'))).toEqual(['4: part 1', '4: part 2, alone', '4: part 3']);
    expect(await attempts()).toEqual([]);
  });

  it('refuses resolve_part for a part that is not outside a transaction, or a database that is not a target', async () => {
    expect(await adminError(`CALL admmgt.resolve_part('sqlparts_k1', 4, 1, true)`)).toMatchObject({
      code: 'P0002', message: 'admmgt: script 4 has no part 1 outside a transaction' });
    expect(await adminError(`CALL admmgt.resolve_part('sqlparts_nope', 4, 2, true)`)).toMatchObject({
      code: 'P0002', message: 'admmgt: sqlparts_nope is not a target' });
    expect(await adminError(`CALL admmgt.resolve_part('sqlparts_k1', 4, 2, NULL)`)).toMatchObject({ code: '22004' });
    expect(await attempts()).toEqual([]);
  });
});

describe('frozen scripts', () => {
  const T = ['sqlparts_f1', 'sqlparts_f2'];

  beforeAll(async () => {
    await fresh([...T, 'sqlparts_f3'], SETUP);
    // sqlparts_f3 takes no scripts for now: it will be behind when the rows are changed.
    await admin(`UPDATE admmgt.vendor_db_settings SET updateflag = false WHERE dbname = 'sqlparts_f3'`);
    await sqlScript({ id: 1, description: 'frozen when the template runs it',
      tables: [{ schema: S, name: 'frozen', columns: [{ name: 'id', type: 'int' }] }] },
    [`CALL mgttest.log_step('as written')`]);
    await admin('CALL admmgt.applyScripts()');
  });

  it('refuses to change the rows of a script the template applied (55000, with a hint); its status may change', async () => {
    expect(await admin('SELECT frozen_at IS NOT NULL AS frozen, rows_checksum IS NOT NULL AS sum FROM admmgt.scripts WHERE id = 1'))
      .toEqual([{ frozen: true, sum: true }]);
    const [row] = await admin<{ id: number }>('SELECT id::int FROM admmgt.script_sql WHERE scriptid = 1');
    for (const stmt of [
      `UPDATE admmgt.script_sql SET body = 'SELECT 1' WHERE scriptid = 1`,
      `INSERT INTO admmgt.script_sql (scriptid, seq, body) VALUES (1, 2, 'SELECT 2')`,
      `DELETE FROM admmgt.script_sql WHERE scriptid = 1`,
      `UPDATE admmgt.script_table_columns SET datatype = 'bigint' WHERE scriptid = 1`,
    ]) {
      const err = await adminError(stmt);
      expect(err.code).toBe('55000');
      expect(err.message).toMatch(/^admmgt: script 1 is applied and frozen: admmgt\.script_(sql|table_columns) id \d+ cannot be changed$/);
      expect(err.hint).toBe('Every target runs the script as the template ran it. Write a new script for the change.');
    }
    // Taking a row away into another script changes this one too.
    await admin(`INSERT INTO admmgt.scripts (id, description) VALUES (9, 'a draft')`);
    expect(await adminError(`UPDATE admmgt.script_sql SET scriptid = 9 WHERE scriptid = 1`)).toMatchObject({
      code: '55000', message: `admmgt: script 1 is applied and frozen: admmgt.script_sql id ${row!.id} cannot be changed` });
    await admin(`DELETE FROM admmgt.scripts WHERE id = 9`);
    await admin(`UPDATE admmgt.script_sql SET status = 7 WHERE scriptid = 1`);
    await admin(`UPDATE admmgt.script_sql SET status = 2 WHERE scriptid = 1`);
    expect(await admin('SELECT count(*)::int AS n FROM admmgt.script_parts WHERE scriptid = 1')).toEqual([{ n: 1 }]);
    expect(await admin('SELECT * FROM admmgt.script_drift()')).toEqual([]);
  });

  it('lets a ready script the template has not applied be edited, unfreezing it; the next run renders the new rows', async () => {
    // Script 2 fails on the template, so script 3 after it is frozen but never run.
    await sqlScript({ id: 2, description: 'fails on the template' }, ['SELECT 1 / 0']);
    await sqlScript({ id: 3, description: 'edited before it runs' }, [`CALL mgttest.log_step('3 as first written')`]);
    await admin('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 3, 3: 1 });
    expect(await admin('SELECT id, frozen_at IS NOT NULL AS frozen FROM admmgt.scripts WHERE id IN (2, 3) ORDER BY id'))
      .toEqual([{ id: 2, frozen: false }, { id: 3, frozen: true }]);
    expect(await admin(`SELECT stmts FROM admmgt.script_parts WHERE scriptid = 3`))
      .toEqual([{ stmts: [`DO $admmgt$BEGIN EXECUTE $step$CALL mgttest.log_step('3 as first written')$step$; END$admmgt$`] }]);

    await admin(`UPDATE admmgt.script_sql SET body = $1 WHERE scriptid = 3`, [`CALL mgttest.log_step('3 as edited')`]);
    expect(await admin('SELECT frozen_at, rows_checksum FROM admmgt.scripts WHERE id = 3')).toEqual([{ frozen_at: null, rows_checksum: null }]);
    expect(await admin('SELECT count(*)::int AS n FROM admmgt.script_parts WHERE scriptid = 3')).toEqual([{ n: 0 }]);
    await admin(`UPDATE admmgt.script_sql SET body = 'SELECT 1' WHERE scriptid = 2`);
    await admin(`UPDATE admmgt.scripts SET status = 1 WHERE id = 2`);
    await admin('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2, 3: 2 });
    for (const db of [TPL, ...T]) expect(await steps(db)).toEqual(['as written', '3 as edited']);
  });

  it('with the trigger off, a change shows in script_drift(); a target behind still runs the frozen parts', async () => {
    const c = new pg.Client({ connectionString: env.adminUrl });
    await c.connect();
    try {
      await c.query(`SET session_replication_role = replica`);
      await c.query(`UPDATE admmgt.script_sql SET body = $1 WHERE scriptid = 1`, [`CALL mgttest.log_step('edited behind its back')`]);
      await c.query(`UPDATE admmgt.script_table_columns SET columnname = 'edited' WHERE scriptid = 1`);
    } finally {
      await c.end();
    }
    const drift = await admin<{ scriptid: number; frozen_checksum: string; rows_checksum: string }>('SELECT * FROM admmgt.script_drift()');
    expect(drift).toEqual([{ scriptid: 1, frozen_at: expect.any(Date), frozen_checksum: expect.stringMatching(/^[0-9a-f]{32}$/),
                             rows_checksum: expect.stringMatching(/^[0-9a-f]{32}$/) }]);
    expect(drift[0]!.frozen_checksum).not.toBe(drift[0]!.rows_checksum);
    // What the renderer would make of the rows now is not what targets get.
    expect((await admin<{ stmt: string }>('SELECT stmt FROM admmgt.render_steps(1) ORDER BY seq')).at(-1)!.stmt).toContain('edited behind its back');

    await admin(`UPDATE admmgt.vendor_db_settings SET updateflag = true WHERE dbname = 'sqlparts_f3'`);
    expect(await admin(`SELECT stmt FROM admmgt.plan_scripts() WHERE dbname = 'sqlparts_f3' AND stmt LIKE '%log_step%' ORDER BY scriptid`)).toEqual([
      { stmt: `DO $admmgt$BEGIN EXECUTE $step$CALL mgttest.log_step('as written')$step$; END$admmgt$` },
      { stmt: `DO $admmgt$BEGIN EXECUTE $step$CALL mgttest.log_step('3 as edited')$step$; END$admmgt$` }]);
    await admin('CALL admmgt.applyScripts()');
    await env.makeTenants(['sqlparts_f4']);
    for (const db of ['sqlparts_f3', 'sqlparts_f4']) {
      expect(await steps(db)).toEqual(['as written', '3 as edited']);
      expect(await env.queryIn(db, `SELECT attname FROM pg_attribute WHERE attrelid = 'mgttest.frozen'::regclass AND attnum > 0`))
        .toEqual([{ attname: 'id' }]);
      expect(await ledger(db)).toEqual([1, 2, 3]);
    }
    expect(await env.versions()).toMatchObject({ sqlparts_f3: 3, sqlparts_f4: 3 });
    expect(await tables('sqlparts_f3')).toEqual(['frozen:r', 'steps:r']);
  });
});

describe('a script that fails on the template after a committed part', () => {
  beforeAll(async () => {
    await fresh(['sqlparts_h1'], SETUP);
  });

  it('stays frozen: its rows are refused, and once the cause is fixed on the template a retry goes on without repeating a part', async () => {
    const ids = await sqlScript({ id: 1, description: 'two parts, the second fails on the template' }, [
      `CALL mgttest.log_step('p1')`,
      none('CREATE INDEX CONCURRENTLY later_a ON mgttest.later (a)'),
    ]);
    await admin('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 3 });
    expect(await steps(TPL)).toEqual(['p1']);
    const e = await adminError(`UPDATE admmgt.script_sql SET body = 'SELECT 1' WHERE id = ${ids[1]}`);
    expect([e.code, e.message]).toEqual(['55000',
      `admmgt: script 1 is frozen: the template committed a part of it before it failed: admmgt.script_sql id ${ids[1]} cannot be changed`]);
    expect(await admin('SELECT count(*)::int AS n FROM admmgt.script_parts WHERE scriptid = 1')).toEqual([{ n: 2 }]);
    // The cause was the template's (a table it should have had): fixed there, then retried.
    await env.queryIn(TPL, 'CREATE TABLE mgttest.later (a int)');
    await env.queryIn('sqlparts_h1', 'CREATE TABLE mgttest.later (a int)');
    await admin('CALL admmgt.retry_script(1)');
    await admin('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2 });
    expect(await steps(TPL)).toEqual(['p1']);
    expect(await steps('sqlparts_h1')).toEqual(['p1']);
  });
});
