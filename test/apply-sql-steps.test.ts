// Plain SQL steps (admmgt.script_sql) with txmode 'script': they run in the script's one
// transaction after its typed rows, in seq order; a failing statement undoes the whole script on
// that target and names its row; what cannot be a step is refused before any target is touched;
// transaction control the lexer cannot see is refused by PostgreSQL itself (the DO/EXECUTE
// wrapper), on the template, atomically. Every database of this file starts with sqlsteps_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { ScriptSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'sqlsteps_tpl';
const { admin, fresh, scriptStatus, runCount, tables, ledger } = applyHelpers(() => env, TPL);

/** What the template holds before its tenants are made: a log of steps and a procedure that writes it. */
const SETUP = `
CREATE TABLE mgttest.steps (id bigint GENERATED ALWAYS AS IDENTITY, label text NOT NULL);
CREATE PROCEDURE mgttest.log_step(p_label text) LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.steps (label) VALUES (p_label); END $$;
CREATE PROCEDURE mgttest.commits() LANGUAGE plpgsql AS $$
BEGIN INSERT INTO mgttest.steps (label) VALUES ('before commit'); COMMIT; END $$;`;

type Step = string | { body: string; txmode?: 'script' | 'none'; seq?: number };

/**
 * Write a script's typed rows and its SQL steps (seq 1, 2, ... unless given) and mark it ready,
 * in one transaction as a DBA does; returns the script_sql ids in the order given.
 */
async function sqlScript(spec: ScriptSpec, steps: Step[], ready = true): Promise<number[]> {
  await env.addScript(spec, false);
  const ids: number[] = [];
  for (const [i, s] of steps.entries()) {
    const step = typeof s === 'string' ? { body: s } : s;
    const [row] = await admin<{ id: number }>(
      `INSERT INTO admmgt.script_sql (scriptid, seq, body, txmode) VALUES ($1, $2, $3, $4) RETURNING id::int`,
      [spec.id, step.seq ?? i + 1, step.body, step.txmode ?? 'script']);
    ids.push(row!.id);
  }
  if (ready) await admin(`UPDATE admmgt.scripts SET status = 1 WHERE id = $1`, [spec.id]);
  return ids;
}

/** The labels a target's step log holds, in the order they were written. */
async function steps(db: string): Promise<string[]> {
  return (await env.queryIn<{ label: string }>(db, 'SELECT label FROM mgttest.steps ORDER BY id')).map((r) => r.label);
}

/** Routines of schema mgttest: name(args). */
async function routines(db: string): Promise<string[]> {
  return (await env.queryIn<{ r: string }>(db,
    `SELECT p.oid::regprocedure::text AS r FROM pg_proc p WHERE p.pronamespace = 'mgttest'::regnamespace ORDER BY 1`)).map((r) => r.r);
}

async function errorOf(p: Promise<unknown>): Promise<pg.DatabaseError> {
  return p.then(() => { throw new Error('expected an error'); }, (e: pg.DatabaseError) => e);
}

beforeAll(async () => {
  env = await createEnv('sqlsteps');
});
afterAll(async () => {
  await env?.close();
});

