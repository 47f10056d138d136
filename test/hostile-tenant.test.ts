// A tenant database is untrusted. A role of the tenant plants, in its own schema that the
// database's search_path puts before pg_catalog, functions and operators shadowing the catalog's,
// a table whose row security policy calls its code, and a trigger on a table admmgt deletes from.
// Every planted function counts its calls in a sequence (which no rollback undoes) and tries to
// make its owner a superuser. Then every public procedure and DBA function runs, as the
// non-superuser operator and as a superuser, and none of that code may ever run.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { addScript, createEnv, type TestEnv } from './support/env.js';

const TPL = 'hos_tpl';
const T1 = 'hos_t1';
const password = `Op-${randomBytes(9).toString('hex')}`;
let env: TestEnv;
let port: number;
let operator: pg.Client;

const SCRIPT1: ScriptSpec = {
  id: 1,
  description: 'a monthly table whose old partitions expire, and a table whose old rows expire',
  tables: [
    {
      schema: 'app', name: 'events', lifecycle: { d: 'current_date-60' },
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'd', type: 'date', nullable: false }],
      partitions: [{ column: 'd', type: 'range', value: 'month' }],
    },
    {
      schema: 'app', name: 'notes', lifecycle: { status: 'X', created: 'current_date-10' },
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'created', type: 'date', nullable: false },
        { name: 'status', type: 'varchar(1)', nullable: false }],
    },
  ],
};

// What a role of the tenant may do in a schema it may create objects in.
const PLANTED = String.raw`
CREATE SEQUENCE app.ran;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE app.ran TO PUBLIC;
CREATE FUNCTION app.spy() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('app.ran');
    BEGIN
        EXECUTE 'ALTER ROLE hos_tenant SUPERUSER CREATEROLE CREATEDB';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN true;
END $$;
CREATE FUNCTION app.ts_lt(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS 'SELECT app.spy() AND $1 OPERATOR(pg_catalog.<) $2';
CREATE OPERATOR app.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = app.ts_lt);
CREATE FUNCTION app.ts_gt(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS 'SELECT app.spy() AND $1 OPERATOR(pg_catalog.>) $2';
CREATE OPERATOR app.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = app.ts_gt);
CREATE FUNCTION app.date_lt(date, date) RETURNS boolean LANGUAGE sql AS 'SELECT app.spy() AND $1 OPERATOR(pg_catalog.<) $2';
CREATE OPERATOR app.< (LEFTARG = date, RIGHTARG = date, FUNCTION = app.date_lt);
CREATE FUNCTION app.text_eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT app.spy() AND $1 OPERATOR(pg_catalog.=) $2';
CREATE OPERATOR app.= (LEFTARG = text, RIGHTARG = text, FUNCTION = app.text_eq);
CREATE FUNCTION app.now() RETURNS timestamptz LANGUAGE sql AS 'SELECT CASE WHEN app.spy() THEN pg_catalog.now() END';
CREATE FUNCTION app.current_setting(text) RETURNS text LANGUAGE sql AS 'SELECT CASE WHEN app.spy() THEN pg_catalog.current_setting($1) END';
CREATE FUNCTION app.to_regclass(text) RETURNS regclass LANGUAGE sql AS 'SELECT CASE WHEN app.spy() THEN pg_catalog.to_regclass($1) END';
CREATE FUNCTION app.format(text, VARIADIC text[]) RETURNS text LANGUAGE sql AS 'SELECT CASE WHEN app.spy() THEN $1 END';
CREATE FUNCTION app.cnt(bigint) RETURNS bigint LANGUAGE sql AS 'SELECT CASE WHEN app.spy() THEN $1 + 1 END';
CREATE AGGREGATE app.count(*) (SFUNC = app.cnt, STYPE = bigint, INITCOND = '0');
CREATE TABLE app.secret (x int);
INSERT INTO app.secret VALUES (1);
ALTER TABLE app.secret ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.secret FORCE ROW LEVEL SECURITY;
CREATE POLICY peek ON app.secret USING (app.spy());
CREATE FUNCTION app.spy_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM app.spy(); RETURN OLD; END $$;
CREATE TRIGGER spy BEFORE DELETE ON app.notes FOR EACH ROW EXECUTE FUNCTION app.spy_trg();
`;

