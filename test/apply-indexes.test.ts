// Indexes as rows (script_indexes): in the script's transaction, or CONCURRENTLY as a part of its
// own; on a partitioned table partition by partition while another session keeps writing; a
// CONCURRENTLY build that fails in one tenant, leaving an INVALID index, then a rerun that drops
// it and finishes without running any part twice. Every database of this file starts with applyidx_.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IndexSpec, ScriptSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applyidx_tpl';
const { admin, adminError, fresh, ledger } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applyidx');
});
afterAll(async () => {
  await env?.close();
});

interface IndexRow {
  table: string;
  index: string;
  valid: boolean;
  unique: boolean;
  parent: string | null;
}

/** Every index of schema mgttest: its table, validity, uniqueness and the index it is attached to. */
async function indexes(db: string): Promise<IndexRow[]> {
  return env.queryIn<IndexRow>(db, `
    SELECT t.relname AS table, c.relname AS index, i.indisvalid AS valid, i.indisunique AS unique, p.relname AS parent
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_inherits h ON h.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = h.inhparent
     WHERE n.nspname = 'mgttest' AND NOT i.indisprimary ORDER BY t.relname, c.relname`);
}

/** The parts the target's ledger has finished for a script. */
async function parts(db: string, scriptid: number): Promise<number[]> {
  return (await env.queryIn<{ part: number }>(db,
    'SELECT part FROM admmgt.applied_parts WHERE scriptid = $1 AND finished_at IS NOT NULL ORDER BY part', [scriptid])).map((r) => r.part);
}

const tablesScript: ScriptSpec = {
  id: 1,
  description: 'a partitioned table and a plain one',
  tables: [
    {
      schema: S, name: 'events',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'at', type: 'timestamptz', nullable: false },
        { name: 'kind', type: 'text' },
      ],
      partitions: [{ column: 'at', type: 'range', value: 'month' }],
    },
    {
      schema: S, name: 'items',
      columns: [
        { name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'code', type: 'text' },
        { name: 'qty', type: 'int' },
      ],
    },
    {
      schema: S, name: 'marks',
      columns: [{ name: 'note', type: 'text' }],
    },
  ],
};

const indexScript: ScriptSpec = {
  id: 2,
  description: 'indexes: in the transaction and concurrently, on a plain and a partitioned table',
  indexes: [
    { schema: S, table: 'items', name: 'items_qty', columns: ['qty DESC NULLS LAST'], include: ['code'] },
    { schema: S, table: 'items', name: 'items_code', columns: ['code'], unique: true, concurrent: true },
    { schema: S, table: 'events', name: 'events_kind', columns: ['kind'], where: "kind <> 'noise'", concurrent: true },
  ],
  // A SQL step: it runs in the script's transaction with items_qty (part 1), before the builds outside it (parts 2 and 3).
  sql: [{ seq: 1, body: `INSERT INTO mgttest.marks (note) VALUES ('script 2')` }],
};

