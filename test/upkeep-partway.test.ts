// Upkeep records must not outlive what they describe: a script in parts that stops partway on a
// target (its first part committed, its version unchanged) and a target renamed while maintenance
// ran on it. Every database of this file starts with upkpw_.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptSpec, TableSpec } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

const TPL = 'upkpw_tpl';
const T1 = 'upkpw_t1';
const T2 = 'upkpw_t2';
const ASOF = '2030-01-01';
const dayTable = (schema: string, name: string): TableSpec => ({
  schema, name,
  columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'at', type: 'date', nullable: false }],
  partitions: [{ column: 'at', type: 'range', value: 'day' }],
});
const SCRIPT1: ScriptSpec = { id: 1, description: 'a daily table', tables: [dayTable('app', 'events')] };
// Its first part, outside a transaction, drops a partition; its second fails on t1 alone.
const SCRIPT2: ScriptSpec = {
  id: 2, description: 'in parts: the first drops a partition, the second fails on t1',
  sql: [
    { seq: 1, body: 'DROP TABLE app.events_p20300103', txmode: 'none' },
    { seq: 2, body: `DO $$ BEGIN IF current_database() LIKE '%${T1}' THEN RAISE EXCEPTION 'fails here'; END IF; END $$` },
  ],
};

let env: TestEnv;

const holds = async (db: string) => Object.keys(await env.partitionBounds(db, 'app.events')).includes('events_p20300103');
const maintain = (numdays: number) => env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => ${numdays}, p_asof => '${ASOF}')`);

beforeAll(async () => {
  env = await createEnv('upkpw');
  await env.makeTemplate(TPL, ['app']);
  await env.makeTenants([T1, T2]);
  await env.addScript(SCRIPT1);
  await env.admin.query('CALL admmgt.applyScripts()');
});
afterAll(async () => {
  await env?.close();
});

describe('upkeep records', () => {
  it('are forgotten before a script runs on a target: one that stopped partway is connected by the next maintenance', async () => {
    await maintain(5);
    expect(await holds(T1)).toBe(true);
    await env.addScript(SCRIPT2);
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions({ nullAs: 0, createdOnly: true })).toEqual({ [TPL]: 2, [T1]: 1, [T2]: 2 });
    // t1 committed the first part, so it lacks the partition at version 1, the version its record was at.
    expect(await holds(T1)).toBe(false);
    env.notices.length = 0;
    await maintain(5);
    expect(await holds(T1)).toBe(true);
    expect(env.notices.filter((n) => n.includes('already hold'))).toEqual([]);
  });

  it('are not written for a target renamed while maintenance ran on it', async () => {
    await maintain(5);
    const [{ id }] = await env.rows<{ id: string }>(`SELECT id FROM admmgt.vendor_db_settings WHERE lower(dbname) = $1`, [T2]) as [{ id: string }];
    // A session of t2 holds its table, so maintenance waits there while the registry row moves.
    const tenant = new pg.Client({ connectionString: env.urlFor(T2) });
    await tenant.connect();
    const other = new pg.Client({ connectionString: env.adminUrl });
    await other.connect();
    try {
      await tenant.query('BEGIN; LOCK TABLE app.events IN ACCESS EXCLUSIVE MODE');
      const run = other.query(`CALL admmgt.applyMaintenance(t_numdays => 10, p_asof => '${ASOF}', p_tenants => ARRAY['${T2}'])`);
      for (let i = 0; i < 100; i++) {
        const waiting = await env.queryIn<{ n: number }>(T2, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
        if (waiting[0]?.n) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await env.admin.query(`UPDATE admmgt.vendor_db_settings SET dbname = 'upkpw_moved' WHERE id = $1`, [id]);
      await tenant.query('COMMIT');
      await run;
      // Read before the name is put back, which forgets the records by itself.
      expect(await env.rows(`SELECT target_id FROM admmgt.upkeep_partitions WHERE target_id = $1`, [id])).toEqual([]);
    } finally {
      await tenant.end();
      await other.end();
      await env.admin.query(`UPDATE admmgt.vendor_db_settings SET dbname = $2 WHERE id = $1`, [id, T2]);
    }
  });
});