/** How often planted code ran in the tenant, and what its role gained. */
async function planted(): Promise<{ ran: boolean; super: boolean; createrole: boolean; createdb: boolean }> {
  const [seq] = await env.queryIn<{ ran: boolean }>(T1, 'SELECT is_called AS ran FROM app.ran');
  const [role] = await env.rows<{ super: boolean; createrole: boolean; createdb: boolean }>(
    `SELECT rolsuper AS super, rolcreaterole AS createrole, rolcreatedb AS createdb FROM pg_roles WHERE rolname = 'hos_tenant'`);
  return { ran: seq!.ran, ...role! };
}
const NOTHING_RAN = { ran: false, super: false, createrole: false, createdb: false };

function tcpUrl(db: string): string {
  return `postgresql://hos_op:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;
}

beforeAll(async () => {
  env = await createEnv('hos');
  const base = new URL(inject('pgUrl'));
  port = Number(base.port || base.searchParams.get('port') || 5432);
  await env.admin.query('DROP ROLE IF EXISTS hos_op; DROP ROLE IF EXISTS hos_tenant');
  await env.admin.query(`CREATE ROLE hos_op LOGIN CREATEDB PASSWORD '${password}' IN ROLE admmgt_operator`);
  await env.admin.query('CREATE ROLE hos_tenant LOGIN');
  await env.makeTemplate(TPL, ['app']);
  await env.admin.query(`ALTER DATABASE ${TPL} OWNER TO hos_op`);
  await env.queryIn(TPL, 'ALTER SCHEMA app OWNER TO hos_op');
  await env.admin.query(`SELECT admmgt.set_connection('127.0.0.1', $1, 'hos_op', $2, 'hos_op')`, [port, password]);
  operator = new pg.Client({ connectionString: tcpUrl(env.adminDb) });
  await operator.connect();

  await operator.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('${T1}', 1)`);
  await addScript(operator, SCRIPT1);
  await operator.query('CALL admmgt.create_database()');
  await operator.query('CALL admmgt.applyScripts()');
  // Older periods, so that lifecycle has partitions to drop; an expired note to delete.
  await operator.query(`CALL admmgt.applyMaintenance(t_numdays => 0, p_asof => current_date - 120)`);
  await env.queryIn(T1, `INSERT INTO app.events VALUES (1, current_date - 120); INSERT INTO app.notes VALUES (1, current_date - 100, 'X')`);

  // The tenant's app role may create objects in app, may add triggers to notes, and the
  // database's search_path puts app before pg_catalog.
  await env.queryIn(T1, `GRANT USAGE, CREATE ON SCHEMA app TO hos_tenant; GRANT TRIGGER ON app.notes TO hos_tenant;
                         GRANT CONNECT ON DATABASE ${T1} TO hos_tenant`);
  await env.admin.query(`ALTER DATABASE ${T1} SET search_path = app, pg_catalog`);
  await env.queryIn(T1, `SET ROLE hos_tenant; ${PLANTED}`);
  // The plant works: a session that takes the database's search_path runs it.
  const probe = new pg.Client({ connectionString: env.urlFor(T1) });
  await probe.connect();
  try {
    await probe.query('BEGIN');
    await probe.query(`SELECT now(), count(*) FROM pg_class`);
    expect((await probe.query('SELECT is_called FROM app.ran')).rows).toEqual([{ is_called: true }]);
  } finally {
    await probe.query('ROLLBACK');
    await probe.end();
  }
  // nextval is not rolled back: start the count again.
  await env.queryIn(T1, `SELECT setval('app.ran', 1, false)`);
  expect(await planted()).toEqual(NOTHING_RAN);
});

afterAll(async () => {
  await operator?.end().catch(() => {});
  await env?.close();
  const server = new pg.Client({ connectionString: inject('pgUrl') });
  await server.connect();
  await server.query('DROP OWNED BY hos_op; DROP ROLE IF EXISTS hos_op; DROP ROLE IF EXISTS hos_tenant').catch(() => {});
  await server.end();
});