describe('indexes', () => {
  let writer: pg.Client;
  let writes = 0;
  let writerError: unknown;
  let stop = false;
  let writing: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    await fresh(['applyidx_t1', 'applyidx_t2']);
    await env.addScript(tablesScript);
    await admin('CALL admmgt.applyScripts()');
    await admin('CALL admmgt.applyMaintenance(t_numdays => 70)');
    for (const db of [TPL, 'applyidx_t1', 'applyidx_t2']) {
      await env.queryIn(db, `INSERT INTO mgttest.events (at, kind)
        SELECT now() + g * interval '20 days', 'k' || g FROM generate_series(0, 3) g`);
      await env.queryIn(db, `INSERT INTO mgttest.items (code, qty) SELECT 'c' || g, g FROM generate_series(1, 50) g`);
    }
    // One tenant holds a duplicate code: its unique index cannot be built.
    await env.queryIn('applyidx_t2', `INSERT INTO mgttest.items (code, qty) VALUES ('c1', 99)`);

    // Another session keeps writing into the partitioned table of t1 while the indexes build.
    writer = new pg.Client({ connectionString: env.urlFor('applyidx_t1') });
    await writer.connect();
    writing = (async () => {
      while (!stop) {
        try {
          await writer.query(`INSERT INTO mgttest.events (at, kind) VALUES (now() + (random() * 60) * interval '1 day', 'w')`);
          writes++;
        } catch (e) {
          writerError = e;
          return;
        }
      }
    })();
    await env.addScript(indexScript);
    await admin('CALL admmgt.applyScripts()');
    stop = true;
    await writing;
    await writer.end();
  });

  it('builds them in the template and the tenants; the partitioned one partition by partition, attached to the parent', async () => {
    for (const db of [TPL, 'applyidx_t1']) {
      const all = await indexes(db);
      expect(all.filter((i) => i.table === 'items')).toEqual([
        { table: 'items', index: 'items_code', valid: true, unique: true, parent: null },
        { table: 'items', index: 'items_qty', valid: true, unique: false, parent: null },
      ]);
      const events = all.filter((i) => i.table === 'events');
      expect(events).toEqual([{ table: 'events', index: 'events_kind', valid: true, unique: false, parent: null }]);
      const onPartitions = all.filter((i) => i.table.startsWith('events_'));
      const partitionNames = (await env.partitions(db, `${S}.events`)).map((p) => p.name).sort();
      expect(partitionNames.length).toBeGreaterThanOrEqual(3);
      expect(onPartitions.map((i) => i.table).sort()).toEqual(partitionNames);
      expect(onPartitions.every((i) => i.valid && i.parent === 'events_kind')).toBe(true);
      const [{ def }] = await env.queryIn<{ def: string }>(db, `SELECT pg_get_indexdef('mgttest.events_kind'::regclass) AS def`) as [{ def: string }];
      expect(def).toBe(`CREATE INDEX events_kind ON ONLY mgttest.events USING btree (kind) WHERE (kind <> 'noise'::text)`);
      const [{ qty }] = await env.queryIn<{ qty: string }>(db, `SELECT pg_get_indexdef('mgttest.items_qty'::regclass) AS qty`) as [{ qty: string }];
      expect(qty).toBe('CREATE INDEX items_qty ON mgttest.items USING btree (qty DESC NULLS LAST) INCLUDE (code)');
      expect(await ledger(db)).toEqual([1, 2]);
      expect(await env.queryIn(db, 'SELECT note FROM mgttest.marks')).toEqual([{ note: 'script 2' }]);
    }
  });

  it('let the other session write all along', async () => {
    expect(writerError).toBeUndefined();
    expect(writes).toBeGreaterThan(0);
    const [{ n }] = await env.queryIn<{ n: number }>('applyidx_t1', `SELECT count(*)::int AS n FROM mgttest.events WHERE kind = 'w'`) as [{ n: number }];
    expect(n).toBe(writes);
  });

  it('fails the tenant whose data breaks the unique index: it keeps the parts before, the INVALID index, and its version', async () => {
    expect(await env.versions()).toMatchObject({ [TPL]: 2, applyidx_t1: 2, applyidx_t2: 1 });
    const t2 = await indexes('applyidx_t2');
    expect(t2.find((i) => i.index === 'items_code')).toMatchObject({ valid: false });
    expect(t2.find((i) => i.index === 'items_qty')).toMatchObject({ valid: true });
    expect(await ledger('applyidx_t2')).toEqual([1]);
    expect(await parts('applyidx_t2', 2)).toEqual([1]);
    const [failure] = await admin<{ message: string }>(`SELECT message FROM admmgt.failures WHERE dbname = 'applyidx_t2'`);
    expect(failure!.message).toMatch(/^admmgt\.script_indexes id \d+: could not create unique index "items_code"/);
    // The script is not failed: only a tenant is.
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 2')).toEqual([{ status: 1 }]);
  });

  it('once the data is fixed, a rerun drops the INVALID index, builds it, and runs no finished part twice', async () => {
    await env.queryIn('applyidx_t2', `DELETE FROM mgttest.items WHERE qty = 99`);
    await admin('CALL admmgt.applyScripts()');
    expect(await env.versions()).toMatchObject({ applyidx_t2: 2 });
    const t2 = await indexes('applyidx_t2');
    expect(t2.filter((i) => i.index === 'items_code')).toEqual([{ table: 'items', index: 'items_code', valid: true, unique: true, parent: null }]);
    expect(await parts('applyidx_t2', 2)).toEqual([1, 2, 3]);
    // Part 1 (items_qty and the SQL step, in one transaction) ran once: its row is there once.
    expect(await env.queryIn('applyidx_t2', 'SELECT note FROM mgttest.marks')).toEqual([{ note: 'script 2' }]);
    expect(await admin('SELECT status FROM admmgt.scripts WHERE id = 2')).toEqual([{ status: 2 }]);
  });

  it('gives partitions made later by maintenance the index, and tenants made later all of them', async () => {
    await admin('CALL admmgt.applyMaintenance(t_numdays => 150)');
    await env.makeTenants(['applyidx_t3']);
    for (const db of [TPL, 'applyidx_t1', 'applyidx_t3']) {
      const onPartitions = (await indexes(db)).filter((i) => i.table.startsWith('events_'));
      const partitionNames = (await env.partitions(db, `${S}.events`)).map((p) => p.name).sort();
      expect(onPartitions.map((i) => i.table).sort()).toEqual(partitionNames);
      expect(onPartitions.every((i) => i.valid && i.parent === 'events_kind')).toBe(true);
    }
  });

  it('refuses a bad index row before any target is touched, naming it', async () => {
    const cases: [Partial<IndexSpec>, string, RegExp][] = [
      [{ columns: ['code; drop'] }, '42602', /invalid index column 'code; drop' in admmgt\.script_indexes id \d+/],
      [{ columns: ['lower(code)'] }, '42602', /invalid index column 'lower\(code\)'/],
      [{ where: 'qty > 0; drop table x' }, '42601', /invalid index predicate/],
      [{ name: 'bad name' }, '42602', /invalid index name 'bad name'/],
      [{ include: ['code DESC'] }, '42602', /invalid index column 'code DESC'/],
    ];
    for (const [change, code, message] of cases) {
      const runs = (await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n;
      await env.addScript({ id: 3, description: 'bad index', indexes: [{ schema: S, table: 'items', name: 'items_x', columns: ['qty'], ...change }] });
      const e = await adminError('CALL admmgt.applyScripts()');
      expect([e.code, e.message]).toEqual([code, expect.stringMatching(message)]);
      expect(e.hint).toBeTruthy();
      expect((await admin<{ n: number }>('SELECT count(*)::int AS n FROM admmgt.runs'))[0]!.n).toBe(runs);
      expect((await indexes(TPL)).some((i) => i.index === 'items_x')).toBe(false);
      await admin('DELETE FROM admmgt.script_indexes WHERE scriptid = 3; DELETE FROM admmgt.scripts WHERE id = 3');
    }
    expect(await admin('SELECT count(*)::int AS n FROM admmgt.script_indexes WHERE scriptid = 3')).toEqual([{ n: 0 }]);
  });
});
