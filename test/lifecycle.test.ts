// Retention from script_tables.lifecycle: expired RANGE partitions are dropped or detached where the
// age column is their key; elsewhere expired rows are deleted; a plan only says what would go.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';

const TPL = 'life_tpl';
const T1 = 'life_t1';
const T2 = 'life_t2';
const ASOF = '2031-01-10';
let env: TestEnv;

const children = async (db: string, parent: string) => Object.keys(await env.partitionBounds(db, parent));

async function lifecycleLog(): Promise<string[]> {
  return (await env.rows<{ line: string }>(
    `SELECT dbname || ' ' || commstat AS line FROM admmgt.script_log WHERE operation = 'lifecycle' ORDER BY id`)).map((r) => r.line);
}

beforeAll(async () => {
  env = await createEnv('life');
  await env.makeTemplate(TPL, ['app']);
  await env.makeTenants([T1, T2]);
  await env.addScript({
    id: 1, description: 'tables with retention',
    tables: [
      { schema: 'app', name: 'events', lifecycle: { at: 'current_date-90' },
        columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'at', type: 'date', nullable: false }],
        partitions: [{ column: 'at', type: 'range', value: 'month' }] },
      { schema: 'app', name: 'items', lifecycle: { status: 'X', closed: 'current_date-100', _action: 'detach' },
        columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'status', type: 'varchar(1)', nullable: false },
          { name: 'closed', type: 'date', nullable: false }],
        partitions: [{ column: 'status', type: 'list', value: 'A' },
          { column: 'status', type: 'list', value: 'X', sub: { column: 'closed', interval: 'quarter' } }] },
      { schema: 'app', name: 'notes', lifecycle: { kind: 'tmp', created: 'current_date - 30' },
        columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true }, { name: 'kind', type: 'text' },
          { name: 'created', type: 'date' }] },
    ],
  });
  await env.admin.query('CALL admmgt.applyScripts()');
  await env.admin.query(`CALL admmgt.applyMaintenance(t_numdays => 400, p_asof => '2030-01-01')`);
  await env.queryIn(T1, `
    INSERT INTO app.events (at) VALUES ('2030-01-15'), ('2030-06-15'), ('2030-12-15');
    INSERT INTO app.items (status, closed) VALUES ('X', '2030-02-01'), ('X', '2030-11-01'), ('A', '2030-01-01');
    INSERT INTO app.notes (kind, created) VALUES ('tmp', '2030-01-01'), ('tmp', '2030-12-25'), ('keep', '2030-01-01')`);
});
afterAll(async () => {
  await env.close();
});

const monthsBefore = (n: number) => Array.from({ length: n }, (_, i) => `events_p2030${String(i + 1).padStart(2, '0')}01`);

describe('applyLifecycle', () => {
  it('in plan mode logs what would go and changes nothing', async () => {
    const before = await children(T1, 'app.events');
    await env.admin.query(`CALL admmgt.applyLifecycle(p_asof => '${ASOF}', p_plan => true)`);
    expect(await children(T1, 'app.events')).toEqual(before);
    const log = await lifecycleLog();
    // events: months whose end is on or before 2031-01-10 - 90 = 2030-10-12, i.e. January to September.
    expect(log).toContain(`${T1} would drop app.events_p20300101: 1 rows`);
    expect(log).toContain(`${T1} would drop app.events_p20300601: 1 rows`);
    expect(log).toContain(`${T1} would drop app.events_p20300901: 0 rows`);
    expect(log.filter((l) => l.startsWith(`${T1} would drop app.events_p2030`))).toHaveLength(9);
    // The partition applyScripts made for the month it ran in (years before the reference day) is expired too.
    expect(log.filter((l) => l.startsWith(`${T1} would drop app.events_`))).toHaveLength(10);
    expect(log).toContain(`${T1} would detach app.items_x_p20300101: 1 rows`);
    expect(log).toContain(`${T1} would delete app.notes: 1 rows`);
    expect(log).toContain(`${T2} would delete app.notes: 0 rows`);
    expect(await env.queryIn(T1, 'SELECT count(*)::int AS n FROM app.notes')).toEqual([{ n: 3 }]);
  });

  it('drops, detaches and deletes exactly what expired, and nothing newer', async () => {
    await env.admin.query('TRUNCATE admmgt.script_log');
    await env.admin.query(`CALL admmgt.applyLifecycle(p_asof => '${ASOF}')`);
    expect(await env.rows('SELECT * FROM admmgt.failures')).toEqual([]);
    for (const db of [TPL, T1, T2]) {
      const events = await children(db, 'app.events');
      for (const gone of monthsBefore(9)) expect(events, db).not.toContain(gone);
      expect(events, db).toContain('events_p20301001'); // ends after the cutoff: kept whole
      // Detached, not dropped: the table is still there, outside the partitioned table.
      const x = await children(db, 'app.items_x');
      expect(x, db).not.toContain('items_x_p20300701');
      expect(x, db).toContain('items_x_p20301001');
      expect(await env.queryIn(db, `SELECT to_regclass('app.items_x_p20300701') IS NOT NULL AS kept`)).toEqual([{ kept: true }]);
    }
    expect(await env.queryIn(T1, 'SELECT at::text FROM app.events ORDER BY at')).toEqual([{ at: '2030-12-15' }]);
    expect(await env.queryIn(T1, 'SELECT status, closed::text FROM app.items ORDER BY id')).toEqual([
      { status: 'X', closed: '2030-11-01' }, { status: 'A', closed: '2030-01-01' }]);
    expect(await env.queryIn(T1, 'SELECT kind, created::text FROM app.notes ORDER BY id')).toEqual([
      { kind: 'tmp', created: '2030-12-25' }, { kind: 'keep', created: '2030-01-01' }]);
    const log = await lifecycleLog();
    expect(log).toContain(`${T1} drop app.events_p20300101: 1 rows`);
    expect(log).toContain(`${T1} detach app.items_x_p20300101: 1 rows`);
    expect(log).toContain(`${T1} delete app.notes: 1 rows`);
  });

  it('changes nothing when run again', async () => {
    const before = await children(T1, 'app.events');
    await env.admin.query('TRUNCATE admmgt.script_log');
    await env.admin.query(`CALL admmgt.applyLifecycle(p_asof => '${ASOF}')`);
    expect(await children(T1, 'app.events')).toEqual(before);
    expect((await lifecycleLog()).sort()).toEqual([`${T1} delete app.notes: 0 rows`, `${T2} delete app.notes: 0 rows`, `${TPL} delete app.notes: 0 rows`]);
  });

  it('refuses a lifecycle without an age condition before touching any target, naming the row', async () => {
    await env.admin.query(`UPDATE admmgt.script_tables SET lifecycle = '{"at": "yesterday"}' WHERE tablename = 'events'`);
    try {
      const err = await env.errorOf('CALL admmgt.applyLifecycle()');
      expect(err.code).toBe('22023');
      expect(err.message).toMatch(/lifecycle of admmgt\.script_tables id \d+ has no current_date-N condition/);
    } finally {
      await env.admin.query(`UPDATE admmgt.script_tables SET lifecycle = '{"at": "current_date-90"}' WHERE tablename = 'events'`);
    }
  });
});
