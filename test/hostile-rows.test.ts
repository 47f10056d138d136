// Hostile rows and hostile calls, as a careless DBA or a pipeline writes them: a DEFAULT that
// smuggles a clause, a CALL that is two, dates that never come, names that differ only in blanks;
// and dblink in the admin database, which no tenant role may use.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

const TPL = 'hrow_tpl';
const T1 = 'hrow_t1';
let env: TestEnv;

const BASE: ScriptSpec = {
  id: 1,
  description: 'a table with data worth keeping',
  tables: [{
    schema: 'app', name: 'accounts',
    columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'secret', type: 'text' },
      { name: 'd', type: 'date', nullable: false, default: 'current_date' }],
  }],
};

/** The columns of app.accounts in a database. */
async function columns(db: string): Promise<string[]> {
  const rows = await env.queryIn<{ attname: string }>(db,
    `SELECT attname FROM pg_attribute WHERE attrelid = 'app.accounts'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
  return rows.map((r) => r.attname);
}

beforeAll(async () => {
  env = await createEnv('hrow');
  await env.makeTemplate(TPL, ['app']);
  await env.addScript(BASE);
  await env.makeTenants([T1]);
  await env.admin.query('CALL admmgt.applyScripts()');
  await env.queryIn(T1, `INSERT INTO app.accounts (id, secret) VALUES (1, 'keep me')`);
});

afterAll(async () => {
  await env?.close();
});

describe('a fragment is one expression', () => {
  it.each([
    ['ADD COLUMN', 'a default followed by a clause of ALTER TABLE', '0, DROP COLUMN secret'],
    ['ADD COLUMN', 'an owner change', '0, OWNER TO postgres'],
    ['ADD COLUMN', 'triggers disabled', '0, DISABLE TRIGGER ALL'],
    ['CREATE TABLE', 'a second column', '1, evil text'],
    ['CREATE TABLE', 'a constraint', '1, CONSTRAINT c CHECK (false)'],
  ])('%s with %s (%s) is refused, naming the row, before any target is touched', async (where, _what, defaultval) => {
    const spec: ScriptSpec = where === 'ADD COLUMN'
      ? { id: 2, description: 'smuggling', addColumns: [{ schema: 'app', table: 'accounts', column: { name: 'flag', type: 'int', default: defaultval } }] }
      : { id: 2, description: 'smuggling', tables: [{ schema: 'app', name: 'other', columns: [{ name: 'id', type: 'int', default: defaultval }] }] };
    await env.addScript(spec);
    try {
      const [{ id }] = await env.rows<{ id: string }>(`SELECT id::text FROM admmgt.script_table_columns WHERE scriptid = 2`) as [{ id: string }];
      const e = await env.errorOf('CALL admmgt.applyScripts()');
      expect(e.code).toBe('42601');
      expect(e.message).toBe(`admmgt: invalid default '${defaultval}' in admmgt.script_table_columns id ${id}: it contains a comma outside parentheses`);
      for (const db of [TPL, T1]) expect(await columns(db)).toEqual(['id', 'secret', 'd']);
      expect(await env.queryIn(T1, 'SELECT secret FROM app.accounts')).toEqual([{ secret: 'keep me' }]);
      expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'apply'`)).toEqual([{ n: 1 }]);
    } finally {
      await env.admin.query(`DELETE FROM admmgt.script_table_columns WHERE scriptid = 2; DELETE FROM admmgt.script_tables WHERE scriptid = 2;
                             DELETE FROM admmgt.scripts WHERE id = 2`);
    }
  });

  it('a default is rendered in parentheses, and one with commas inside them works', async () => {
    await env.addScript({ id: 2, description: 'defaults with commas inside parentheses and brackets',
      addColumns: [{ schema: 'app', table: 'accounts', column: { name: 'code', type: 'text', default: "concat('a', 'b')" } },
        { schema: 'app', table: 'accounts', column: { name: 'tags', type: 'text[]', default: "ARRAY['x', 'y']" } }] });
    expect(await env.rows(`SELECT stmt FROM admmgt.render_script(2)`)).toEqual([
      { stmt: "ALTER TABLE app.accounts ADD COLUMN code text DEFAULT (concat('a', 'b'))" },
      { stmt: "ALTER TABLE app.accounts ADD COLUMN tags text[] DEFAULT (ARRAY['x', 'y'])" }]);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.queryIn(T1, 'SELECT code, tags FROM app.accounts')).toEqual([{ code: 'ab', tags: ['x', 'y'] }]);
  });

  it.each([
    ['call app.p(), (1)', "invalid call arguments '), (1' in admmgt.script_procs id ID: it contains an unbalanced \")\""],
    ['call app.p() (1)', "invalid call arguments ') (1' in admmgt.script_procs id ID: it contains an unbalanced \")\""],
    ['call app.p(1), app.q()', "invalid call arguments '1), app.q(' in admmgt.script_procs id ID: it contains an unbalanced \")\""],
    ['call app.p(1); drop table app.accounts', "invalid call 'call app.p(1); drop table app.accounts' in admmgt.script_procs id ID"],
  ])('the call %j is refused naming the row, and nothing runs', async (call, message) => {
    await env.addScript({ id: 3, description: 'two calls in one', calls: [call] });
    try {
      const [{ id }] = await env.rows<{ id: string }>(`SELECT id::text FROM admmgt.script_procs WHERE scriptid = 3`) as [{ id: string }];
      const e = await env.errorOf('CALL admmgt.applyScripts()');
      expect([e.code, e.message]).toEqual(['42601', `admmgt: ${message.replace('ID', id)}`]);
      expect(await env.rows(`SELECT status FROM admmgt.scripts WHERE id = 3`)).toEqual([{ status: 1 }]);
    } finally {
      await env.admin.query(`DELETE FROM admmgt.script_procs WHERE scriptid = 3; DELETE FROM admmgt.scripts WHERE id = 3`);
    }
  });
});

