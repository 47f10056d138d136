// Script rows applyScripts (and plan_scripts) refuse before any target is touched: bad names, types,
// defaults, partitions, foreign keys and calls, and a script added below the template's version.
// Every database of this file starts with applyval_.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ColumnSpec, PartitionSpec, ScriptSpec, TableSpec } from '../templates/script.js';
import { applyHelpers, S } from './support/apply.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
const TPL = 'applyval_tpl';
const { admin, adminError, fresh, scriptStatus, runCount, tables, ledger } = applyHelpers(() => env, TPL);

beforeAll(async () => {
  env = await createEnv('applyval');
});
afterAll(async () => {
  await env?.close();
});

async function deleteScript(id: number): Promise<void> {
  await env.admin.query(`BEGIN;
    DELETE FROM admmgt.script_table_partitions WHERE tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = ${id});
    DELETE FROM admmgt.script_table_columns WHERE scriptid = ${id} OR tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = ${id});
    DELETE FROM admmgt.script_table_fkeys WHERE scriptid = ${id};
    DELETE FROM admmgt.script_procs WHERE scriptid = ${id};
    DELETE FROM admmgt.script_tables WHERE scriptid = ${id};
    DELETE FROM admmgt.scripts WHERE id = ${id};
    COMMIT;`);
}

