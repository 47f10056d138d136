// The list helpers (012_lists.sql and the helpers built on them) work on positions instead of
// indexing lists of work items in queries, which costs more per item the longer the list is
// (bench/helpers.ts measures that). These tests hold them to what the procedures rely on: the
// order of a list, a target's items kept together, first appearances, NULL lists. Run in a real
// admin database on registry rows of tenants that exist only as rows: nothing connects anywhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let ids: Record<string, number> = {};

/** An item as SQL: kind, target (by tenant name) and script id; one statement naming them. */
const item = (kind: string, tenant: string, scriptid: number) =>
  `admmgt._item('${kind}', ${ids[tenant]}, '${tenant}', NULL, '${tenant}', ${scriptid}, ARRAY['SELECT ''${kind} ${tenant} ${scriptid}'''], true)`;
const list = (...items: string[]) => (items.length ? `ARRAY[${items.join(', ')}]` : `'{}'::admmgt.work_item[]`);

/** A list of work items as "kind tenant scriptid" lines, in its order. */
async function itemsOf(expr: string): Promise<string[]> {
  const rows = await env.rows<{ line: string }>(
    `SELECT concat_ws(' ', u.kind, u.dbname, u.scriptid) AS line FROM unnest(${expr}) WITH ORDINALITY AS u ORDER BY u.ordinality`);
  return rows.map((r) => r.line);
}

/** A list of targets as "tenant version" lines, in its order. */
async function targetsOf(expr: string): Promise<string[]> {
  const rows = await env.rows<{ line: string }>(
    `SELECT concat_ws(' ', u.dbname, u.version) AS line FROM unnest(${expr}) WITH ORDINALITY AS u ORDER BY u.ordinality`);
  return rows.map((r) => r.line);
}

/** The registry's targets of these tenants, in the order given. */
const targets = (...tenants: string[]) =>
  `ARRAY(SELECT t FROM unnest(admmgt._update_targets('database'::text)) t JOIN unnest(ARRAY[${tenants.map((t) => `'${t}'`).join(', ')}]) WITH ORDINALITY AS n(name, k) ON n.name = t.dbname ORDER BY n.k)`;

beforeAll(async () => {
  env = await createEnv('lists');
  await env.admin.query(`
    INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('lists_tpl', true, 2, 1);
    INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion, tags)
    VALUES ('ta', 2, 1, '{blue}'), ('tb', 2, 1, '{}'), ('tc', 2, 1, '{blue}'), ('td', 2, 3, '{}')`);
  const rows = await env.rows<{ dbname: string; id: string }>(`SELECT dbname, id FROM admmgt.vendor_db_settings`);
  ids = Object.fromEntries(rows.map((r) => [r.dbname, Number(r.id)]));
}, 120_000);

afterAll(async () => {
  await env?.close();
});