describe('days that never come', () => {
  it.each([
    ["CALL admmgt.applyMaintenance(p_asof => 'infinity')", '22008', "admmgt: p_asof must be a day between 0001-01-01 and 9999-12-31, not infinity"],
    ["CALL admmgt.applyMaintenance(p_asof => '-infinity')", '22008', "admmgt: p_asof must be a day between 0001-01-01 and 9999-12-31, not -infinity"],
    ["CALL admmgt.applyLifecycle(p_asof => 'infinity', p_plan => true)", '22008', "admmgt: p_asof must be a day between 0001-01-01 and 9999-12-31, not infinity"],
    ["SELECT * FROM admmgt.render_maintenance(1, 'infinity', 'infinity')", '22008', 'admmgt: the first day of the window must be a day between 0001-01-01 and 9999-12-31, not infinity'],
    ["SELECT * FROM admmgt.render_maintenance(1, '2020-01-01', '2040-01-01')", '54000', 'admmgt: the window from 2020-01-01 to 2040-01-01 has 7305 days, more than 3660'],
    ["SELECT * FROM admmgt.render_script(1, 'infinity')", '22008', 'admmgt: p_asof must be a day between 0001-01-01 and 9999-12-31, not infinity'],
  ])('%s is refused at once with %s', async (statement, code, message) => {
    await env.admin.query(`SET statement_timeout = '5s'`);
    try {
      const e = await env.errorOf(statement);
      expect([e.code, e.message]).toEqual([code, message]);
    } finally {
      await env.admin.query('RESET statement_timeout');
    }
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE finished_at IS NULL`)).toEqual([{ n: 0 }]);
  });
});

describe('names that differ only in blanks', () => {
  it('a new row with blanks around its name is refused on insert', async () => {
    for (const name of [' hrow_dup', 'hrow_dup ', ' HROW_DUP ']) {
      const e = await env.errorOf(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('${name}', 1)`);
      expect([e.code, e.constraint]).toEqual(['23514', 'vendor_db_settings_dbname_blanks']);
    }
  });

  it('an older row with blanks around its name is refused by create_database, naming it', async () => {
    await env.admin.query(`BEGIN;
      ALTER TABLE admmgt.vendor_db_settings DROP CONSTRAINT vendor_db_settings_dbname_blanks;
      INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('hrow_dup ', 1);
      ALTER TABLE admmgt.vendor_db_settings ADD CONSTRAINT vendor_db_settings_dbname_blanks CHECK (dbname = btrim(dbname)) NOT VALID;
      COMMIT`);
    const [{ id }] = await env.rows<{ id: string }>(`SELECT id::text FROM admmgt.vendor_db_settings WHERE dbname = 'hrow_dup '`) as [{ id: string }];
    try {
      const e = await env.errorOf('CALL admmgt.create_database()');
      expect([e.code, e.message]).toEqual(['42602', `admmgt: invalid database name 'hrow_dup ' in admmgt.vendor_db_settings id ${id}`]);
      expect(await env.databases()).not.toContain('hrow_dup');
    } finally {
      await env.admin.query(`DELETE FROM admmgt.vendor_db_settings WHERE id = $1`, [id]);
    }
  });
});