describe('applyScripts: a script added below the template\'s version', () => {
  beforeAll(async () => {
    await fresh(['applyval_o1']);
    for (const id of [1, 3]) {
      await env.addScript({ id, description: `o${id}`, tables: [{ schema: S, name: `o${id}`, columns: [{ name: 'id', type: 'int' }] }] });
    }
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await env.versions()).toEqual({ [TPL]: 3, applyval_o1: 3 });
  });

  it('is refused, naming the script, instead of being marked applied without running anywhere', async () => {
    await env.addScript({ id: 2, description: 'late', tables: [{ schema: S, name: 'o2', columns: [{ name: 'id', type: 'int' }] }] });
    await env.addScript({ id: 4, description: 'next', tables: [{ schema: S, name: 'o4', columns: [{ name: 'id', type: 'int' }] }] });
    const before = await runCount();
    const err = await adminError('CALL admmgt.applyScripts()');
    expect(err.code).toBe('55000');
    expect(err.message).toBe('admmgt: admmgt.scripts id 2 is ready, but the template is already at version 3 and never ran it');
    expect(err.hint).toMatch(/id above 3/);
    expect((await adminError('SELECT * FROM admmgt.plan_scripts()')).code).toBe('55000');
    expect(await runCount()).toBe(before);
    expect(await scriptStatus()).toEqual({ 1: 2, 2: 1, 3: 2, 4: 1 });
    for (const db of [TPL, 'applyval_o1']) {
      expect(await tables(db)).toEqual(['o1:r', 'o3:r']);
      expect(await ledger(db)).toEqual([1, 3]);
    }
  });

  it('goes on once the late script is given an id above the template\'s version', async () => {
    await deleteScript(2);
    await env.addScript({ id: 5, description: 'late, renumbered', tables: [{ schema: S, name: 'o2', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await scriptStatus()).toEqual({ 1: 2, 3: 2, 4: 2, 5: 2 });
    for (const db of [TPL, 'applyval_o1']) {
      expect(await tables(db)).toEqual(['o1:r', 'o2:r', 'o3:r', 'o4:r']);
      expect(await ledger(db)).toEqual([1, 3, 4, 5]);
    }
  });
});

describe('applyScripts: bad script rows are refused before any target is touched', () => {
  beforeAll(async () => {
    await fresh(['applyval_b1']);
  });

  type Case = { what: string; spec: ScriptSpec; row: string; code: string; message: RegExp; patch?: string };
  const base = (extra: Partial<ScriptSpec>): ScriptSpec => ({ id: 2, description: 'bad', ...extra });
  const table = (columns: ColumnSpec[], partitions?: PartitionSpec[]): TableSpec => ({ schema: S, name: 'bad_t', columns, partitions });
  const cases: Case[] = [
    { what: 'a column name with a space', spec: base({ tables: [table([{ name: 'bad name', type: 'int' }])] }),
      row: 'script_table_columns', code: '42602', message: /invalid column name 'bad name'/ },
    { what: 'a data type with a second statement', spec: base({ tables: [table([{ name: 'c', type: 'int; drop table x' }])] }),
      row: 'script_table_columns', code: '22023', message: /invalid data type 'int; drop table x'/ },
    { what: 'a default that closes its statement', spec: base({ tables: [table([{ name: 'c', type: 'int', default: '0); drop table x; --' }])] }),
      row: 'script_table_columns', code: '42601', message: /invalid default '0\); drop table x; --'/ },
    { what: 'an unknown partition type', spec: base({ tables: [table([{ name: 'c', type: 'int' }], [{ column: 'c', type: 'hash' as 'list', value: '4' }])] }),
      row: 'script_table_partitions', code: '22023', message: /unknown partition type 'hash'/ },
    { what: 'an unknown range interval', spec: base({ tables: [table([{ name: 'c', type: 'date' }], [{ column: 'c', type: 'range', value: 'fortnight' }])] }),
      row: 'script_table_partitions', code: '22023', message: /unknown range interval 'fortnight'/ },
    { what: 'a foreign key to a column no script defines',
      spec: base({ tables: [table([{ name: 'c', type: 'int' }])], foreignKeys: [{ schema: S, child: 'bad_t', parent: 'good', columns: [['c', 'nosuch']] }] }),
      row: 'script_table_fkeys', code: '42703', message: /references mgttest\.bad_t \(c\) -> mgttest\.good \(nosuch\), which scripts up to 2 do not define/ },
    { what: 'a call with a second statement', spec: base({ calls: [`call ${S}.p(); drop table x`] }),
      row: 'script_procs', code: '42601', message: /invalid call/ },
    // E'\'' is a whole string to PostgreSQL, so a scanner that knows only '' would let the ; through.
    { what: "a call that hides a statement behind E'\\''", spec: base({ calls: [`call ${S}.p(E'\\''); drop table x; --')`] }),
      row: 'script_procs', code: '42601', message: /it contains a backslash/ },
    { what: "a default that hides a statement behind E'\\''", spec: base({ tables: [table([{ name: 'c', type: 'text', default: "E'\\'' ; drop table x ; --'" }])] }),
      row: 'script_table_columns', code: '42601', message: /it contains a backslash/ },
    { what: 'a data type that carries a constraint', spec: base({ tables: [table([{ name: 'c', type: 'int references mgttest.good' }])] }),
      row: 'script_table_columns', code: '22023', message: /invalid data type 'int references mgttest.good'/ },
    { what: 'a table in a system schema', spec: base({ tables: [{ schema: 'pg_catalog', name: 'bad_t', columns: [{ name: 'c', type: 'int' }] }] }),
      row: 'script_tables', code: '42939', message: /names the reserved schema pg_catalog/ },
  ];

  it.each(cases)('refuses $what, naming the row, and changes nothing', async ({ spec, row, code, message }) => {
    // Script 1 is fine and ready: it must not run either, because script 2 is refused first.
    await env.addScript({ id: 1, description: 'good', tables: [{ schema: S, name: 'good', columns: [{ name: 'id', type: 'int', primaryKey: true }] }] });
    await env.addScript(spec);
    const [{ ids }] = await admin<{ ids: string[] }>(
      `SELECT array_agg(id::text ORDER BY id) AS ids FROM admmgt.${row}
        WHERE ${row === 'script_table_partitions' ? 'tableid IN (SELECT id FROM admmgt.script_tables WHERE scriptid = 2)' : 'scriptid = 2'}`) as [{ ids: string[] }];
    const before = await runCount();
    try {
      const err = await adminError('CALL admmgt.applyScripts()');
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
      expect(err.message).toContain(`admmgt.${row} id ${ids[0]}`);
      expect(err.hint).toBeTruthy();
      expect(await tables(TPL)).toEqual([]);
      expect(await tables('applyval_b1')).toEqual([]);
      expect(await ledger(TPL)).toEqual([]);
      expect(await runCount()).toBe(before);
      expect(await env.versions()).toEqual({ [TPL]: null, applyval_b1: 0 });
      expect(await scriptStatus()).toEqual({ 1: 1, 2: 1 });
      // plan_scripts refuses it the same way.
      const planErr = await adminError('SELECT * FROM admmgt.plan_scripts()');
      expect(planErr.message).toContain(`admmgt.${row} id ${ids[0]}`);
    } finally {
      await deleteScript(2);
      await deleteScript(1);
    }
  });

  it('applies the good script once the bad one is gone', async () => {
    await env.addScript({ id: 1, description: 'good', tables: [{ schema: S, name: 'good', columns: [{ name: 'id', type: 'int', primaryKey: true }] }] });
    await env.admin.query('CALL admmgt.applyScripts()');
    expect(await tables(TPL)).toEqual(['good:r']);
    expect(await tables('applyval_b1')).toEqual(['good:r']);
    expect(await env.versions()).toEqual({ [TPL]: 1, applyval_b1: 1 });
  });
});