describe('the list helpers', () => {
  it('_without leaves out (or keeps only) the items of a set of targets, in their order; a NULL set holds none', async () => {
    const items = list(item('script', 'tb', 2), item('script', 'ta', 2), item('script', 'tb', 3), item('script', 'tc', 2));
    expect(await itemsOf(`admmgt._without(${items}, ARRAY[${ids.tb}]::bigint[])`)).toEqual(['script ta 2', 'script tc 2']);
    expect(await itemsOf(`admmgt._without(${items}, ARRAY[${ids.tb}]::bigint[], true)`)).toEqual(['script tb 2', 'script tb 3']);
    expect(await itemsOf(`admmgt._without(${items}, NULL)`)).toEqual(['script tb 2', 'script ta 2', 'script tb 3', 'script tc 2']);
    expect(await itemsOf(`admmgt._without(${items}, NULL, true)`)).toEqual([]);
    expect(await itemsOf(`admmgt._without(${list()}, ARRAY[1]::bigint[])`)).toEqual([]);
    expect((await env.rows<{ n: number }>(`SELECT cardinality(admmgt._without(NULL, ARRAY[1]::bigint[])) AS n`))[0]?.n).toBe(0);
    expect((await env.rows<{ n: number }>(`SELECT cardinality(admmgt._select(NULL, NULL, NULL, NULL)) AS n`))[0]?.n).toBe(0);
  });

  it('_items_of splits off the items of the first targets to appear, and keeps the order of both parts', async () => {
    const items = list(item('script', 'tc', 2), item('script', 'ta', 2), item('script', 'tc', 3), item('script', 'tb', 2), item('script', 'ta', 3));
    expect(await itemsOf(`admmgt._items_of(${items}, 2, true)`)).toEqual(['script tc 2', 'script ta 2', 'script tc 3', 'script ta 3']);
    expect(await itemsOf(`admmgt._items_of(${items}, 2, false)`)).toEqual(['script tb 2']);
  });

  it('_deploy_items puts each target\'s scripts, refresh and maintenance together, targets in the given order, others after by id', async () => {
    const apply = list(item('script', 'tb', 2), item('script', 'ta', 2), item('script', 'tb', 3));
    const refresh = list(item('routines', 'ta', 2), item('routines', 'td', 3), item('routines', 'tb', 3));
    const maint = list(item('partitions', 'tb', 3), item('partitions', 'tc', 1), item('partitions', 'ta', 2));
    expect(await itemsOf(`admmgt._deploy_items(${targets('tb', 'ta')}, ${apply}, ${refresh}, ${maint})`)).toEqual([
      'script tb 2', 'script tb 3', 'routines tb 3', 'partitions tb 3',
      'script ta 2', 'routines ta 2', 'partitions ta 2',
      'partitions tc 1', 'routines td 3',
    ]);
    expect(await itemsOf(`admmgt._deploy_items(${targets('ta')}, ${list()}, ${list()}, ${list()})`)).toEqual([]);
  });

  it('_untouched counts the targets with no item left', async () => {
    expect((await env.rows<{ n: number }>(
      `SELECT admmgt._untouched(ARRAY[${ids.ta}, ${ids.tb}, ${ids.tb}, ${ids.tc}]::bigint[], ARRAY[${ids.tb}]::bigint[]) AS n`))[0]?.n).toBe(2);
    expect((await env.rows<{ n: number }>(`SELECT admmgt._untouched(ARRAY[${ids.ta}]::bigint[], '{}') AS n`))[0]?.n).toBe(1);
  });

  it('_at_goals moves each target to the last script it gets, the others as they are', async () => {
    const items = list(item('script', 'tb', 2), item('script', 'tb', 4), item('routines', 'ta', 9), item('script', 'td', 2));
    expect(await targetsOf(`admmgt._at_goals(${targets('ta', 'tb', 'tc', 'td')}, ${items})`)).toEqual(['ta 1', 'tb 4', 'tc 1', 'td 3']);
  });

  it('_distinct_targets keeps each target where it first appears; _select keeps the order of the chosen', async () => {
    expect(await targetsOf(`admmgt._distinct_targets(${targets('tc', 'ta')} || ${targets('tb', 'tc', 'ta', 'td')})`))
      .toEqual(['tc 1', 'ta 1', 'tb 1', 'td 3']);
    expect(await targetsOf(`admmgt._select(${targets('tc', 'tb', 'ta')}, NULL, NULL, 'blue')`)).toEqual(['tc 1', 'ta 1']);
    expect(await targetsOf(`admmgt._select(${targets('tc', 'tb', 'ta')}, ARRAY[' TB ', 'ta'], NULL, NULL)`)).toEqual(['tb 1', 'ta 1']);
  });

  it('_queue writes one row per target with its items in order, ord its first position, when they are not next to each other', async () => {
    const run = (await env.rows<{ id: string }>(`INSERT INTO admmgt.runs (operation) VALUES ('apply') RETURNING run_id AS id`))[0]?.id;
    const items = list(item('script', 'tb', 2), item('script', 'ta', 2), item('script', 'tb', 3), item('routines', 'tc', 1), item('script', 'ta', 3));
    expect((await env.rows<{ n: number }>(`SELECT admmgt._queue(${run}, ${items}) AS n`))[0]?.n).toBe(3);
    const rows = await env.rows<{ dbname: string; ord: number; items: string }>(
      `SELECT v.dbname, q.ord, q.items FROM admmgt.work_queue q JOIN admmgt.vendor_db_settings v ON v.id = q.target_id
        WHERE q.run_id = ${run} ORDER BY q.ord`);
    expect(rows.map((r) => r.dbname)).toEqual(['tb', 'ta', 'tc']);
    expect(rows.map((r) => r.ord)).toEqual([1, 2, 4]);
    expect(await itemsOf(`'${rows[0]?.items.replaceAll("'", "''")}'::admmgt.work_item[]`)).toEqual(['script tb 2', 'script tb 3']);
    expect(await itemsOf(`'${rows[1]?.items.replaceAll("'", "''")}'::admmgt.work_item[]`)).toEqual(['script ta 2', 'script ta 3']);
    expect(await itemsOf(`'${rows[2]?.items.replaceAll("'", "''")}'::admmgt.work_item[]`)).toEqual(['routines tc 1']);
  });
});