/** Every public procedure and DBA function, through one client. */
async function everything(c: pg.Client, scriptId: number, newTenant: string): Promise<void> {
  await c.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('${newTenant}', 1)`);
  await c.query('CALL admmgt.create_database()');
  await addScript(c, {
    id: scriptId, description: 'a default that calls now() and compares text',
    addColumns: [
      { schema: 'app', table: 'events', column: { name: `seen${scriptId}`, type: 'timestamptz', default: 'now()' } },
      { schema: 'app', table: 'notes', column: { name: `same${scriptId}`, type: 'boolean', default: "'a'::text = 'a'::text" } },
    ],
  });
  await c.query('CALL admmgt.applyScripts()');
  await c.query('CALL admmgt.applyMaintenance(t_numdays => 40)');
  await c.query('CALL admmgt.applyLifecycle(p_plan => true)');
  await c.query('CALL admmgt.applyLifecycle()');
  await c.query('CALL admmgt.refesh_stored_procedures()');
  await c.query('SELECT * FROM admmgt.inventory($1)', [T1]);
  await c.query('SELECT * FROM admmgt.check_targets()');
  await c.query('SELECT * FROM admmgt.plan_scripts()');
}

describe('a hostile tenant', () => {
  it('runs none of its code when the non-superuser operator runs every procedure', async () => {
    await everything(operator, 2, 'hos_t2');
    expect(await planted()).toEqual(NOTHING_RAN);
    // The defaults are pg_catalog's: now() and text equality, with nothing planted in between.
    expect(await env.queryIn(T1, `SELECT pg_get_expr(d.adbin, d.adrelid) AS def FROM pg_attrdef d JOIN pg_attribute a
                                   ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                                   WHERE a.attname IN ('seen2', 'same2') AND d.adrelid IN ('app.events'::regclass, 'app.notes'::regclass) ORDER BY 1`))
      .toEqual([{ def: "('a'::text OPERATOR(pg_catalog.=) 'a'::text)" }, { def: 'pg_catalog.now()' }]);
  });

  it('runs none of its code when a superuser runs every procedure', async () => {
    await everything(env.admin, 3, 'hos_t3');
    expect(await planted()).toEqual(NOTHING_RAN);
  });

  it('lifecycle drops the expired partitions but deletes no row where a trigger of the tenant would run, naming the table', async () => {
    expect(await env.queryIn(T1, `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'app.events'::regclass
                                   AND inhrelid::regclass::text LIKE '%' || to_char(current_date - 120, 'YYYYMM') || '%'`))
      .toEqual([{ n: 0 }]);
    expect(await env.queryIn(T1, 'SELECT id FROM app.notes')).toEqual([{ id: '1' }]);
    expect(await env.rows(`SELECT sqlstate, message FROM admmgt.failures WHERE operation = 'lifecycle' AND dbname = $1`, [T1]))
      .toEqual([{ sqlstate: '55000', message: 'admmgt: app.notes has a trigger that runs a function of another role or a WHEN condition; admmgt moves and deletes no rows there' }]);
  });

  it('lifecycle deletes no row where a trigger has a WHEN condition, whoever owns its function', async () => {
    // The condition calls the tenant's code; the function is a superuser's built-in.
    await env.queryIn(T1, `DROP TRIGGER spy ON app.notes; SET ROLE hos_tenant;
      CREATE TRIGGER spy_when BEFORE DELETE ON app.notes FOR EACH ROW WHEN (app.spy() IS NULL) EXECUTE FUNCTION suppress_redundant_updates_trigger()`);
    await env.admin.query('CALL admmgt.applyLifecycle()');
    expect(await planted()).toEqual(NOTHING_RAN);
    expect(await env.queryIn(T1, 'SELECT id FROM app.notes')).toEqual([{ id: '1' }]);
    expect(await env.rows(`SELECT message FROM admmgt.failures WHERE operation = 'lifecycle' AND dbname = $1`, [T1]))
      .toEqual([{ message: 'admmgt: app.notes has a trigger that runs a function of another role or a WHEN condition; admmgt moves and deletes no rows there' }]);
  });

  it('inventory does not count a table with row security', async () => {
    expect(await env.rows(`SELECT detail FROM admmgt.inventory($1) WHERE kind = 'rows' AND name = 'app.secret'`, [T1]))
      .toEqual([{ detail: 'not counted: row security is enabled' }]);
  });
});