describe('dblink in the admin database', () => {
  it('is executable by admmgt_operator, not by PUBLIC', async () => {
    const rows = await env.rows<{ public: number; operator: number; total: number }>(`
      SELECT count(*) FILTER (WHERE has_function_privilege('public', p.oid, 'EXECUTE'))::int AS public,
             count(*) FILTER (WHERE has_function_privilege('admmgt_operator', p.oid, 'EXECUTE'))::int AS operator,
             count(*)::int AS total
        FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink'`);
    expect(rows[0]!.public).toBe(0);
    expect(rows[0]!.operator).toBe(rows[0]!.total);
    expect(rows[0]!.total).toBeGreaterThan(30);
  });

  it('a tenant login role that reaches the admin database cannot open a connection through it', async () => {
    await env.admin.query(`CREATE ROLE hrow_login LOGIN; GRANT CONNECT ON DATABASE ${env.adminDb} TO hrow_login`);
    const u = new URL(env.adminUrl);
    u.username = 'hrow_login';
    const c = new pg.Client({ connectionString: u.toString() });
    await c.connect();
    try {
      const schema = (await env.rows<{ s: string }>(`SELECT n.nspname AS s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'dblink'`))[0]!.s;
      const e = await c.query(`SELECT "${schema}".dblink_connect('probe', 'host=127.0.0.1 port=22')`).then(() => undefined, (err: pg.DatabaseError) => err);
      expect(e?.code).toBe('42501');
      expect(e?.message).toMatch(/^permission denied for function dblink_connect/);
    } finally {
      await c.end();
      await env.admin.query(`REVOKE CONNECT ON DATABASE ${env.adminDb} FROM hrow_login; DROP ROLE hrow_login`);
    }
  });
});

describe('rows PostgreSQL would refuse only in the template', () => {
  const table = (partitions: NonNullable<NonNullable<ScriptSpec['tables']>[number]['partitions']>, keyType = 'date'): ScriptSpec => ({
    id: 4, description: 'partitions',
    tables: [{ schema: 'app', name: 'parted', columns: [{ name: 'id', type: 'bigint', primaryKey: true },
      { name: 'k', type: keyType, nullable: false }, { name: 'v', type: 'text', nullable: false }], partitions }],
  });
  const cleanup = () => env.admin.query(`DELETE FROM admmgt.script_table_partitions WHERE tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = 4);
    DELETE FROM admmgt.script_table_columns WHERE scriptid = 4; DELETE FROM admmgt.script_tables WHERE scriptid = 4; DELETE FROM admmgt.scripts WHERE id = 4`);

  it('a RANGE partition on a text column is refused up front, naming the row', async () => {
    await env.addScript(table([{ column: 'k', type: 'range', value: 'month' }], 'text'));
    try {
      const [{ id }] = await env.rows<{ id: string }>(`SELECT p.id::text FROM admmgt.script_table_partitions p JOIN admmgt.script_tables t ON t.id = p.tableid WHERE t.scriptid = 4`) as [{ id: string }];
      const e = await env.errorOf('CALL admmgt.applyScripts()');
      expect([e.code, e.message]).toEqual(['42804', `admmgt: admmgt.script_table_partitions id ${id} partitions by RANGE on column k of type text, which is not a date or a timestamp`]);
      expect(await env.queryIn(TPL, `SELECT to_regclass('app.parted') AS t`)).toEqual([{ t: null }]);
    } finally {
      await cleanup();
    }
  });

  it('LIST values whose partitions would get one name are refused up front, naming both rows', async () => {
    await env.addScript(table([{ column: 'v', type: 'list', value: 'a-b' }, { column: 'v', type: 'list', value: 'A_B' }]));
    try {
      const ids = (await env.rows<{ id: string }>(`SELECT p.id::text FROM admmgt.script_table_partitions p JOIN admmgt.script_tables t ON t.id = p.tableid
                                                   WHERE t.scriptid = 4 ORDER BY p.id`)).map((r) => r.id);
      const e = await env.errorOf('CALL admmgt.applyScripts()');
      expect([e.code, e.message]).toEqual(['42P07',
        `admmgt: admmgt.script_table_partitions id ${ids[0]} and admmgt.script_table_partitions id ${ids[1]} name LIST values whose partitions would both be called parted_a_b`]);
      expect(await env.queryIn(TPL, `SELECT to_regclass('app.parted') AS t`)).toEqual([{ t: null }]);
    } finally {
      await cleanup();
    }
  });
});

