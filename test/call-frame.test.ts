// The frame of the public procedures and the record layer's hooks: an error raised after a call
// has taken its operation lock ends the run and lets go of the lock before it reaches the caller,
// with its own SQLSTATE; and every kind of work item the procedures make has its booking hook.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proceduresDir } from '../src/paths.js';
import { markReadySql, scriptRowsSql } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

const TPL = 'frame_tpl';
let env: TestEnv;

/** The operation locks this session holds (pg_locks.objid), after a call returned or failed. */
async function locksHeld(): Promise<number[]> {
  const rows = await env.rows<{ key: number }>(
    `SELECT objid::int AS key FROM pg_locks
      WHERE locktype = 'advisory' AND classid = admmgt._lock_class() AND pid = pg_backend_pid() AND granted ORDER BY 1`);
  return rows.map((r) => r.key);
}

beforeAll(async () => {
  env = await createEnv('frame');
  await env.makeTemplate(TPL, ['app']);
  await env.admin.query(scriptRowsSql({
    id: 1,
    description: 'a monthly table',
    tables: [{
      schema: 'app', name: 'events',
      columns: [{ name: 'id', type: 'bigint', primaryKey: true }, { name: 'd', type: 'date', nullable: false }],
      partitions: [{ column: 'd', type: 'range', value: 'month' }],
    }],
  }).text);
  await env.admin.query(markReadySql(1).text);
  await env.makeTenants(['frame_t1']);
  await env.admin.query('CALL admmgt.applyScripts()');
});

afterAll(async () => {
  await env?.close();
});

/** Change rows of an applied script, which the frozen-rows trigger refuses, as a superuser can: with triggers off. */
async function editFrozen(text: string): Promise<{ id: string }[]> {
  await env.admin.query('SET session_replication_role = replica');
  try {
    return await env.rows<{ id: string }>(text);
  } finally {
    await env.admin.query('RESET session_replication_role');
  }
}

describe('an error under the operation lock', () => {
  it('maintenance: a row made bad after its script was applied is refused with its SQLSTATE, and the lock and the run are closed', async () => {
    const [{ id }] = await editFrozen(
      `UPDATE admmgt.script_table_partitions SET partvalue = 'fortnight' RETURNING id::text`) as [{ id: string }];
    try {
      const e = await env.errorOf('CALL admmgt.applyMaintenance(t_numdays => 10)');
      expect(e.code).toBe('22023');
      expect(e.message).toBe(`admmgt: unknown range interval 'fortnight' in admmgt.script_table_partitions id ${id}`);
      expect(e.hint).toBe('Use day, week, month, quarter or year.');
      expect(await locksHeld()).toEqual([]);
      expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'maintain' AND finished_at IS NULL`))
        .toEqual([{ n: 0 }]);
    } finally {
      await editFrozen(`UPDATE admmgt.script_table_partitions SET partvalue = 'month'`);
    }
    await env.admin.query('CALL admmgt.applyMaintenance(t_numdays => 10)');
  });

  it('apply: a lagging tenant whose applied script no longer renders is refused with its SQLSTATE, and the lock and the run are closed', async () => {
    await env.admin.query(`UPDATE admmgt.vendor_db_settings SET scriptversion = 0 WHERE dbname = 'frame_t1'`);
    // A script applied before scripts were frozen is rendered from its rows for every target.
    await env.admin.query(`DELETE FROM admmgt.script_parts WHERE scriptid = 1`);
    const [{ id }] = await editFrozen(
      `UPDATE admmgt.script_table_columns SET datatype = 'date; drop' WHERE columnname = 'd' RETURNING id::text`) as [{ id: string }];
    try {
      const e = await env.errorOf('CALL admmgt.applyScripts()');
      expect(e.code).toBe('22023');
      expect(e.message).toBe(`admmgt: invalid data type 'date; drop' in admmgt.script_table_columns id ${id}`);
      expect(await locksHeld()).toEqual([]);
      expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs WHERE operation = 'apply' AND finished_at IS NULL`))
        .toEqual([{ n: 0 }]);
      expect(await env.rows(`SELECT scriptversion FROM admmgt.vendor_db_settings WHERE dbname = 'frame_t1'`))
        .toEqual([{ scriptversion: 0 }]);
    } finally {
      await editFrozen(`UPDATE admmgt.script_table_columns SET datatype = 'date' WHERE columnname = 'd'`);
    }
    // The tenant still has the script in its ledger: the rerun books it as already applied.
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.rows(`SELECT outcome FROM admmgt.script_log WHERE dbname = 'frame_t1' AND operation = 'apply' ORDER BY id DESC LIMIT 1`))
      .toEqual([{ outcome: 'already applied' }]);
    expect(await env.rows(`SELECT scriptversion FROM admmgt.vendor_db_settings WHERE dbname = 'frame_t1'`))
      .toEqual([{ scriptversion: 1 }]);
  });

  it('_end_call with an error keeps its SQLSTATE, message, detail and hint', async () => {
    const e = await env.errorOf(`DO $$
      DECLARE v_run bigint; v_error admmgt.error_state;
      BEGIN
        v_error := ROW('P0042', 'a message', 'a detail', 'a hint');
        CALL admmgt._begin_call('refresh', 'test', 0, v_run);
        CALL admmgt._end_call('refresh', v_run, v_error);
      END $$`);
    expect([e.code, e.message, e.detail, e.hint]).toEqual(['P0042', 'a message', 'a detail', 'a hint']);
    expect(await locksHeld()).toEqual([]);
  });
});

describe('the booking hooks', () => {
  it('every kind of work item the procedures make has its hook admmgt._book_<kind>, and no hook is left without a kind', async () => {
    const kinds = new Set<string>();
    for (const file of await readdir(proceduresDir())) {
      const text = await readFile(path.join(proceduresDir(), file), 'utf8');
      for (const m of text.matchAll(/admmgt\._(?:target_)?item\('([a-z_]+)'/g)) kinds.add(m[1]!);
    }
    expect([...kinds].sort()).toEqual(['adopt', 'create', 'drop', 'fingerprint', 'grant', 'ledger', 'partitions', 'retention', 'retention_report',
                                       'rollback', 'routines', 'schema', 'script', 'take', 'worker']);
    // A worker item carries a worker session's CALL (072_workers.sql): the caller waits for it and
    // books the targets the worker took, never the item itself.
    kinds.delete('worker');
    const hooks = await env.rows<{ kind: string }>(
      `SELECT substr(p.proname, 7) AS kind FROM pg_proc p
        WHERE p.pronamespace = 'admmgt'::regnamespace AND p.proname LIKE '\\_book\\_%'
          AND p.oid::regprocedure::text = format('admmgt.%s(admmgt.work_item,admmgt.exec_result,admmgt.booking)', p.proname)
          AND p.prorettype = 'admmgt.booking'::regtype
        ORDER BY 1`);
    expect(hooks.map((h) => h.kind)).toEqual([...kinds].sort());
  });
});
