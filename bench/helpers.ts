// node dist/bench/helpers.js [--targets 200,2000,6000] [--runs 3] [--url URL]
//
// How the list helpers that every fleet-wide CALL runs before its first target grow with the fleet:
// choosing the targets, building one item per target, leaving out the targets whose upkeep records
// hold what they would get, counting those, splitting off the canaries and merging a deploy's three
// lists. Each is timed inside one PL/pgSQL block, called the way the procedures call it (lists in
// PL/pgSQL variables, the registry's list straight from _update_targets), on a registry of N
// created tenants that exist only as rows: nothing connects anywhere. An item holds 33 statements,
// as the demo's script 1 does. Prints ms per call (median of --runs) at each N and how much each
// grew from one N to the next against the growth of N: 1.0 is linear. Never part of npm test.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { installControlPlane } from '../src/install.js';
import { client, median, withServer } from './support.js';

const { values: args } = parseArgs({
  options: {
    targets: { type: 'string', default: '200,2000,6000' },
    runs: { type: 'string', default: '3' },
    url: { type: 'string' },
  },
});
const SIZES = String(args.targets).split(',').map(Number);
const RUNS = Number(args.runs);
const DB = 'helpers_bench';

// One timed call per line: a label and the PL/pgSQL statement, which may use v_targets (the chosen
// targets), v_items (one item per target), v_ids (every target's id) and v_sink.
const CALLS: [string, string][] = [
  ['_update_targets', `v_sink_t := admmgt._update_targets('database'::text)`],
  ['_select(_update_targets(..))', `v_sink_t := admmgt._select(admmgt._update_targets('database'::text), NULL, NULL, NULL)`],
  ['_refresh_items', `v_sink := admmgt._refresh_items(v_stmts, v_targets)`],
  ['_without, all held', `v_sink := admmgt._without(v_items, v_ids)`],
  ['_without, 3 held', `v_sink := admmgt._without(v_items, v_ids[1:3])`],
  ['_untouched', `v_n := admmgt._untouched(admmgt._item_ids(v_items), admmgt._item_ids(v_items) || admmgt._item_ids(v_items))`],
  ['_at_goals', `v_sink_t := admmgt._at_goals(v_targets, v_scripts)`],
  ['_refresh_held', `v_held := admmgt._refresh_held(v_items, 'routines')`],
  ['_fingerprint_items', `v_sink := admmgt._fingerprint_items(v_targets, false)`],
  ['_items_of, canary', `v_sink := admmgt._items_of(v_items, 1, true)`],
  ['_items_of, the rest', `v_sink := admmgt._items_of(v_items, 1, false)`],
  ['_deploy_items (3 per target)', `v_sink := admmgt._deploy_items(v_targets, v_items, v_items, v_items)`],
  ['_distinct_targets', `v_sink_t := admmgt._distinct_targets(v_targets || v_targets)`],
];

function block(): string {
  const timed = CALLS.map(([label, stmt], i) => `
    v_t := clock_timestamp();
    ${stmt};
    INSERT INTO pg_temp.helper_times VALUES (${i}, ${JSON.stringify(label).replaceAll('"', "'")}, extract(epoch FROM clock_timestamp() - v_t) * 1000);`).join('');
  return `DO $b$
DECLARE
    v_stmts text[] := ARRAY(SELECT format('CREATE OR REPLACE FUNCTION app.f%s(p_a int, p_b text) RETURNS int LANGUAGE sql AS %L', s,
                                          'SELECT p_a + length(p_b) + ' || s) FROM generate_series(1, 33) s);
    v_targets admmgt.targets[] := admmgt._update_targets('database'::text);
    v_items admmgt.work_item[] := admmgt._refresh_items(v_stmts, v_targets);
    v_ids bigint[] := ARRAY(SELECT t.id FROM unnest(v_targets) t);
    v_scripts admmgt.work_item[] := '{}';
    v_item admmgt.work_item;
    v_held bigint[];
    v_sink admmgt.work_item[];
    v_sink_t admmgt.targets[];
    v_n int;
    v_t timestamptz;
BEGIN
    -- The same items as script items, for _at_goals.
    FOREACH v_item IN ARRAY v_items LOOP
        v_item.kind := 'script';
        v_scripts := v_scripts || v_item;
    END LOOP;
    ${timed}
END
$b$`;
}

async function main(): Promise<void> {
  await withServer(args.url, 'admmgt-helpers-', {}, async (server) => {
    const version = (await server.query('SHOW server_version')).rows[0].server_version as string;
    console.log(`admmgt helpers: PostgreSQL ${version}, ${RUNS} run(s), load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    await server.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await server.query(`CREATE DATABASE ${DB}`);
    const db = await client(DB);
    try {
      await installControlPlane(db);
      const ms = new Map<number, number[][]>();
      for (const n of SIZES) {
        await db.query(`BEGIN;
          DELETE FROM admmgt.vendor_db_settings;
          INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status, scriptversion) VALUES ('helpers_tpl', true, 2, 1);
          INSERT INTO admmgt.vendor_db_settings (dbname, status, scriptversion)
          SELECT 'helpers_t' || lpad(i::text, 6, '0'), 2, 1 FROM generate_series(1, ${n}) i;
          COMMIT;`);
        const runs: number[][] = [];
        for (let r = 0; r < RUNS; r++) {
          await db.query('CREATE TEMP TABLE IF NOT EXISTS helper_times (k int, label text, ms float8); TRUNCATE helper_times');
          await db.query(block());
          const { rows } = await db.query<{ ms: number }>('SELECT ms FROM helper_times ORDER BY k');
          runs.push(rows.map((x) => x.ms));
        }
        ms.set(n, runs);
      }
      const med = (n: number, i: number) => median((ms.get(n) ?? []).map((run) => run[i] as number));
      const head = SIZES.map((n) => `${n} targets`.padStart(14)).join('')
        + SIZES.slice(1).map((n, j) => `${`x${SIZES[j]}->${n}`.padStart(16)}`).join('');
      console.log(`\nms per call, median of ${RUNS}; growth: log(time ratio) / log(N ratio), 1.0 is linear`);
      console.log(`${''.padEnd(32)}${head}`);
      CALLS.forEach(([label], i) => {
        const cells = SIZES.map((n) => med(n, i).toFixed(2).padStart(14)).join('');
        const growth = SIZES.slice(1).map((n, j) => {
          const from = SIZES[j] as number;
          return (Math.log(med(n, i) / med(from, i)) / Math.log(n / from)).toFixed(2).padStart(16);
        }).join('');
        console.log(`${label.padEnd(32)}${cells}${growth}`);
      });
    } finally {
      await db.end();
      await server.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    }
    console.log(`\nload average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  });
}

await main();
