// Views and triggers as script rows (script_views, script_triggers), against real template and
// tenant databases: what each script leaves in the catalogs (pg_views, pg_matviews, pg_trigger,
// pg_proc) of the template, of a tenant made before it and of one made after it; what the triggers
// do when rows change; a trigger function changed in the template reaching every tenant through
// refresh; what PostgreSQL refuses on the template; and the rows refused before any target is
// touched. Every database of this file starts with applyvt_.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec, TriggerSpec, ViewSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applyvt_tpl';
const { admin, adminError, fresh, scriptStatus, runCount, tables, ledger } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applyvt');
});
afterAll(async () => {
  await env?.close();
});

// ---------------------------------------------------------------------------------------------
// catalog readers

async function views(db: string): Promise<{ name: string; def: string }[]> {
  return env.queryIn(db, `SELECT viewname AS name, definition AS def FROM pg_views WHERE schemaname = $1 ORDER BY 1`, [S]);
}

async function matviews(db: string): Promise<{ name: string; populated: boolean; def: string }[]> {
  return env.queryIn(db,
    `SELECT matviewname AS name, ispopulated AS populated, definition AS def FROM pg_matviews WHERE schemaname = $1 ORDER BY 1`, [S]);
}

/** Column names of a relation, in order. */
async function columnNames(db: string, rel: string): Promise<string[]> {
  return (await env.queryIn<{ a: string }>(db,
    `SELECT attname AS a FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [`${S}.${rel}`])).map((r) => r.a);
}

/** The user triggers of schema mgttest, as PostgreSQL prints them. */
async function triggers(db: string): Promise<Record<string, string>> {
  const rows = await env.queryIn<{ name: string; def: string }>(db,
    `SELECT t.tgname AS name, pg_get_triggerdef(t.oid) AS def
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal AND t.tgenabled = 'O' ORDER BY 1`, [S]);
  return Object.fromEntries(rows.map((r) => [r.name, r.def]));
}

interface TriggerFunction { name: string; src: string; definer: boolean; config: string[] | null; owner: string; lang: string }

/** The trigger functions of schema mgttest. */
async function triggerFunctions(db: string): Promise<TriggerFunction[]> {
  return env.queryIn(db,
    `SELECT p.proname AS name, p.prosrc AS src, p.prosecdef AS definer, p.proconfig AS config,
            pg_get_userbyid(p.proowner) AS owner, l.lanname AS lang
       FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
      WHERE p.pronamespace = $1::regnamespace AND p.prorettype = 'trigger'::regtype ORDER BY 1`, [S]);
}

const srcOf = async (db: string, fn: string) => (await triggerFunctions(db)).find((f) => f.name === fn)?.src;

// ---------------------------------------------------------------------------------------------
// the scripts of the main scenario

/** The audit body, version v: PL/pgSQL full of what a fragment may not hold (;, comments, $$, a backslash, quotes). */
const auditBody = (v: string) => `
DECLARE
    v_id bigint;  -- OLD on DELETE, NEW otherwise; a \\ and $$ and /* stay in the literal
BEGIN
    IF TG_OP = 'DELETE' THEN v_id := OLD.id; ELSE v_id := NEW.id; END IF;
    INSERT INTO mgttest.audit (op, order_id, note) VALUES (TG_OP, v_id, lower('${v.toUpperCase()}'));
    RETURN NULL;
END`;

const script1: ScriptSpec = {
  id: 1,
  description: 'orders, their views and triggers',
  tables: [
    {
      schema: S, name: 'orders',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'amount', type: 'numeric(12,2)', nullable: false, default: '0' },
        { name: 'status', type: 'text' },
        { name: 'note', type: 'text' },
      ],
    },
    {
      schema: S, name: 'audit',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'op', type: 'text' },
        { name: 'order_id', type: 'bigint' },
        { name: 'note', type: 'text' },
      ],
    },
  ],
  views: [
    // A list of columns, and a ; inside a string: one query still.
    { schema: S, name: 'big_orders', query: `SELECT o.id, o.amount, 'big; really' AS label FROM mgttest.orders o WHERE o.amount > 100` },
    { schema: S, name: 'order_totals', materialized: true, query: 'SELECT count(*) AS n, coalesce(sum(amount), 0) AS total FROM mgttest.orders' },
    { schema: S, name: 'old_view', query: 'SELECT 1 AS one' },
    { schema: S, name: 'old_mat', materialized: true, query: 'SELECT id FROM mgttest.orders' },
  ],
  triggers: [
    { schema: S, table: 'orders', name: 'orders_audit', events: 'insert or UPDATE OF amount, Status or Delete',
      function: 'audit_orders', functionBody: auditBody('v1') },
    { schema: S, table: 'orders', name: 'orders_stamp', timing: 'BEFORE', events: 'UPDATE', when: 'OLD.amount IS DISTINCT FROM NEW.amount',
      function: 'stamp_orders', functionBody: `BEGIN NEW.note := 'amount changed'; RETURN NEW; END` },
    { schema: S, table: 'orders', name: 'orders_truncated', events: 'TRUNCATE', forEach: 'STATEMENT',
      function: 'audit_truncate', functionBody: `BEGIN INSERT INTO mgttest.audit (op) VALUES (TG_OP); RETURN NULL; END` },
    // On a view of this script: views are created before triggers.
    { schema: S, table: 'big_orders', name: 'big_orders_insert', timing: 'INSTEAD OF', events: 'INSERT',
      function: 'insert_big_order', functionBody: `BEGIN INSERT INTO mgttest.orders (amount) VALUES (NEW.amount); RETURN NEW; END` },
  ],
};

const script2: ScriptSpec = {
  id: 2,
  description: 'replace and drop views and triggers',
  views: [
    { schema: S, name: 'big_orders', action: 'replace',
      query: `SELECT o.id, o.amount, 'big; really' AS label, o.status FROM mgttest.orders o WHERE o.amount > 50` },
    { schema: S, name: 'order_totals', materialized: true, action: 'replace',
      query: 'SELECT count(*) AS n, coalesce(sum(amount), 0) AS total, max(amount) AS top FROM mgttest.orders' },
    { schema: S, name: 'old_view', action: 'drop', confirm: true },
    { schema: S, name: 'old_mat', materialized: true, action: 'drop', confirm: true },
  ],
  triggers: [
    { schema: S, table: 'orders', name: 'orders_audit', action: 'replace', events: 'INSERT', function: 'audit_orders', functionBody: auditBody('v2') },
    { schema: S, table: 'orders', name: 'orders_stamp', action: 'drop', function: 'stamp_orders' },
    // No body: the function of an earlier row.
    { schema: S, table: 'orders', name: 'orders_note_audit', events: 'UPDATE OF note', function: 'audit_orders' },
  ],
};

describe('applyScripts: views and triggers in the template and in tenants made before and after each script', () => {
  const T1 = 'applyvt_t1'; // made before script 1
  const T2 = 'applyvt_t2'; // made after script 1, before script 2
  const T3 = 'applyvt_t3'; // made after script 2
  let me = '';

  beforeAll(async () => {
    me = (await admin<{ u: string }>('SELECT current_user AS u'))[0]!.u;
    await fresh([T1]);
    await env.addScript(script1);
    await env.admin.query('CALL admmgt.applyScripts()');
    await env.makeTenants([T2]);
  });

  it('applies script 1 to the template and the tenant, and the tenant made after it has it too', async () => {
    expect(await env.versions()).toEqual({ [TPL]: 1, [T1]: 1, [T2]: 1 });
    for (const db of [TPL, T1]) expect(await ledger(db)).toEqual([1]);
    expect(await admin('SELECT * FROM admmgt.failures')).toEqual([]);
  });

  it('creates plain and materialized views with their queries', async () => {
    const expected = await views(TPL);
    expect(expected.map((v) => v.name)).toEqual(['big_orders', 'old_view']);
    expect(expected[0]!.def).toContain(`'big; really'::text AS label`);
    for (const db of [TPL, T1, T2]) {
      expect(await views(db), db).toEqual(expected);
      expect(await columnNames(db, 'big_orders')).toEqual(['id', 'amount', 'label']);
      expect((await matviews(db)).map(({ name, populated }) => ({ name, populated }))).toEqual([
        { name: 'old_mat', populated: true }, { name: 'order_totals', populated: true }]);
      expect(await columnNames(db, 'order_totals')).toEqual(['n', 'total']);
    }
  });

  it('creates the triggers as written: timing, events with a column list, FOR EACH, WHEN, on a table and on a view', async () => {
    for (const db of [TPL, T1, T2]) {
      expect(await triggers(db), db).toEqual({
        big_orders_insert: 'CREATE TRIGGER big_orders_insert INSTEAD OF INSERT ON mgttest.big_orders FOR EACH ROW EXECUTE FUNCTION mgttest.insert_big_order()',
        orders_audit: 'CREATE TRIGGER orders_audit AFTER INSERT OR DELETE OR UPDATE OF amount, status ON mgttest.orders FOR EACH ROW EXECUTE FUNCTION mgttest.audit_orders()',
        orders_stamp: 'CREATE TRIGGER orders_stamp BEFORE UPDATE ON mgttest.orders FOR EACH ROW WHEN ((old.amount IS DISTINCT FROM new.amount)) EXECUTE FUNCTION mgttest.stamp_orders()',
        orders_truncated: 'CREATE TRIGGER orders_truncated AFTER TRUNCATE ON mgttest.orders FOR EACH STATEMENT EXECUTE FUNCTION mgttest.audit_truncate()',
      });
    }
  });

  it('creates each trigger function with its body exactly, invoker rights and search_path pinned to pg_catalog, pg_temp', async () => {
    for (const db of [TPL, T1, T2]) {
      const fns = await triggerFunctions(db);
      expect(fns.map((f) => f.name)).toEqual(['audit_orders', 'audit_truncate', 'insert_big_order', 'stamp_orders']);
      for (const f of fns) {
        expect({ definer: f.definer, config: f.config, owner: f.owner, lang: f.lang }, `${db} ${f.name}`)
          .toEqual({ definer: false, config: ['search_path=pg_catalog, pg_temp'], owner: me, lang: 'plpgsql' });
      }
      expect(fns[0]!.src).toBe(auditBody('v1'));
      expect(fns[3]!.src).toBe(`BEGIN NEW.note := 'amount changed'; RETURN NEW; END`);
    }
  });

  it('fires the triggers in every target: audit rows, the WHEN condition, the column list, INSTEAD OF, TRUNCATE', async () => {
    for (const db of [TPL, T1, T2]) {
      const [{ id: a }] = await env.queryIn<{ id: string }>(db, `INSERT INTO mgttest.orders (amount) VALUES (10) RETURNING id::text`) as [{ id: string }];
      // The amount changes: the WHEN condition holds, orders_stamp writes the note.
      await env.queryIn(db, `UPDATE mgttest.orders SET amount = 200 WHERE id = $1`, [a]);
      expect(await env.queryIn(db, `SELECT note FROM mgttest.orders WHERE id = $1`, [a])).toEqual([{ note: 'amount changed' }]);
      // The amount stays: orders_stamp does not fire; status is in the column list, so orders_audit does.
      await env.queryIn(db, `UPDATE mgttest.orders SET note = NULL, status = 'paid' WHERE id = $1`, [a]);
      expect(await env.queryIn(db, `SELECT note FROM mgttest.orders WHERE id = $1`, [a])).toEqual([{ note: null }]);
      // note is not in the column list: no audit row.
      await env.queryIn(db, `UPDATE mgttest.orders SET note = 'n' WHERE id = $1`, [a]);
      // INSTEAD OF INSERT on the view inserts into orders, whose trigger audits it.
      await env.queryIn(db, `INSERT INTO mgttest.big_orders (amount) VALUES (500)`);
      const [{ id: b }] = await env.queryIn<{ id: string }>(db, `SELECT max(id)::text AS id FROM mgttest.orders`) as [{ id: string }];
      expect(b).not.toBe(a);
      await env.queryIn(db, `DELETE FROM mgttest.orders WHERE id = $1`, [b]);
      await env.queryIn(db, `TRUNCATE mgttest.orders`);
      expect(await env.queryIn(db, `SELECT op, order_id::text AS id, note FROM mgttest.audit ORDER BY id`), db).toEqual([
        { op: 'INSERT', id: a, note: 'v1' },
        { op: 'UPDATE', id: a, note: 'v1' },
        { op: 'UPDATE', id: a, note: 'v1' },
        { op: 'INSERT', id: b, note: 'v1' },
        { op: 'DELETE', id: b, note: 'v1' },
        { op: 'TRUNCATE', id: null, note: null },
      ]);
      await env.queryIn(db, `TRUNCATE mgttest.audit`);
    }
  });

  it('runs the trigger function with its own search_path, not the caller\'s: a function planted in the caller\'s path is not called', async () => {
    // A tenant role that may create functions in mgttest shadows lower(text) for sessions that put
    // mgttest first. The trigger function resolves lower() in pg_catalog all the same.
    await env.queryIn(T1, `CREATE FUNCTION mgttest.lower(text) RETURNS text LANGUAGE sql AS $$SELECT 'planted'$$`);
    const caller = new pg.Client({ connectionString: env.urlFor(T1) });
    await caller.connect();
    try {
      await caller.query('SET search_path = mgttest, pg_catalog');
      // The planted function is what the caller itself gets...
      expect((await caller.query(`SELECT lower('X') AS l`)).rows).toEqual([{ l: 'planted' }]);
      // ...but not what the trigger function it fires calls.
      await caller.query('INSERT INTO orders (amount) VALUES (1)');
      expect((await caller.query('SELECT op, note FROM audit')).rows).toEqual([{ op: 'INSERT', note: 'v1' }]);
    } finally {
      await caller.end();
      await env.queryIn(T1, `DROP FUNCTION mgttest.lower(text); TRUNCATE mgttest.orders; TRUNCATE mgttest.audit`);
    }
  });

  it('renders script 2 with each statement\'s row, its transaction mode and whether it drops something', async () => {
    await env.addScript(script2);
    const steps = await admin<{ kw: string; source: string; txmode: string; destructive: boolean }>(
      `SELECT substring(stmt FROM '^[A-Z ]*[A-Z]') AS kw, source, txmode, destructive FROM admmgt.render_steps(2) ORDER BY seq`);
    const [v, t] = [
      (await admin<{ id: string }>(`SELECT min(id)::text AS id FROM admmgt.script_views WHERE scriptid = 2`))[0]!.id,
      (await admin<{ id: string }>(`SELECT min(id)::text AS id FROM admmgt.script_triggers WHERE scriptid = 2`))[0]!.id,
    ].map(Number) as [number, number];
    const view = (i: number) => `admmgt.script_views id ${v + i}`;
    const trig = (i: number) => `admmgt.script_triggers id ${t + i}`;
    expect(steps).toEqual([
      { kw: 'CREATE OR REPLACE VIEW', source: view(0), txmode: 'script', destructive: false },
      { kw: 'DROP MATERIALIZED VIEW IF EXISTS', source: view(1), txmode: 'script', destructive: true },
      { kw: 'CREATE MATERIALIZED VIEW', source: view(1), txmode: 'script', destructive: false },
      { kw: 'DROP VIEW', source: view(2), txmode: 'script', destructive: true },
      { kw: 'DROP MATERIALIZED VIEW', source: view(3), txmode: 'script', destructive: true },
      { kw: 'CREATE OR REPLACE FUNCTION', source: trig(0), txmode: 'script', destructive: false },
      { kw: 'CREATE OR REPLACE TRIGGER', source: trig(0), txmode: 'script', destructive: false },
      { kw: 'DROP TRIGGER', source: trig(1), txmode: 'script', destructive: true },
      { kw: 'CREATE TRIGGER', source: trig(2), txmode: 'script', destructive: false },
    ]);
  });

  it('applies script 2: views replaced (a materialized one rebuilt from the rows of each target) and dropped', async () => {
    // Each target holds other rows when script 2 runs: the rebuilt view holds that target's.
    await env.queryIn(T1, `INSERT INTO mgttest.orders (amount) VALUES (70), (30)`);
    await env.queryIn(T2, `INSERT INTO mgttest.orders (amount) VALUES (60)`);
    await env.admin.query('CALL admmgt.applyScripts()');
    await env.makeTenants([T3]);
    expect(await env.versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 2, [T3]: 2 });
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 2 });
    const expected = await views(TPL);
    expect(expected.map((x) => x.name)).toEqual(['big_orders']);
    for (const db of [TPL, T1, T2, T3]) {
      expect(await views(db), db).toEqual(expected);
      expect(await columnNames(db, 'big_orders')).toEqual(['id', 'amount', 'label', 'status']);
      expect((await matviews(db)).map((m) => m.name)).toEqual(['order_totals']);
      expect(await columnNames(db, 'order_totals')).toEqual(['n', 'total', 'top']);
    }
    expect(await env.queryIn(T1, `SELECT n::int, total::text, top::text FROM mgttest.order_totals`)).toEqual([{ n: 2, total: '100.00', top: '70.00' }]);
    expect(await env.queryIn(T2, `SELECT n::int, total::text FROM mgttest.order_totals`)).toEqual([{ n: 1, total: '60.00' }]);
    // The replaced view reads the new condition; its INSTEAD OF trigger survived the replace.
    expect(await env.queryIn(T1, `SELECT amount::text, status FROM mgttest.big_orders`)).toEqual([{ amount: '70.00', status: null }]);
    await env.queryIn(T1, 'TRUNCATE mgttest.orders, mgttest.audit');
    await env.queryIn(T2, 'TRUNCATE mgttest.orders, mgttest.audit');
  });

  it('applies script 2: a trigger replaced with a new function body and events, one dropped, one added on an existing function', async () => {
    for (const db of [TPL, T1, T2, T3]) {
      expect(await triggers(db), db).toEqual({
        big_orders_insert: 'CREATE TRIGGER big_orders_insert INSTEAD OF INSERT ON mgttest.big_orders FOR EACH ROW EXECUTE FUNCTION mgttest.insert_big_order()',
        orders_audit: 'CREATE TRIGGER orders_audit AFTER INSERT ON mgttest.orders FOR EACH ROW EXECUTE FUNCTION mgttest.audit_orders()',
        orders_note_audit: 'CREATE TRIGGER orders_note_audit AFTER UPDATE OF note ON mgttest.orders FOR EACH ROW EXECUTE FUNCTION mgttest.audit_orders()',
        orders_truncated: 'CREATE TRIGGER orders_truncated AFTER TRUNCATE ON mgttest.orders FOR EACH STATEMENT EXECUTE FUNCTION mgttest.audit_truncate()',
      });
      // The dropped trigger's function stays.
      expect((await triggerFunctions(db)).map((f) => f.name)).toEqual(['audit_orders', 'audit_truncate', 'insert_big_order', 'stamp_orders']);
      expect(await srcOf(db, 'audit_orders')).toBe(auditBody('v2'));
      await env.queryIn(db, 'TRUNCATE mgttest.orders, mgttest.audit');
      await env.queryIn(db, `INSERT INTO mgttest.orders (amount) VALUES (10);
        UPDATE mgttest.orders SET amount = 20, status = 's';
        UPDATE mgttest.orders SET note = 'n'`);
      // amount changed, but orders_stamp is gone; only the INSERT and the note update are audited.
      expect(await env.queryIn(db, `SELECT o.note AS order_note, a.op, a.note FROM mgttest.audit a JOIN mgttest.orders o ON o.id = a.order_id ORDER BY a.id`), db)
        .toEqual([{ order_note: 'n', op: 'INSERT', note: 'v2' }, { order_note: 'n', op: 'UPDATE', note: 'v2' }]);
    }
  });

  it('refresh copies a trigger function changed in the template into every tenant, and the tenants\' triggers run the new body', async () => {
    await env.queryIn(TPL, `CREATE OR REPLACE FUNCTION mgttest.audit_orders() RETURNS trigger LANGUAGE plpgsql
      SET search_path = pg_catalog, pg_temp AS $$ BEGIN INSERT INTO mgttest.audit (op, order_id, note) VALUES (TG_OP, NEW.id, 'v3 from the template'); RETURN NULL; END $$`);
    const v3 = await srcOf(TPL, 'audit_orders');
    for (const db of [T1, T2, T3]) expect(await srcOf(db, 'audit_orders')).toBe(auditBody('v2'));
    await env.admin.query('CALL admmgt.refesh_stored_procedures()');
    expect(await admin(`SELECT operation, dbname, message FROM admmgt.failures`)).toEqual([]);
    expect(await admin(`SELECT dbname, outcome FROM admmgt.script_log WHERE operation = 'refresh' ORDER BY dbname`))
      .toEqual([T1, T2, T3].map((dbname) => ({ dbname, outcome: 'ok' })));
    for (const db of [T1, T2, T3]) {
      expect(await srcOf(db, 'audit_orders'), db).toBe(v3);
      const [fn] = (await triggerFunctions(db)).filter((f) => f.name === 'audit_orders');
      expect({ definer: fn!.definer, config: fn!.config, owner: fn!.owner }).toEqual({ definer: false, config: ['search_path=pg_catalog, pg_temp'], owner: me });
      await env.queryIn(db, 'TRUNCATE mgttest.orders; TRUNCATE mgttest.audit');
      await env.queryIn(db, `INSERT INTO mgttest.orders (amount) VALUES (1)`);
      expect(await env.queryIn(db, `SELECT op, note FROM mgttest.audit`), db).toEqual([{ op: 'INSERT', note: 'v3 from the template' }]);
    }
  });

  it('leaves to PostgreSQL what only it can judge: an INSTEAD OF trigger on a table fails on the template, which stops the script', async () => {
    await env.addScript({
      id: 3, description: 'instead of on a table',
      triggers: [
        { schema: S, table: 'orders', name: 'orders_fn_only', events: 'DELETE', function: 'new_fn', functionBody: 'BEGIN RETURN OLD; END' },
        { schema: S, table: 'orders', name: 'orders_instead', timing: 'INSTEAD OF', events: 'INSERT', function: 'new_fn' },
      ],
    });
    await env.admin.query('CALL admmgt.applyScripts()');
    const [s3] = await admin<{ status: number; last_error: string }>('SELECT status, last_error FROM admmgt.scripts WHERE id = 3');
    expect(s3!.status).toBe(3);
    expect(s3!.last_error).toMatch(/"orders" is a table .*at: CREATE TRIGGER orders_instead INSTEAD OF INSERT ON mgttest\.orders/);
    expect(await env.versions()).toEqual({ [TPL]: 2, [T1]: 2, [T2]: 2, [T3]: 2 });
    // The script's transaction rolled back on the template: not even the function of its first row stayed.
    for (const db of [TPL, T1]) {
      expect(Object.keys(await triggers(db))).not.toContain('orders_fn_only');
      expect((await triggerFunctions(db)).map((f) => f.name)).not.toContain('new_fn');
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('applyScripts: bad view and trigger rows are refused before any target is touched, naming the row', () => {
  const B1 = 'applyvt_b1';

  beforeAll(async () => {
    await fresh([B1]);
  });

  const good: ScriptSpec = {
    id: 1, description: 'good',
    tables: [{ schema: S, name: 'good', columns: [{ name: 'id', type: 'int', primaryKey: true }, { name: 'amount', type: 'int' }] }],
  };

  type Case = { what: string; view?: ViewSpec; trigger?: TriggerSpec; code: string; message: RegExp };
  const trg = (t: Partial<TriggerSpec>): TriggerSpec => ({ schema: S, table: 'good', name: 'good_trg', function: 'good_fn', ...t });
  const body = 'BEGIN RETURN NEW; END';
  const cases: Case[] = [
    { what: 'a view drop without confirm', view: { schema: S, name: 'v', action: 'drop' },
      code: '55000', message: /drops view mgttest\.v without confirm/ },
    { what: 'a materialized view drop without confirm', view: { schema: S, name: 'v', materialized: true, action: 'drop' },
      code: '55000', message: /drops materialized view mgttest\.v without confirm/ },
    { what: 'a view query with a second statement', view: { schema: S, name: 'v', query: 'SELECT 1; DROP TABLE mgttest.good' },
      code: '42601', message: /invalid view query .*it contains the character ';' outside a string/ },
    { what: 'a view query with a comment', view: { schema: S, name: 'v', query: 'SELECT 1 AS one -- and more' },
      code: '42601', message: /it contains a comment/ },
    { what: 'a view query in a dollar quote', view: { schema: S, name: 'v', query: 'SELECT $$x$$ AS one' },
      code: '42601', message: /it contains the character '\$'/ },
    { what: 'a view without a query', view: { schema: S, name: 'v' },
      code: '23502', message: /view query is missing/ },
    { what: 'a view drop that gives a query', view: { schema: S, name: 'v', action: 'drop', confirm: true, query: 'SELECT 1' },
      code: '22023', message: /drops view mgttest\.v but also gives a query/ },
    { what: 'a bad view name', view: { schema: S, name: 'v; drop', query: 'SELECT 1' },
      code: '42602', message: /invalid view name 'v; drop'/ },
    { what: 'a view in admmgt\'s schema', view: { schema: 'admmgt', name: 'v', query: 'SELECT 1' },
      code: '42939', message: /names the reserved schema admmgt/ },
    { what: 'an unknown event', trigger: trg({ events: 'INSERT OR DROP', functionBody: body }),
      code: '42601', message: /invalid events 'INSERT OR DROP'/ },
    { what: 'events with a second statement', trigger: trg({ events: 'INSERT; DROP TABLE mgttest.good', functionBody: body }),
      code: '42601', message: /invalid events/ },
    { what: 'events ending in OR', trigger: trg({ events: 'INSERT OR', functionBody: body }),
      code: '42601', message: /invalid events 'INSERT OR'/ },
    { what: 'UPDATE OF without columns', trigger: trg({ events: 'UPDATE OF', functionBody: body }),
      code: '42601', message: /invalid events 'UPDATE OF'/ },
    { what: 'an event column that is no identifier', trigger: trg({ events: 'UPDATE OF amount, "x y"', functionBody: body }),
      code: '42602', message: /invalid event column '"x y"'/ },
    { what: 'a WHEN condition with a comment', trigger: trg({ when: 'NEW.amount > 0 /* x */', functionBody: body }),
      code: '42601', message: /invalid WHEN condition .*it contains a comment/ },
    { what: 'a WHEN condition that closes its parentheses', trigger: trg({ when: 'true) EXECUTE FUNCTION mgttest.evil(', functionBody: body }),
      code: '42601', message: /invalid WHEN condition .*unbalanced/ },
    { what: 'a WHEN condition with a comma', trigger: trg({ when: 'true, false', functionBody: body }),
      code: '42601', message: /invalid WHEN condition .*a comma outside parentheses/ },
    { what: 'a bad trigger name', trigger: trg({ name: 'bad name', functionBody: body }),
      code: '42602', message: /invalid trigger name 'bad name'/ },
    { what: 'a bad function name', trigger: trg({ function: 'mgttest.f', functionBody: body }),
      code: '42602', message: /invalid function name 'mgttest.f'/ },
    { what: 'a bad table name', trigger: trg({ table: 'good"; drop', functionBody: body }),
      code: '42602', message: /invalid table name/ },
    { what: 'a TRUNCATE event FOR EACH ROW', trigger: trg({ events: 'INSERT OR TRUNCATE', functionBody: body }),
      code: '0A000', message: /has a TRUNCATE event FOR EACH ROW/ },
    { what: 'an INSTEAD OF trigger FOR EACH STATEMENT', trigger: trg({ timing: 'INSTEAD OF', forEach: 'STATEMENT', functionBody: body }),
      code: '0A000', message: /is an INSTEAD OF trigger FOR EACH STATEMENT/ },
    { what: 'a blank function body', trigger: trg({ functionBody: '  ' }),
      code: '22023', message: /the function body of .* is blank/ },
    { what: 'a drop that gives a function body', trigger: trg({ action: 'drop', functionBody: body }),
      code: '22023', message: /drops trigger good_trg but also gives a function body/ },
  ];

  it.each(cases)('refuses $what, naming the row, and changes nothing', async ({ view, trigger, code, message }) => {
    await env.addScript(good);
    await env.addScript({ id: 2, description: 'bad', views: view ? [view] : [], triggers: trigger ? [trigger] : [] });
    const table = view ? 'script_views' : 'script_triggers';
    const [{ id }] = await admin<{ id: string }>(`SELECT min(id)::text AS id FROM admmgt.${table} WHERE scriptid = 2`) as [{ id: string }];
    const before = await runCount();
    try {
      const err = await adminError('CALL admmgt.applyScripts()');
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
      expect(err.message).toContain(`admmgt.${table} id ${id}`);
      expect(err.hint).toBeTruthy();
      // Not even the good script 1 ran: nothing reached the template or the tenant.
      for (const db of [TPL, B1]) {
        expect(await tables(db)).toEqual([]);
        expect(await ledger(db)).toEqual([]);
      }
      expect(await runCount()).toBe(before);
      expect(await scriptStatus()).toEqual({ 1: 1, 2: 1 });
      const planErr = await adminError('SELECT * FROM admmgt.plan_scripts()');
      expect([planErr.code, planErr.message]).toEqual([err.code, err.message]);
    } finally {
      await env.admin.query(`DELETE FROM admmgt.script_views WHERE scriptid = 2; DELETE FROM admmgt.script_triggers WHERE scriptid = 2;
        DELETE FROM admmgt.scripts WHERE id = 2; DELETE FROM admmgt.script_table_columns WHERE scriptid = 1;
        DELETE FROM admmgt.script_tables WHERE scriptid = 1; DELETE FROM admmgt.scripts WHERE id = 1`);
    }
  });

  it('applies a trigger whose events are written in any case and spacing once the bad script is gone', async () => {
    await env.addScript({ ...good, triggers: [trg({ events: ' update  OF\n amount ,id or\tinsert ', functionBody: body })] });
    await env.admin.query('CALL admmgt.applyScripts()');
    for (const db of [TPL, B1]) {
      expect(await triggers(db)).toEqual({
        good_trg: 'CREATE TRIGGER good_trg AFTER INSERT OR UPDATE OF amount, id ON mgttest.good FOR EACH ROW EXECUTE FUNCTION mgttest.good_fn()',
      });
    }
  });
});
