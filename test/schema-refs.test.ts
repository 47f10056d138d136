// Schema references in SQL text (plpgsql/procedures/018_schema_refs.sql): _schema_template marks
// every code reference to the template schema with chr(1), so that replace(text, chr(1), tenant)
// re-targets it; _schema_kept names the strings that still mention it; _code_schemas lists the
// schemas code refers to. Strings and comments are not code, dollar-quoted bodies are. The
// functions are pure, so the schemas of this file live in its admin database. Every database of
// this file starts with schemarefs_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;

/** The one row of a query. */
async function one<T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T> {
  const rows = await env.rows<T>(text, values);
  if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}: ${text}`);
  return rows[0]!;
}

beforeAll(async () => {
  env = await createEnv('schemarefs');
});
afterAll(async () => {
  await env?.close();
});

/** The text re-targeted with @ for each reference found. */
async function marked(sql: string, schema = 'unitemplate'): Promise<string> {
  const r = await one<{ t: string }>(`SELECT replace(admmgt._schema_template($1, $2), chr(1), '@') AS t`, [sql, schema]);
  return r.t;
}
async function kept(sql: string, schema = 'unitemplate'): Promise<string[]> {
  const r = await one<{ k: string[] }>(`SELECT admmgt._schema_kept($1, $2) AS k`, [sql, schema]);
  return r.k;
}
async function codeSchemas(sql: string): Promise<string[]> {
  const r = await one<{ s: string[] }>(`SELECT admmgt._code_schemas($1) AS s`, [sql]);
  return r.s;
}
async function tokens(sql: string): Promise<string[]> {
  const r = await one<{ t: string[] }>(`SELECT admmgt._sql_tokens($1) AS t`, [sql]);
  return r.t;
}

describe('code references', () => {
  it('rewrites the schema of qualified names: unquoted in any case, quoted exactly, with spaces and comments', async () => {
    expect(await marked('SELECT * FROM unitemplate.t JOIN UniTemplate . "T" USING (id), "unitemplate".f(1)'))
      .toBe('SELECT * FROM @.t JOIN @ . "T" USING (id), @.f(1)');
    expect(await marked('DECLARE r unitemplate.t%ROWTYPE; BEGIN PERFORM unitemplate /* c */ .f(); END'))
      .toBe('DECLARE r @.t%ROWTYPE; BEGIN PERFORM @ /* c */ .f(); END');
  });

  it('leaves "UniTemplate" (another name), names after a dot, and names that are not qualifiers', async () => {
    const sql = 'SELECT "UniTemplate".t, x.unitemplate, t.unitemplate.x, unitemplate, unitemplate_x.t, xunitemplate.t FROM unitemplate';
    expect(await marked(sql)).toBe(sql);
  });

  it('rewrites the names after SCHEMA, with IF [NOT] EXISTS and in lists', async () => {
    expect(await marked('CREATE SCHEMA IF NOT EXISTS unitemplate; GRANT USAGE ON SCHEMA unitemplate TO r;'))
      .toBe('CREATE SCHEMA IF NOT EXISTS @; GRANT USAGE ON SCHEMA @ TO r;');
    expect(await marked('GRANT SELECT ON ALL TABLES IN SCHEMA a, "B", unitemplate TO unitemplate; DROP SCHEMA IF EXISTS UNITEMPLATE CASCADE'))
      .toBe('GRANT SELECT ON ALL TABLES IN SCHEMA a, "B", @ TO unitemplate; DROP SCHEMA IF EXISTS @ CASCADE');
    // A role, not a schema.
    expect(await marked('CREATE SCHEMA AUTHORIZATION unitemplate')).toBe('CREATE SCHEMA AUTHORIZATION unitemplate');
  });

  it('leaves strings and E-strings alone and reports them; comments (nested) neither', async () => {
    const sql = String.raw`SELECT 'unitemplate.t', E'it\'s unitemplate.t', unitemplate.t /* a /* nested */ unitemplate.c */ -- unitemplate.d
FROM x WHERE to_regclass('unitemplate.t') IS NOT NULL AND s = 'a''unitemplate.b'`;
    expect(await marked(sql)).toBe(String.raw`SELECT 'unitemplate.t', E'it\'s unitemplate.t', @.t /* a /* nested */ unitemplate.c */ -- unitemplate.d