describe('SQL steps in the script\'s transaction (txmode script)', () => {
  const T = ['sqlsteps_a1', 'sqlsteps_a2'];
  let ids: number[];

  beforeAll(async () => {
    await fresh(T, SETUP);
    // Written seq 2 first, so that row ids and seq disagree: seq decides.
    ids = await sqlScript({
      id: 1, description: 'orders, with SQL that uses them',
      tables: [{ schema: S, name: 'orders', columns: [
        { name: 'id', type: 'int', primaryKey: true }, { name: 'total', type: 'numeric(10,2)', nullable: false },
        { name: 'code', type: 'text' }] }],
      calls: [`CALL ${S}.log_step('typed call')`],
    }, [
      { seq: 2, body: `CREATE TABLE mgttest.order_sums AS SELECT count(*) AS n, sum(total) AS total FROM mgttest.orders;
                       CALL mgttest.log_step('sql seq 2')` },
      { seq: 1, body: `-- several statements, a function body with semicolons and $1, a backfill
INSERT INTO mgttest.orders (id, total) VALUES (1, 10), (2, 32.5), (3, 0);
CREATE FUNCTION mgttest.order_total(int) RETURNS numeric LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN (SELECT o.total FROM mgttest.orders o WHERE o.id = $1);  -- a comment; with a semicolon
END;
$fn$;
UPDATE mgttest.orders SET code = 'o-' || id WHERE code IS NULL;
CALL mgttest.log_step('sql seq 1');` },
    ]);
    await admin('CALL admmgt.applyScripts()');
  });

  it('renders the typed rows first, then the procedure calls, then the SQL steps by seq, each statement wrapped', async () => {
    const rs = await admin<{ txmode: string; source: string; stmt: string }>(
      'SELECT txmode, source, stmt FROM admmgt.render_steps(1) ORDER BY seq');
    expect(rs.map((r) => r.source)).toEqual([
      'schema mgttest', expect.stringMatching(/^admmgt\.script_tables id \d+$/), expect.stringMatching(/^admmgt\.script_procs id \d+$/),
      `admmgt.script_sql id ${ids[1]}, statement 1`, `admmgt.script_sql id ${ids[1]}, statement 2`,
      `admmgt.script_sql id ${ids[1]}, statement 3`, `admmgt.script_sql id ${ids[1]}, statement 4`,
      `admmgt.script_sql id ${ids[0]}, statement 1`, `admmgt.script_sql id ${ids[0]}, statement 2`]);
    expect(new Set(rs.map((r) => r.txmode))).toEqual(new Set(['script']));
    expect(rs[3]!.stmt).toBe(`DO $admmgt$BEGIN EXECUTE $step$INSERT INTO mgttest.orders (id, total) VALUES (1, 10), (2, 32.5), (3, 0)$step$; END$admmgt$`);
    // The leading comment is not part of any statement; the function body keeps its own.
    expect(rs[4]!.stmt).toContain('-- a comment; with a semicolon');
    // One transactional part: the script is one batch, as before SQL steps existed.
    expect(await admin('SELECT part, txmode FROM admmgt.script_parts WHERE scriptid = 1')).toEqual([{ part: 1, txmode: 'script' }]);
  });

  it('runs them in every target, in that order, with the typed table they use', async () => {
    expect(await scriptStatus()).toEqual({ 1: 2 });
    await env.makeTenants(['sqlsteps_a3']);
    for (const db of [TPL, ...T, 'sqlsteps_a3']) {
      expect(await steps(db)).toEqual(['typed call', 'sql seq 1', 'sql seq 2']);
      expect(await env.queryIn(db, 'SELECT id, total::text, code FROM mgttest.orders ORDER BY id')).toEqual([
        { id: 1, total: '10.00', code: 'o-1' }, { id: 2, total: '32.50', code: 'o-2' }, { id: 3, total: '0.00', code: 'o-3' }]);
      expect(await env.queryIn(db, 'SELECT n::int, total::text, mgttest.order_total(2)::text AS two FROM mgttest.order_sums'))
        .toEqual([{ n: 3, total: '42.50', two: '32.50' }]);
      expect(await routines(db)).toEqual(['mgttest.commits()', 'mgttest.log_step(text)', 'mgttest.order_total(integer)']);
      expect(await ledger(db)).toEqual([1]);
      // A script of one part keeps no part ledger.
      expect(await env.queryIn(db, `SELECT to_regclass('admmgt.applied_parts') IS NULL AS none`)).toEqual([{ none: true }]);
    }
    expect(await env.versions()).toEqual({ [TPL]: 1, sqlsteps_a1: 1, sqlsteps_a2: 1, sqlsteps_a3: 1 });
  });

  it('undoes the whole script on the one tenant where a later statement fails, naming its row', async () => {
    // Only sqlsteps_a2 has this table, so only there does the third statement fail.
    await env.queryIn('sqlsteps_a2', 'CREATE TABLE mgttest.clash (x int)');
    const [id] = await sqlScript({
      id: 2, description: 'a table, a backfill, then a statement that fails in one tenant',
      tables: [{ schema: S, name: 'two', columns: [{ name: 'id', type: 'int', primaryKey: true }] }],
    }, [`INSERT INTO mgttest.two VALUES (1), (2);
        UPDATE mgttest.orders SET total = total + 1;
        CREATE TABLE mgttest.clash (x int);
        CALL mgttest.log_step('script 2')`]);
    const before = await tables('sqlsteps_a2');
    await admin('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 2, sqlsteps_a1: 2, sqlsteps_a2: 1, sqlsteps_a3: 2 });
    expect(await admin('SELECT dbname, scriptid, sqlstate, message, statement FROM admmgt.failures')).toEqual([{
      dbname: 'sqlsteps_a2', scriptid: 2, sqlstate: '42P07',
      message: `admmgt.script_sql id ${id}, statement 3: relation "clash" already exists`,
      statement: 'DO $admmgt$BEGIN EXECUTE $step$CREATE TABLE mgttest.clash (x int)$step$; END$admmgt$' }]);
    // Nothing of script 2 stayed there: no table, no backfill, no log line, no ledger row.
    expect(await tables('sqlsteps_a2')).toEqual(before);
    expect(await env.queryIn('sqlsteps_a2', 'SELECT sum(total)::text AS s FROM mgttest.orders')).toEqual([{ s: '42.50' }]);
    expect(await steps('sqlsteps_a2')).toEqual(['typed call', 'sql seq 1', 'sql seq 2']);
    expect(await ledger('sqlsteps_a2')).toEqual([1]);
    for (const db of [TPL, 'sqlsteps_a1', 'sqlsteps_a3']) {
      expect(await env.queryIn(db, 'SELECT (SELECT count(*)::int FROM mgttest.two) AS two, (SELECT sum(total)::text FROM mgttest.orders) AS s'))
        .toEqual([{ two: 2, s: '45.50' }]);
      expect(await steps(db)).toEqual(['typed call', 'sql seq 1', 'sql seq 2', 'script 2']);
    }
    // The script stays ready for the tenant that lacks it (it failed in a tenant, not the template).
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 1 });

    await env.queryIn('sqlsteps_a2', 'DROP TABLE mgttest.clash');
    await admin('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 2, sqlsteps_a1: 2, sqlsteps_a2: 2, sqlsteps_a3: 2 });
    expect(await steps('sqlsteps_a2')).toEqual(['typed call', 'sql seq 1', 'sql seq 2', 'script 2']);
    expect(await ledger('sqlsteps_a2')).toEqual([1, 2]);
  });
});

