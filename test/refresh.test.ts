// refesh_stored_procedures: every plain function and procedure of the template's app schemas is
// created or replaced, with the template's exact definition, in every created tenant with
// updateflag, trigger functions included; extension members stay behind; a tenant where a CREATE OR
// REPLACE fails is reported and keeps its old state, while the others are refreshed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';

const TEMPLATE = 'refresh_tpl';
const T1 = 'refresh_t1';
const T2 = 'refresh_t2';
const T3 = 'refresh_t3'; // updateflag = false
const UPDATED = [T1, T2];

/** What a tenant with updateflag must end up with: every routine created below, the trigger function too. */
const COPIED = [
  'app.f_over(integer)',
  'app.f_over(integer,integer)',
  'app.f_over(text)',
  'app.f_plain(integer)',
  'app.f_sqlbody(integer)',
  'app.p_double(integer,integer)',
  'app.trg_stamp()',
  'app2.f_other(text)',
];

let env: TestEnv;
let extension: string | undefined;

/** Signature and full definition of every function and procedure in the app schemas of a database. */
async function routines(db: string): Promise<Record<string, string>> {
  const rows = await env.queryIn<{ sig: string; def: string }>(db, `
    SELECT p.oid::regprocedure::text AS sig, pg_get_functiondef(p.oid) AS def
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname IN ('app', 'app2') AND p.prokind IN ('f', 'p')
     ORDER BY 1`);
  return Object.fromEntries(rows.map((r) => [r.sig, r.def]));
}

/** The template's routines restricted to the ones a tenant must have. */
async function templateCopied(): Promise<Record<string, string>> {
  const all = await routines(TEMPLATE);
  return Object.fromEntries(COPIED.map((sig) => [sig, all[sig]!]));
}

async function refresh(): Promise<string> {
  await env.admin.query('CALL admmgt.refesh_stored_procedures()');
  const { rows } = await env.admin.query(`SELECT max(run_id)::text AS r FROM admmgt.runs WHERE operation = 'refresh'`);
  return rows[0].r;
}

const waitIdle = (db: string) => env.waitIdle(db);

beforeAll(async () => {
  env = await createEnv('refresh');
  await env.makeTemplate(TEMPLATE, ['app']);
  await env.admin.query(
    `INSERT INTO admmgt.vendor_db_settings (dbname, status, updateflag) VALUES ($1, 1, true), ($2, 1, true), ($3, 1, false)`,
    [T1, T2, T3]);
  await waitIdle(TEMPLATE);
  await env.admin.query('CALL admmgt.create_database()');
  const { rows } = await env.admin.query(`SELECT lower(dbname) AS db, status FROM admmgt.vendor_db_settings WHERE NOT istemplate ORDER BY id`);
  expect(rows).toEqual([T1, T2, T3].map((db) => ({ db, status: 2 })));

  // The tenants exist before any routine does: everything they get below comes from the refresh.
  // app2 does not even exist in them yet.
  await env.queryIn(TEMPLATE, `
    CREATE SCHEMA app2;
    CREATE FUNCTION app.f_plain(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + 1';
    CREATE FUNCTION app.f_over(x int) RETURNS text LANGUAGE sql AS $$SELECT 'int ' || x$$;
    CREATE FUNCTION app.f_over(x text) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN 'text ' || x; END$$;
    CREATE FUNCTION app.f_over(x int, y int) RETURNS text LANGUAGE sql AS $$SELECT 'two ' || (x + y)$$;
    CREATE FUNCTION app.f_sqlbody(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT x * 3; END;
    CREATE PROCEDURE app.p_double(IN x int, INOUT y int) LANGUAGE plpgsql AS $$BEGIN y := 2 * x; END$$;
    CREATE FUNCTION app.trg_stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.at := now(); RETURN NEW; END$$;
    CREATE TABLE app.stamped (id int, at timestamptz);
    CREATE TRIGGER stamped_at BEFORE INSERT ON app.stamped FOR EACH ROW EXECUTE FUNCTION app.trg_stamp();
    CREATE FUNCTION app2.f_other(who text DEFAULT 'world') RETURNS text LANGUAGE plpgsql STABLE
      SET search_path = pg_catalog AS $$BEGIN RETURN 'hello ' || who; END$$;
  `);
  // An extension's functions in an app schema belong to the extension, not to the application.
  const ext = await env.queryIn<{ name: string }>(TEMPLATE,
    `SELECT name FROM pg_available_extensions WHERE name IN ('fuzzystrmatch', 'pg_trgm', 'citext') ORDER BY name DESC LIMIT 1`);
  extension = ext[0]?.name;
  if (extension) await env.queryIn(TEMPLATE, `CREATE EXTENSION "${extension}" SCHEMA app`);
});