FROM x WHERE to_regclass('unitemplate.t') IS NOT NULL AND s = 'a''unitemplate.b'`);
    expect(await kept(sql)).toEqual(["'unitemplate.t'", String.raw`E'it\'s unitemplate.t'`, "'unitemplate.t'", "'a''unitemplate.b'"]);
    expect(await kept('SELECT 1 /* unitemplate.x */ -- unitemplate.y')).toEqual([]);
    expect(await kept("SELECT 'unitemplates', 'xunitemplate'")).toEqual([]);
  });

  it('cuts a long string to an excerpt around the mention', async () => {
    const long = `'${'x'.repeat(100)} unitemplate.t ${'y'.repeat(100)}'`;
    const k = (await kept(`EXECUTE ${long}`))[0] ?? '';
    expect(k.length).toBeLessThanOrEqual(62);
    expect(k).toContain('unitemplate.t');
  });

  it('reads dollar-quoted strings as code, nested ones too, and $1 as a parameter', async () => {
    expect(await marked("$fn$ BEGIN PERFORM unitemplate.a($1); x := $q$unitemplate.t$q$; EXECUTE 'SELECT unitemplate.x'; END $fn$; SELECT unitemplate.b"))
      .toBe("$fn$ BEGIN PERFORM @.a($1); x := $q$@.t$q$; EXECUTE 'SELECT unitemplate.x'; END $fn$; SELECT @.b");
    // A quote inside an inner dollar quote does not open a string of the outer body.
    expect(await marked("DO $$ BEGIN RAISE NOTICE $x$ it's $x$; PERFORM unitemplate.f(); END $$; SELECT unitemplate.g()"))
      .toBe("DO $$ BEGIN RAISE NOTICE $x$ it's $x$; PERFORM @.f(); END $$; SELECT @.g()");
    // A -- comment swallows what looks like a dollar quote.
    expect(await marked('SELECT 1 -- $$ x\n, unitemplate.t')).toBe('SELECT 1 -- $$ x\n, @.t');
    // Inside a dollar quote a -- does not hide its end (the rest of the text is read again).
    expect(await marked('SELECT $$ SELECT 1 -- c$$, unitemplate.t, $$unitemplate.u -- $$ || unitemplate.v'))
      .toBe('SELECT $$ SELECT 1 -- c$$, @.t, $$@.u -- $$ || @.v');
    expect(await kept("DO $$ BEGIN EXECUTE 'SELECT 1 FROM unitemplate.x'; END $$")).toEqual(["'SELECT 1 FROM unitemplate.x'"]);
  });

  it('cuts text into tokens that make up the text exactly', async () => {
    const sql = String.raw`SELECT a$b$c, $1, e'x\'y', ee'z', "q""x".y /* a /* b */ c */ $t$ $u$ $t$ 'it''s' -- end`;
    const t = await tokens(sql);
    expect(t.join('')).toBe(sql);
    expect(t).toContain('/* a /* b */ c */');
    expect(t).toContain('$t$ $u$ $t$');
    expect(t).toContain(String.raw`e'x\'y'`);
    // ee'z' is the name ee and the string 'z'.
    expect(t).toContain("'z'");
    // A plain body is not one token: its tags are, and its tokens follow, lexed once.
    expect(await tokens("AS $f$ SELECT 'a' $f$;")).toEqual(['AS ', '$f$', ' SELECT ', "'a'", ' ', '$f$', ';']);
  });

  it('lists the schemas code refers to, folded, in order of first appearance', async () => {
    expect(await codeSchemas(`CREATE SCHEMA IF NOT EXISTS unitemplate; GRANT USAGE ON SCHEMA a, "B" TO r;
      SELECT x.y.z, "Mixed".t, Other.f() FROM t WHERE s = 'str.t' /* com.t */; DO $$ BEGIN PERFORM inner1.f(); END $$; SELECT a.t`))
      .toEqual(['unitemplate', 'a', 'B', 'x', 'Mixed', 'other', 'inner1']);
    expect(await codeSchemas('CREATE SCHEMA AUTHORIZATION joe')).toEqual([]);
    expect(await codeSchemas('SELECT 1')).toEqual([]);
  });

  it('refuses a text that already holds chr(1)', async () => {
    const err = await env.errorOf(`SELECT admmgt._schema_template('SELECT ' || chr(1) || '.t', 'unitemplate')`);
    expect(err.code).toBe('XX000');
    expect(err.hint).toMatch(/chr\(1\)/);
  });

  it('returns a text that does not mention the schema unchanged', async () => {
    const sql = "SELECT other.t FROM x WHERE s = 'it''s'";
    expect(await marked(sql)).toBe(sql);
    expect(await kept(sql)).toEqual([]);
  });
});

describe('re-targeted catalog definitions', () => {
  beforeAll(async () => {
    await env.admin.query(`
      CREATE SCHEMA unitemplate;
      CREATE TABLE unitemplate.parenttable (id int, note text);
      CREATE TABLE unitemplate.x (id int);
      CREATE PROCEDURE unitemplate.addrow(p_id int) LANGUAGE plpgsql AS $body$
      DECLARE
          v int;
      BEGIN
          -- unitemplate.parenttable in a comment stays as it is
          INSERT INTO unitemplate.parenttable (id, note) VALUES (p_id, 'written by unitemplate.addrow');
          EXECUTE 'SELECT 1 FROM unitemplate.x' INTO v;
      END
      $body$;
      CREATE FUNCTION unitemplate.countrows() RETURNS bigint LANGUAGE sql
      BEGIN ATOMIC
          SELECT count(*) FROM unitemplate.parenttable;
      END;
      CREATE VIEW unitemplate.v AS SELECT p.id, p.note FROM unitemplate.parenttable p JOIN unitemplate.x USING (id);
      CREATE SCHEMA bigclient;
      CREATE TABLE bigclient.parenttable (id int, note text);
      CREATE TABLE bigclient.x (id int);`);
  });

  async function copyTo(def: string, tenant: string): Promise<string> {
    const r = await one<{ t: string }>(
      `SELECT replace(admmgt._schema_template($1, 'unitemplate'), chr(1), quote_ident($2)) AS t`, [def, tenant]);
    return r.t;
  }

  it('copies a plpgsql procedure: the copy lives in bigclient and writes there', async () => {
    const { def } = await one<{ def: string }>(`SELECT pg_get_functiondef('unitemplate.addrow(int)'::regprocedure) AS def`);
    const copy = await copyTo(def, 'bigclient');
    expect(copy).toContain('CREATE OR REPLACE PROCEDURE bigclient.addrow');
    expect(copy).toContain('INSERT INTO bigclient.parenttable');
    expect(copy).toContain("'written by unitemplate.addrow'");
    expect(copy).toContain('-- unitemplate.parenttable in a comment');
    expect(await kept(def)).toEqual(["'written by unitemplate.addrow'", "'SELECT 1 FROM unitemplate.x'"]);
    await env.admin.query(copy);
    const procs = await env.rows<{ nspname: string }>(
      `SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = 'addrow' ORDER BY 1`);
    expect(procs.map((p) => p.nspname)).toEqual(['bigclient', 'unitemplate']);
    await env.admin.query('CALL bigclient.addrow(7)');
    expect(await env.rows('SELECT id, note FROM bigclient.parenttable')).toEqual([{ id: 7, note: 'written by unitemplate.addrow' }]);
    expect(await env.rows('SELECT id FROM unitemplate.parenttable')).toEqual([]);
  });

  it('copies a SQL-standard BEGIN ATOMIC function: the copy reads bigclient', async () => {
    const { def } = await one<{ def: string }>(`SELECT pg_get_functiondef('unitemplate.countrows()'::regprocedure) AS def`);
    const copy = await copyTo(def, 'bigclient');
    await env.admin.query(copy);
    await env.admin.query(`INSERT INTO bigclient.parenttable VALUES (8, 'b'), (9, 'c')`);
    const r = await one<{ b: string; u: string }>('SELECT bigclient.countrows() AS b, unitemplate.countrows() AS u');
    expect(r).toEqual({ b: '3', u: '0' });
    // Its dependencies are bigclient's table, not the template's.
    const deps = await env.rows<{ rel: string }>(`
      SELECT DISTINCT d.refobjid::regclass::text AS rel FROM pg_depend d
       WHERE d.classid = 'pg_proc'::regclass AND d.objid = 'bigclient.countrows()'::regprocedure
         AND d.refclassid = 'pg_class'::regclass`);
    expect(deps.map((d) => d.rel)).toEqual(['bigclient.parenttable']);
  });

  it('copies a view from pg_get_viewdef read with qualified names', async () => {
    await env.admin.query('BEGIN');
    let def: string;
    try {
      await env.admin.query('SET LOCAL search_path = pg_catalog');
      ({ def } = await one<{ def: string }>(`SELECT pg_get_viewdef('unitemplate.v'::regclass) AS def`));
    } finally {
      await env.admin.query('COMMIT');
    }
    expect(def).toContain('unitemplate.parenttable');
    await env.admin.query(`CREATE VIEW bigclient.v AS ${await copyTo(def, 'bigclient')}`);
    const deps = await env.rows<{ rel: string }>(`
      SELECT DISTINCT d.refobjid::regclass::text AS rel FROM pg_rewrite r JOIN pg_depend d ON d.objid = r.oid
       WHERE r.ev_class = 'bigclient.v'::regclass AND d.refobjid <> 'bigclient.v'::regclass ORDER BY 1`);
    expect(deps.map((d) => d.rel)).toEqual(['bigclient.parenttable', 'bigclient.x']);
  });
});

describe('speed', () => {
  it('reads a text of about 100 KB with many references in one pass each', async () => {
    const line = (i: number) => `
-- line ${i} unitemplate.c
INSERT INTO unitemplate.parenttable (id, note) VALUES (${i}, 'unitemplate.t ${i}'); /* c ${i} /* nested */ */
SELECT x.y, "Q"."R", f(a, b) FROM public.t${i} x WHERE x.s = E'a\\'b' AND y = $1;`;
    const body = Array.from({ length: 600 }, (_, i) => line(i)).join('');
    const sql = `CREATE FUNCTION unitemplate.big() RETURNS void LANGUAGE plpgsql AS $function$ BEGIN ${body} END $function$;`;
    expect(sql.length).toBeGreaterThan(100_000);
    const started = Date.now();
    const r = await one<{ t: string; k: number; s: string[] }>(`
      SELECT admmgt._schema_template($1, 'unitemplate') AS t, cardinality(admmgt._schema_kept($1, 'unitemplate')) AS k,
             admmgt._code_schemas($1) AS s`, [sql]);
    const ms = Date.now() - started;
    console.log(`schema-refs: three functions on ${sql.length} characters took ${ms} ms`);
    expect(r.t.split('\u0001').length - 1).toBe(601);
    expect(r.k).toBe(600);
    expect(r.s).toEqual(['unitemplate', 'x', 'Q', 'public']);
  });
});