describe('refused before any target is touched, naming the row', () => {
  const T = ['sqlsteps_b1'];
  let before: { tpl: string[]; tenant: string[]; runs: number };

  beforeAll(async () => {
    await fresh(T, SETUP);
    await env.addScript({ id: 1, description: 'a table', tables: [{ schema: S, name: 'base', columns: [{ name: 'id', type: 'int' }] }] });
    await admin('CALL admmgt.applyScripts()');
    before = { tpl: await tables(TPL), tenant: await tables('sqlsteps_b1'), runs: await runCount() };
  });

  const cases: [string, Step[], string, string][] = [
    ['COMMIT', ['INSERT INTO mgttest.base VALUES (1); COMMIT; INSERT INTO mgttest.base VALUES (2)'], '42601', 'holds the transaction-control statement COMMIT'],
    ['BEGIN', ['BEGIN; INSERT INTO mgttest.base VALUES (1)'], '42601', 'holds the transaction-control statement BEGIN'],
    ['ROLLBACK', ['INSERT INTO mgttest.base VALUES (1);\nrollback'], '42601', 'holds the transaction-control statement ROLLBACK'],
    ['SAVEPOINT', ['SAVEPOINT before_insert; INSERT INTO mgttest.base VALUES (1)'], '42601', 'holds the transaction-control statement SAVEPOINT'],
    ['END', ['INSERT INTO mgttest.base VALUES (1); /* done */ END'], '42601', 'holds the transaction-control statement END'],
    ['START TRANSACTION', ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE'], '42601', 'holds the transaction-control statement START'],
    ['PREPARE TRANSACTION', ["PREPARE TRANSACTION 'x'"], '42601', 'holds the transaction-control statement PREPARE'],
    ['COMMIT in a none step', [{ body: 'COMMIT', txmode: 'none' }], '42601', 'holds the transaction-control statement COMMIT'],
    ['two statements in a none step', [{ body: 'CREATE INDEX CONCURRENTLY b1 ON mgttest.base (id); CREATE INDEX CONCURRENTLY b2 ON mgttest.base (id)', txmode: 'none' }],
      '42601', 'has txmode none but holds 2 statements'],
    ['an empty body', [''], '42601', 'holds no statement'],
    ['a body of comments', ['-- nothing here;\n/* nor ; here */'], '42601', 'holds no statement'],
    ['an unterminated quote', ["INSERT INTO mgttest.base VALUES (1); SELECT 'abc"], '42601', "has a quote ' that never ends"],
    ['an unterminated quoted name', ['SELECT 1 AS "abc'], '42601', 'has a quote " that never ends'],
    ['an unterminated dollar quote', ['SELECT $body$ abc; COMMIT'], '42601', 'has a dollar quote $body$ that never ends'],
    ['an unterminated comment', ['SELECT 1 /* /* nested */ still open'], '42601', 'has a comment /* that never ends'],
    ['a psql \\connect', ['\\connect sqlsteps_b1\nINSERT INTO mgttest.base VALUES (1)'], '42601', 'holds a backslash outside a string (a psql meta-command?)'],
    ['SET without LOCAL', ['SET search_path = mgttest; INSERT INTO base VALUES (1)'], '42601', 'holds SET, which would change the session beyond the script'],
    ['SET SESSION', [{ body: `SET SESSION maintenance_work_mem = '1GB'`, txmode: 'none' }], '42601', 'holds SET, which would change the session beyond the script'],
    ['SET ROLE', ['SET ROLE postgres'], '42601', 'holds SET, which would change the session beyond the script'],
    ['RESET', ['RESET search_path'], '42601', 'holds RESET, which would change the session beyond the script'],
    ['COPY FROM STDIN', ['COPY mgttest.base (id) FROM STDIN'], '42601', 'holds COPY from or to the client, which has no data to send'],
    ['COPY TO STDOUT', ['COPY (SELECT 1)\n  TO stdout WITH (FORMAT csv)'], '42601', 'holds COPY from or to the client, which has no data to send'],
  ];

  for (const [what, body, code, message] of cases) {
    it(`refuses ${what}`, async () => {
      const ids = await sqlScript({ id: 2, description: what }, [{ body: 'INSERT INTO mgttest.base VALUES (0)' }, ...body.map(
        (b) => (typeof b === 'string' ? { body: b, seq: 2 } : { ...b, seq: 2 }))]);
      try {
        const err = await errorOf(admin('CALL admmgt.applyScripts()'));
        expect(err.code).toBe(code);
        expect(err.message).toBe(`admmgt: admmgt.script_sql id ${ids[1]} ${message}`);
        expect(err.hint).toBeTruthy();
        // The plan refuses it the same way.
        expect((await errorOf(admin('SELECT * FROM admmgt.plan_scripts()'))).message).toBe(err.message);
        // No run started, nothing frozen, no target touched.
        expect(await runCount()).toBe(before.runs);
        expect(await admin('SELECT count(*)::int AS n FROM admmgt.script_parts WHERE scriptid = 2')).toEqual([{ n: 0 }]);
        expect(await tables(TPL)).toEqual(before.tpl);
        expect(await tables('sqlsteps_b1')).toEqual(before.tenant);
        expect(await env.queryIn(TPL, 'SELECT count(*)::int AS n FROM mgttest.base')).toEqual([{ n: 0 }]);
        expect(await env.versions()).toEqual({ [TPL]: 1, sqlsteps_b1: 1 });
      } finally {
        await admin('DELETE FROM admmgt.script_sql WHERE scriptid = 2');
        await admin('DELETE FROM admmgt.scripts WHERE id = 2');
      }
    });
  }

  it('takes SET LOCAL and SET CONSTRAINTS, which end with the script\'s transaction', async () => {
    await sqlScript({ id: 2, description: 'local settings' },
      [`SET LOCAL statement_timeout = '1min'; SET CONSTRAINTS ALL IMMEDIATE;
        INSERT INTO mgttest.base VALUES ((current_setting('statement_timeout')::interval = '1min')::int)`]);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    for (const db of [TPL, ...T]) expect(await env.queryIn(db, 'SELECT id FROM mgttest.base')).toEqual([{ id: 1 }]);
  });
});

describe('the lexer: what looks like a statement end and is not', () => {
  const T = ['sqlsteps_c1'];
  const BODY = `INSERT INTO mgttest.lex (v) VALUES ('a;b');
INSERT INTO mgttest.lex (v) VALUES (E'c\\';d'), (E'\\\\');
CREATE TABLE mgttest."semi;colon" (x int);
INSERT INTO mgttest.lex (v) VALUES ($t$e;f$t$), ($$g;'h$$);
/* outer /* inner; */ still a comment; */ INSERT INTO mgttest.lex (v) VALUES ('i'); -- trailing; comment
CREATE FUNCTION mgttest.add1(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 + 1; $$;
CREATE TABLE mgttest.a$b (x int);
INSERT INTO mgttest.a$b (x) SELECT mgttest.add1(41);
INSERT INTO mgttest.lex (v) VALUES (U&'j\\003B')`;

  beforeAll(async () => {
    await fresh(T, SETUP + `\nCREATE TABLE mgttest.lex (id bigint GENERATED ALWAYS AS IDENTITY, v text);`);
  });

  it('splits quotes, E-strings, quoted names, dollar quotes, nested comments, $1 and names with $ as PostgreSQL does', async () => {
    const [{ s }] = await admin<{ s: string[] }>(`SELECT admmgt._sql_statements($1, 'test') AS s`, [BODY]) as [{ s: string[] }];
    expect(s).toEqual([
      "INSERT INTO mgttest.lex (v) VALUES ('a;b')",
      "INSERT INTO mgttest.lex (v) VALUES (E'c\\';d'), (E'\\\\')",
      'CREATE TABLE mgttest."semi;colon" (x int)',
      "INSERT INTO mgttest.lex (v) VALUES ($t$e;f$t$), ($$g;'h$$)",
      "INSERT INTO mgttest.lex (v) VALUES ('i')",
      'CREATE FUNCTION mgttest.add1(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 + 1; $$',
      'CREATE TABLE mgttest.a$b (x int)',
      'INSERT INTO mgttest.a$b (x) SELECT mgttest.add1(41)',
      "INSERT INTO mgttest.lex (v) VALUES (U&'j\\003B')"]);
  });

  it('runs such a body in every target as those statements', async () => {
    await sqlScript({ id: 1, description: 'lexer cases' }, [BODY]);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    for (const db of [TPL, ...T]) {
      expect((await env.queryIn<{ v: string }>(db, 'SELECT v FROM mgttest.lex ORDER BY id')).map((r) => r.v))
        .toEqual(['a;b', "c';d", '\\', 'e;f', "g;'h", 'i', 'j;']);
      expect(await env.queryIn(db, `SELECT to_regclass('mgttest."semi;colon"') IS NOT NULL AS semi, (SELECT x FROM mgttest.a$b) AS x`))
        .toEqual([{ semi: true, x: 42 }]);
    }
  });
});

describe('the lexer: statements whose semicolons belong to them', () => {
  const T = ['sqlsteps_g1', 'sqlsteps_g2'];
  // A SQL-standard function body and a rule with several actions, as psql splits them.
  const BODY = `CREATE FUNCTION mgttest.twice(p int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT CASE WHEN p > 0 THEN p * 2 ELSE 0 END;
END;
CREATE OR REPLACE PROCEDURE mgttest.log_twice(p text) LANGUAGE sql BEGIN ATOMIC
    INSERT INTO mgttest.lex (v) VALUES (p); INSERT INTO mgttest.lex (v) VALUES (p);
END;
CREATE TABLE mgttest.ruled (x int);
CREATE RULE ruled_log AS ON INSERT TO mgttest.ruled DO ALSO (INSERT INTO mgttest.lex (v) VALUES ('r1'); INSERT INTO mgttest.lex (v) VALUES ('r2'));
INSERT INTO mgttest.ruled VALUES (mgttest.twice(21));
CALL mgttest.log_twice('p')`;

  beforeAll(async () => {
    await fresh(T, SETUP + `\nCREATE TABLE mgttest.lex (id bigint GENERATED ALWAYS AS IDENTITY, v text);`);
    // A tenant that reads '\\' in a plain string as an escape, unless admmgt's session says otherwise.
    await env.admin.query(`ALTER DATABASE sqlsteps_g2 SET standard_conforming_strings = off`);
  });

  it('keeps BEGIN ATOMIC ... END and a rule\'s (a; b) whole, and splits after them', async () => {
    const [{ s }] = await admin<{ s: string[] }>(`SELECT admmgt._sql_statements($1, 'test') AS s`, [BODY]) as [{ s: string[] }];
    expect(s).toHaveLength(6);
    expect(s[0]).toMatch(/^CREATE FUNCTION mgttest\.twice\(p int\).*END$/s);
    expect(s[1]).toMatch(/^CREATE OR REPLACE PROCEDURE .*VALUES \(p\);\nEND$/s);
    expect(s[3]).toMatch(/^CREATE RULE .*'r2'\)\)$/);
    // A name that is a keyword is no body: this COMMIT is a statement of its own.
    expect((await errorOf(admin(`SELECT admmgt._sql_statements($1, 'test')`,
      ['CREATE FUNCTION mgttest.begin() RETURNS int LANGUAGE sql RETURN 1; COMMIT']))).message)
      .toBe('admmgt: test holds the transaction-control statement COMMIT');
  });

  it('reads a name of letters beyond ASCII as PostgreSQL does: no E-string after it, a dollar quote tag of them', async () => {
    // PostgreSQL reads mgttest.ée'\' as a name and the string '\', so the COMMIT is a statement.
    expect((await errorOf(admin(`SELECT admmgt._sql_statements($1, 'test')`, [`SELECT mgttest.ée'\\'; COMMIT; SELECT 1 -- '`]))).message)
      .toBe('admmgt: test holds the transaction-control statement COMMIT');
    expect(await admin(`SELECT admmgt._sql_statements($1, 'test') AS s`, [`SELECT $é$a;b$é$; SELECT 2`]))
      .toEqual([{ s: ['SELECT $é$a;b$é$', 'SELECT 2'] }]);
  });

  it('runs them in every target, and strings with a backslash alike in a tenant whose database says standard_conforming_strings = off', async () => {
    await sqlScript({ id: 1, description: 'function bodies, a rule, a backslash' },
      [BODY, `INSERT INTO mgttest.lex (v) VALUES ('back\\slash'), ($é$k;l$é$)`]);
    await admin('CALL admmgt.applyScripts()');
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
    for (const db of [TPL, ...T]) {
      expect((await env.queryIn<{ v: string }>(db, 'SELECT v FROM mgttest.lex ORDER BY id')).map((r) => r.v))
        .toEqual(['r1', 'r2', 'p', 'p', 'back\\slash', 'k;l']);
      expect(await env.queryIn(db, 'SELECT mgttest.twice(5) AS t, (SELECT x FROM mgttest.ruled) AS x')).toEqual([{ t: 10, x: 42 }]);
    }
    expect(await env.versions()).toEqual({ [TPL]: 1, sqlsteps_g1: 1, sqlsteps_g2: 1 });
  });
});

