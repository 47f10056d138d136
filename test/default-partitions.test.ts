// DEFAULT partitions (script_tables.defaultpart): rows outside the window are kept, and
// maintenance moves them into each period partition it creates, none lost or doubled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';

const TPL = 'dflt_tpl';
const T1 = 'dflt_t1';
const T2 = 'dflt_t2';
let env: TestEnv;

async function counts(db: string, table: string): Promise<Record<string, number>> {
  const rows = await env.queryIn<{ part: string; n: number }>(db,
    `SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM ${table} GROUP BY 1 ORDER BY 1`);
  return Object.fromEntries(rows.map((r) => [r.part, r.n]));
}

const partitions = (db: string, parent: string) => env.partitionBounds(db, parent);

beforeAll(async () => {
  env = await createEnv('dflt');
  await env.makeTemplate(TPL, ['app']);
  await env.makeTenants([T1, T2]);
  await env.addScript({
    id: 1, description: 'tables with default partitions',
    tables: [
      { schema: 'app', name: 'events', defaultPartition: true,
        columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'at', type: 'date', nullable: false }],
        partitions: [{ column: 'at', type: 'range', value: 'month' }] },
      { schema: 'app', name: 'items', defaultPartition: true,
        columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'status', type: 'varchar(1)', nullable: false },
          { name: 'closed', type: 'date', nullable: false }],
        partitions: [{ column: 'status', type: 'list', value: 'A' },
          { column: 'status', type: 'list', value: 'X', sub: { column: 'closed', interval: 'quarter' } }] },
    ],
  });
  await env.admin.query('CALL admmgt.applyScripts()');
});
afterAll(async () => {
  await env.close();
});

describe('default partitions', () => {
  it('are created with the table: the LIST level and every RANGE parent', async () => {
    for (const db of [TPL, T1, T2]) {
      expect((await partitions(db, 'app.events')).events_default).toBe('DEFAULT');
      expect((await partitions(db, 'app.items')).items_default).toBe('DEFAULT');
      expect((await partitions(db, 'app.items_x')).items_x_default).toBe('DEFAULT');
    }
  });

  it('keep rows outside the window, and maintenance moves them into the new periods without loss', async () => {
    await env.queryIn(T1, `INSERT INTO app.events (at) VALUES
        ('2031-05-01'), ('2031-05-20'), ('2031-05-31'), ('2031-06-01'), ('2031-06-30'), ('2035-01-01');
      INSERT INTO app.items (status, closed) VALUES ('X', '2031-05-01'), ('X', '2031-06-30'), ('X', '2032-01-01'), ('Z', '2031-05-01')`);
    expect(await counts(T1, 'app.events')).toEqual({ 'app.events_default': 6 });
    const idsBefore = await env.queryIn(T1, 'SELECT id, at::text FROM app.events ORDER BY id');

    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 60, p_asof => '2031-04-15')`);
    expect(await env.rows('SELECT * FROM admmgt.failures')).toEqual([]);
    expect(await counts(T1, 'app.events')).toEqual({
      'app.events_default': 1, 'app.events_p20310501': 3, 'app.events_p20310601': 2,
    });
    expect(await env.queryIn(T1, 'SELECT id, at::text FROM app.events ORDER BY id')).toEqual(idsBefore);
    expect(await counts(T1, 'app.items')).toEqual({ 'app.items_default': 1, 'app.items_x_default': 1, 'app.items_x_p20310401': 2 });
    expect((await partitions(T1, 'app.events')).events_p20310401).toBe("FOR VALUES FROM ('2031-04-01') TO ('2031-05-01')");

    const log = await env.rows<{ dbname: string; commstat: string }>(
      `SELECT dbname, commstat FROM admmgt.script_log WHERE operation = 'maintain' AND commstat LIKE 'moved%' ORDER BY id`);
    expect(log).toEqual([
      { dbname: T1, commstat: 'moved 3 rows from the default partition into app.events_p20310501' },
      { dbname: T1, commstat: 'moved 2 rows from the default partition into app.events_p20310601' },
      { dbname: T1, commstat: 'moved 2 rows from the default partition into app.items_x_p20310401' },
    ]);
    // The tenant without rows got the same partitions.
    expect(Object.keys(await partitions(T2, 'app.events'))).toEqual(Object.keys(await partitions(T1, 'app.events')));
  });

  it('changes nothing when run again', async () => {
    const before = await counts(T1, 'app.events');
    const logged = `SELECT count(*)::int AS n FROM admmgt.script_log WHERE operation = 'maintain'`;
    const loggedBefore = await env.rows<{ n: number }>(logged);
    await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 60, p_asof => '2031-04-15')`);
    expect(await counts(T1, 'app.events')).toEqual(before);
    expect(await env.rows(logged)).toEqual(loggedBefore);
  });
});