describe('the registry', () => {
  it("a deleted tenant's old failure is not listed any more", async () => {
    const [{ id }] = await env.rows<{ id: string }>(`SELECT id::text FROM admmgt.vendor_db_settings WHERE dbname = $1`, [T1]) as [{ id: string }];
    await env.admin.query(`INSERT INTO admmgt.target_results (operation, scriptid, target_id, dbname, ok, sqlstate, message)
                           VALUES ('maintain', 0, $1, $2, false, '55P03', 'lock timeout')`, [id, T1]);
    expect(await env.rows(`SELECT dbname FROM admmgt.failures`)).toEqual([{ dbname: T1 }]);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET deleted = true, deletedon = now() WHERE id = $1`, [id]);
    try {
      expect(await env.rows(`SELECT dbname FROM admmgt.failures`)).toEqual([]);
      expect(await env.rows(`SELECT failures::int FROM admmgt.server_status`)).toEqual([{ failures: 0 }]);
    } finally {
      await env.admin.query(`UPDATE admmgt.vendor_db_settings SET deleted = false, deletedon = NULL WHERE id = $1`, [id]);
      await env.admin.query(`DELETE FROM admmgt.target_results WHERE target_id = $1`, [id]);
    }
  });
});

describe('the admin cluster registered again', () => {
  it('under another name, over TCP, is refused: it is server local', async () => {
    const password = `Self-${process.pid}`;
    await env.admin.query(`CREATE ROLE hrow_self LOGIN PASSWORD '${password}'`);
    try {
      const port = Number(new URL(env.adminUrl).port);
      const e = await env.errorOf(`SELECT admmgt.add_server('self', '127.0.0.1', ${port}, 'hrow_self', '${password}', p_maintdb => '${env.adminDb}')`);
      expect([e.code, e.detail]).toEqual(['42710', 'Nothing was registered.']);
      expect(e.message).toMatch(/^admmgt: server self is the cluster that is registered as server local already \(system identifier \d+\)$/);
      expect(e.hint).toContain('admmgt.set_connection');
      expect(await env.rows(`SELECT name FROM admmgt.servers ORDER BY name`)).toEqual([{ name: 'local' }]);
      expect(await env.rows(`SELECT count(*)::int AS n FROM pg_foreign_server WHERE srvname = 'admmgt_srv_self'`)).toEqual([{ n: 0 }]);
    } finally {
      await env.admin.query(`DROP OWNED BY hrow_self; DROP ROLE hrow_self`);
    }
  });
});

describe('a scriptversion set by hand', () => {
  it('does not make a script count as applied: the script stays ready until the tenant really ran it', async () => {
    await env.addScript({ id: 6, description: 'after a hand edit', addColumns: [{ schema: 'app', table: 'accounts', column: { name: 'late', type: 'int' } }] });
    const before = await env.rows<{ scriptversion: number }>(`SELECT scriptversion FROM admmgt.vendor_db_settings WHERE dbname = $1`, [T1]);
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET scriptversion = 6 WHERE dbname = $1`, [T1]);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await columns(TPL)).toContain('late');
    expect(await columns(T1)).not.toContain('late');
    expect(await env.rows(`SELECT status FROM admmgt.scripts WHERE id = 6`)).toEqual([{ status: 1 }]);
    // Put right, the tenant takes the script, and only then does it count as applied.
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET scriptversion = $2 WHERE dbname = $1`, [T1, before[0]!.scriptversion]);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await columns(T1)).toContain('late');
    expect(await env.rows(`SELECT status FROM admmgt.scripts WHERE id = 6`)).toEqual([{ status: 2 }]);
  });
});

describe('a batch that does not parse', () => {
  it('fails on the template naming the script, not BEGIN, and the script is marked failed', async () => {
    // int(5) passes the type check but is no PostgreSQL type syntax: the whole batch does not parse.
    await env.addScript({ id: 7, description: 'a type PostgreSQL cannot parse', addColumns: [{ schema: 'app', table: 'accounts', column: { name: 'n', type: 'int(5)' } }] });
    try {
      await env.admin.query('CALL admmgt.applyScripts()');
      expect(await env.rows(`SELECT status, last_error FROM admmgt.scripts WHERE id = 7`)).toEqual([{
        status: 3, last_error: expect.stringMatching(/^syntax error at or near "\(" \(SQLSTATE 42601\) at: script 7 as a whole, which does not parse \(no statement ran\)$/) }]);
      expect(await env.rows(`SELECT statement FROM admmgt.failures WHERE scriptid = 7`)).toEqual([{ statement: 'script 7 as a whole, which does not parse (no statement ran)' }]);
      expect(await columns(TPL)).not.toContain('n');
    } finally {
      await env.admin.query(`DELETE FROM admmgt.script_table_columns WHERE scriptid = 7; DELETE FROM admmgt.target_results WHERE scriptid = 7;
                             DELETE FROM admmgt.scripts WHERE id = 7`);
    }
  });
});