describe('transaction control the lexer cannot see: PostgreSQL refuses it on the template', () => {
  const T = ['sqlsteps_d1', 'sqlsteps_d2'];
  let before: string[];

  beforeAll(async () => {
    await fresh(T, SETUP);
    await env.addScript({ id: 1, description: 'a table', tables: [{ schema: S, name: 'base', columns: [{ name: 'id', type: 'int' }] }] });
    await admin('CALL admmgt.applyScripts()');
    before = await tables(TPL);
  });

  it('wraps each statement so that not even a text the lexer took for one statement can end the script\'s transaction', async () => {
    // What a statement the lexer misread would come to: two statements and a COMMIT between them.
    const [{ w }] = await admin<{ w: string }>(`SELECT admmgt._in_transaction($1) AS w`,
      ['CREATE TABLE mgttest.leaked (x int); COMMIT; CREATE TABLE mgttest.leaked_too (x int)']) as [{ w: string }];
    // Sent as a target gets a batch: one query string in a transaction block.
    const err = await errorOf(env.queryIn(TPL, `BEGIN; CREATE TABLE mgttest.first (x int); ${w}; COMMIT`));
    expect(err).toMatchObject({ code: '0A000', message: 'EXECUTE of transaction commands is not implemented' });
    expect(await tables(TPL)).toEqual(before);
  });

  const cases: [string, string, string, RegExp][] = [
    ['a DO block that commits', 'DO $$ BEGIN COMMIT; END $$', '2D000', /invalid transaction termination/],
    ['a procedure that commits', 'CALL mgttest.commits()', '2D000', /invalid transaction termination/],
    // EXECUTE cannot run SELECT ... INTO a new table; CREATE TABLE AS can (the first describe).
    ['SELECT INTO a new table', 'SELECT 1 AS x INTO mgttest.selected', '0A000', /EXECUTE of SELECT \.\.\. INTO is not implemented/],
  ];
  let id = 2;
  for (const [what, body, code, message] of cases) {
    it(`fails the script on the template with ${what}, naming the row; no tenant gets it, the template keeps nothing of it`, async () => {
      const scriptid = id++;
      const [, rowid] = await sqlScript({
        id: scriptid, description: what,
        tables: [{ schema: S, name: `t${scriptid}`, columns: [{ name: 'id', type: 'int' }] }],
      }, ['INSERT INTO mgttest.base VALUES (1); CALL mgttest.log_step(\'before\')', body]);
      await admin('CALL admmgt.applyScripts()');
      expect((await scriptStatus())[scriptid]).toBe(3);
      const [s] = await admin<{ last_error: string; frozen_at: Date | null }>('SELECT last_error, frozen_at FROM admmgt.scripts WHERE id = $1', [scriptid]);
      expect(s!.last_error).toMatch(new RegExp(`^admmgt\\.script_sql id ${rowid}: `));
      expect(s!.last_error).toMatch(message);
      expect(s!.last_error).toContain(`(SQLSTATE ${code})`);
      // Unfrozen: its rows may be mended.
      expect(s!.frozen_at).toBeNull();
      expect(await admin('SELECT count(*)::int AS n FROM admmgt.script_parts WHERE scriptid = $1', [scriptid])).toEqual([{ n: 0 }]);
      // The template: no table of the script, no row, no log line, no ledger row, no part ledger.
      expect(await tables(TPL)).toEqual(before);
      expect(await env.queryIn(TPL, 'SELECT count(*)::int AS n FROM mgttest.base')).toEqual([{ n: 0 }]);
      expect(await steps(TPL)).toEqual([]);
      expect(await ledger(TPL)).toEqual([1]);
      for (const db of T) {
        expect(await tables(db)).toEqual(before);
        expect(await ledger(db)).toEqual([1]);
      }
      expect(await env.versions()).toEqual({ [TPL]: 1, sqlsteps_d1: 1, sqlsteps_d2: 1 });
      expect(await admin(`SELECT DISTINCT dbname FROM admmgt.script_log WHERE scriptid = $1`, [scriptid])).toEqual([{ dbname: TPL }]);
      // Out of the way of the next case.
      await admin('DELETE FROM admmgt.script_sql WHERE scriptid = $1', [scriptid]);
      await admin('DELETE FROM admmgt.script_table_columns WHERE scriptid = $1', [scriptid]);
      await admin('DELETE FROM admmgt.script_tables WHERE scriptid = $1', [scriptid]);
      await admin('DELETE FROM admmgt.scripts WHERE id = $1', [scriptid]);
    });
  }
});