afterAll(async () => {
  await env?.close();
});

describe('refesh_stored_procedures', () => {
  it('copies every plain function, overload and procedure of both app schemas with the template definition', async () => {
    for (const db of UPDATED) expect(Object.keys(await routines(db))).toEqual([]);
    const run = await refresh();
    const expected = await templateCopied();
    expect(Object.keys(expected)).toEqual(COPIED);
    for (const db of UPDATED) {
      expect(await routines(db)).toEqual(expected);
      // The copies run, and the overloads are told apart.
      expect(await env.queryIn(db, `SELECT app.f_plain(1) AS a, app.f_over(1) AS b, app.f_over('x'::text) AS c,
                                            app.f_over(1, 2) AS d, app2.f_other() AS e, app.f_sqlbody(5) AS f`))
        .toEqual([{ a: 2, b: 'int 1', c: 'text x', d: 'two 3', e: 'hello world', f: 15 }]);
      expect(await env.queryIn(db, 'CALL app.p_double(21, NULL)')).toEqual([{ y: 42 }]);
    }
    const { rows } = await env.admin.query(
      `SELECT dbname, operation, outcome, commstat FROM admmgt.script_log WHERE run_id = $1 ORDER BY dbname`, [run]);
    expect(rows).toEqual(UPDATED.map((dbname) => ({
      dbname, operation: 'refresh', outcome: 'ok', commstat: `refreshed ${COPIED.length} routines`,
    })));
    const { rows: runs } = await env.admin.query(`SELECT targets, failed FROM admmgt.runs WHERE run_id = $1`, [run]);
    expect(runs).toEqual([{ targets: 2, failed: 0 }]);
  });

  it('copies a trigger function too, which a trigger of the tenant then runs', async () => {
    const probe = `SELECT to_regprocedure('app.trg_stamp()')::text AS f`;
    expect(await env.queryIn(TEMPLATE, probe)).toEqual([{ f: 'app.trg_stamp()' }]);
    for (const db of UPDATED) {
      expect(await env.queryIn(db, probe)).toEqual([{ f: 'app.trg_stamp()' }]);
      // The tenants have no table app.stamped (made after them): the function needs none to be created.
      await env.queryIn(db, `CREATE TABLE app.stamped (id int, at timestamptz);
        CREATE TRIGGER stamped_at BEFORE INSERT ON app.stamped FOR EACH ROW EXECUTE FUNCTION app.trg_stamp()`);
      expect(await env.queryIn(db, `INSERT INTO app.stamped (id) VALUES (1) RETURNING at IS NOT NULL AS stamped`)).toEqual([{ stamped: true }]);
    }
    expect(await env.queryIn(T3, probe)).toEqual([{ f: null }]);
  });

  it('does not copy the functions of an extension installed in an app schema', async () => {
    // Both servers CI uses ship contrib; a server without any of the three fails here on purpose.
    expect(extension).toBeDefined();
    const members = `
      SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'app' AND EXISTS (SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`;
    expect((await env.queryIn(TEMPLATE, members))[0]!.n).toBeGreaterThan(0);
    for (const db of UPDATED) {
      // Only the routines listed in COPIED are there, and no extension is installed in the tenant.
      expect(Object.keys(await routines(db))).toEqual(COPIED);
      expect(await env.queryIn(db, `SELECT extname FROM pg_extension WHERE extname = $1`, [extension])).toEqual([]);
    }
  });

  it('leaves a tenant with updateflag = false untouched', async () => {
    expect(await routines(T3)).toEqual({});
    expect(await env.queryIn(T3, `SELECT to_regnamespace('app2')::text AS s`)).toEqual([{ s: null }]);
    const { rows } = await env.admin.query(`SELECT * FROM admmgt.target_results WHERE dbname = $1 AND operation = 'refresh'`, [T3]);
    expect(rows).toEqual([]);
  });

  it('replaces a body changed in the template', async () => {
    await env.queryIn(TEMPLATE, `CREATE OR REPLACE FUNCTION app.f_plain(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + 100'`);
    const oldDefs = await routines(T1);
    await refresh();
    const expected = await templateCopied();
    expect(expected['app.f_plain(integer)']).not.toBe(oldDefs['app.f_plain(integer)']);
    for (const db of UPDATED) {
      expect(await routines(db)).toEqual(expected);
      expect(await env.queryIn(db, 'SELECT app.f_plain(1) AS a')).toEqual([{ a: 101 }]);
    }
    expect(await routines(T3)).toEqual({});
  });

  it('reports a tenant where CREATE OR REPLACE fails and refreshes the others', async () => {
    // T2 has its own app2.f_other(text) with another return type: CREATE OR REPLACE cannot change
    // that. It is the last routine of the batch, after a BEGIN ATOMIC body full of semicolons, so
    // the failed statement is also told right.
    await env.queryIn(T2, `DROP FUNCTION app2.f_other(text);
                           CREATE FUNCTION app2.f_other(who text) RETURNS int LANGUAGE sql AS 'SELECT length(who)'`);
    await env.queryIn(TEMPLATE, `CREATE OR REPLACE FUNCTION app.f_over(x text) RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN 'v3 ' || x; END$$`);
    const t2Before = await routines(T2);

    const run = await refresh();
    const { rows: failures } = await env.admin.query(`SELECT operation, dbname, sqlstate, statement, message FROM admmgt.failures`);
    expect(failures).toEqual([{
      operation: 'refresh', dbname: T2, sqlstate: '42P13',
      statement: expect.stringMatching(/^CREATE OR REPLACE FUNCTION app2\.f_other\(who text DEFAULT 'world'::text\)/),
      message: expect.stringContaining('return type'),
    }]);
    const { rows: runs } = await env.admin.query(`SELECT targets, failed FROM admmgt.runs WHERE run_id = $1`, [run]);
    expect(runs).toEqual([{ targets: 2, failed: 1 }]);
    // T1 is refreshed...
    const expected = await templateCopied();
    expect(await routines(T1)).toEqual(expected);
    expect(await env.queryIn(T1, `SELECT app.f_over('x'::text) AS c`)).toEqual([{ c: 'v3 x' }]);
    // ...and T2's refresh is one transaction: nothing of it stayed, not even the routines before f_other.
    expect(await routines(T2)).toEqual(t2Before);
    expect(await env.queryIn(T2, `SELECT app.f_over('x'::text) AS c, app2.f_other('abc') AS o`)).toEqual([{ c: 'text x', o: 3 }]);

    // With the clash gone, the next refresh catches T2 up and clears the failure.
    await env.queryIn(T2, 'DROP FUNCTION app2.f_other(text)');
    await refresh();
    for (const db of UPDATED) expect(await routines(db)).toEqual(expected);
    expect((await env.admin.query('SELECT * FROM admmgt.failures')).rows).toEqual([]);
  });

  it("copies a routine's owner and EXECUTE grants, so a SECURITY DEFINER routine keeps its definer", async () => {
    await env.admin.query(`DROP ROLE IF EXISTS refresh_owner; DROP ROLE IF EXISTS refresh_user;
                           CREATE ROLE refresh_owner NOLOGIN; CREATE ROLE refresh_user NOLOGIN`);
    try {
      await env.queryIn(TEMPLATE, `GRANT CREATE, USAGE ON SCHEMA app TO refresh_owner;
        CREATE FUNCTION app.f_definer() RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS 'SELECT current_user::text';
        ALTER FUNCTION app.f_definer() OWNER TO refresh_owner;
        REVOKE ALL ON FUNCTION app.f_definer() FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION app.f_definer() TO refresh_user`);
      await refresh();
      const acl = `SELECT pg_get_userbyid(proowner) AS owner, prosecdef,
                          has_function_privilege('refresh_user', oid, 'EXECUTE') AS user_may,
                          has_function_privilege('public', oid, 'EXECUTE') AS public_may
                     FROM pg_proc WHERE oid = 'app.f_definer()'::regprocedure`;
      const expected = [{ owner: 'refresh_owner', prosecdef: true, user_may: true, public_may: false }];
      expect(await env.queryIn(TEMPLATE, acl)).toEqual(expected);
      for (const db of UPDATED) expect(await env.queryIn(db, acl), db).toEqual(expected);
    } finally {
      for (const db of [TEMPLATE, ...UPDATED]) {
        await env.queryIn(db, 'DROP FUNCTION IF EXISTS app.f_definer(); REVOKE ALL ON SCHEMA app FROM refresh_owner');
      }
      await env.admin.query('DROP ROLE IF EXISTS refresh_owner; DROP ROLE IF EXISTS refresh_user');
    }
  });

  it.each([
    ['owned by a superuser', `CREATE FUNCTION app.run_sql(q text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
                               AS $$ BEGIN EXECUTE q; END $$`, 'app.run_sql(text)', 'owned by superuser postgres'],
    ['without SET search_path', `CREATE FUNCTION app.run_sql(q text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN EXECUTE q; END $$;
                                 ALTER FUNCTION app.run_sql(text) OWNER TO refresh_owner`, 'app.run_sql(text)', 'no SET search_path'],
    // Trigger functions are copied too, so they are checked the same way.
    ['that is a trigger function owned by a superuser', `CREATE FUNCTION app.run_trg() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
                               SET search_path = pg_catalog AS $$ BEGIN RETURN NEW; END $$`, 'app.run_trg()', 'owned by superuser postgres'],
  ])('refuses a SECURITY DEFINER routine %s, naming it, and copies nothing until a DBA lists it', async (_what, ddl, sig, why) => {
    await env.admin.query(`DROP ROLE IF EXISTS refresh_owner; CREATE ROLE refresh_owner NOLOGIN`);
    await env.queryIn(TEMPLATE, `GRANT CREATE, USAGE ON SCHEMA app TO refresh_owner; ${ddl}`);
    try {
      const e = await env.errorOf('CALL admmgt.refesh_stored_procedures()');
      const [{ su }] = await env.rows<{ su: string }>('SELECT current_user AS su') as [{ su: string }];
      expect([e.code, e.message]).toEqual(['42501', `admmgt: refresh would copy SECURITY DEFINER routines of template ${TEMPLATE} into every tenant: ${sig} (${why.replace('superuser postgres', `superuser ${su}`)})`]);
      expect(e.hint).toContain('INSERT INTO admmgt.definer_allowed');
      for (const db of UPDATED) expect(await env.queryIn(db, `SELECT to_regprocedure($1) AS f`, [sig]), db).toEqual([{ f: null }]);
      await env.admin.query(`INSERT INTO admmgt.definer_allowed (signature, note) VALUES ($1, 'reviewed')`, [sig]);
      await refresh();
      for (const db of UPDATED) expect(await env.queryIn(db, `SELECT to_regprocedure($1)::text AS f`, [sig]), db).toEqual([{ f: sig }]);
    } finally {
      await env.admin.query(`DELETE FROM admmgt.definer_allowed`);
      for (const db of [TEMPLATE, ...UPDATED]) {
        await env.queryIn(db, `DROP FUNCTION IF EXISTS ${sig}; REVOKE ALL ON SCHEMA app FROM refresh_owner`);
      }
      await env.admin.query('DROP ROLE IF EXISTS refresh_owner');
    }
  });
});
