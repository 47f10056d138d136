// The CLI as a user meets it: exit codes, one-line errors, JSON output, and the CALLs it makes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;


beforeAll(async () => {
  env = await createEnv('cli');
  await env.makeTemplate('cli_tpl');
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('cli_one', 1), ('cli_two', 1)`);
});
afterAll(async () => {
  await env.close();
});

describe('admmgt CLI', () => {
  it('refuses an unknown command with exit code 2', async () => {
    const r = await cli('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown argument: frobnicate/);
  });

  it('refuses an out-of-range --parallel with exit code 2 before calling anything', async () => {
    const r = await cli('apply', '--url', env.adminUrl, '--parallel', '100');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--parallel must be an integer from 1 to 64, not 100/);
  });

  it('names the server without its password when it cannot connect', async () => {
    const r = await cli('status', '--url', 'postgresql://someone:hunter2secret@127.0.0.1:1/postgres');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot connect to postgresql:\/\/someone:\*\*\*\*@127\.0\.0\.1:1\/postgres/);
    expect(r.stderr).not.toContain('hunter2secret');
  });

  it('creates databases, applies, maintains and refreshes with one CALL each, and reports a JSON summary', async () => {
    let r = await cli('create-databases', '--url', env.adminUrl, '--parallel', '2', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ operation: 'create', targets: 2, failed: 0 });
    expect(r.stderr).toMatch(/admmgt create: cli_one done/);
    expect(await env.databases()).toEqual(expect.arrayContaining(['cli_one', 'cli_two']));

    await env.addScript({
      id: 1, description: 'cli',
      tables: [{ schema: 'mgttest', name: 'events', columns: [{ name: 'id', type: 'bigint', primaryKey: true, identity: true },
        { name: 'at', type: 'date', nullable: false }], partitions: [{ column: 'at', type: 'range', value: 'month' }] }],
    });
    r = await cli('apply', '--url', env.adminUrl, '--plan');
    expect(r.code).toBe(0);
    // A summary by default: per script its statements, transaction mode and targets.
    // The script's own statements, without the ledger's.
    const [{ statements }] = await env.rows<{ statements: number }>(`SELECT count(*)::int AS statements FROM admmgt.render_script(1)`) as [{ statements: number }];
    expect(r.stdout).toBe(`script 1: ${statements} statement(s), one per target transaction, on 3 target(s): cli_tpl, cli_one, cli_two\n`);
    r = await cli('apply', '--url', env.adminUrl, '--plan', '--sql');
    expect(r.stdout).toMatch(/^script 1: .*\n  CREATE SCHEMA IF NOT EXISTS mgttest;\n/);
    expect(r.stdout).toMatch(/\n  CREATE TABLE mgttest\.events/);
    r = await cli('apply', '--url', env.adminUrl, '--plan', '--json');
    expect(JSON.parse(r.stdout)).toEqual({ operation: 'apply', scripts: [{ scriptid: 1, statements, transaction: 'one per target',
      parts: [{ part: 1, txmode: 'script', statements }], destructive: [],
      targets: ['cli_tpl', 'cli_one', 'cli_two'].map((dbname) => ({ dbname, server: 'local' })) }] });
    expect(await env.queryIn('cli_tpl', `SELECT to_regclass('mgttest.events') IS NULL AS absent`)).toEqual([{ absent: true }]);

    r = await cli('apply', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(await env.queryIn('cli_two', `SELECT to_regclass('mgttest.events') IS NOT NULL AS present`)).toEqual([{ present: true }]);

    r = await cli('maintain', '--url', env.adminUrl, '--days', '62', '--as-of', '2030-01-15');
    expect(r.code).toBe(0);
    const parts = (await env.partitions('cli_one', 'mgttest.events')).map((p) => p.name).filter((n) => n.startsWith('events_p2030'));
    expect(parts).toEqual(['events_p20300101', 'events_p20300201', 'events_p20300301']);

    await env.queryIn('cli_tpl', `CREATE FUNCTION mgttest.answer() RETURNS int LANGUAGE sql AS 'SELECT 42'`);
    r = await cli('refresh-procs', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(await env.queryIn('cli_two', 'SELECT mgttest.answer() AS a')).toEqual([{ a: 42 }]);
  });

  it('runs the lifecycle command, in plan mode too', async () => {
    const r = await cli('lifecycle', '--url', env.adminUrl, '--plan', '--as-of', '2031-01-01', '--json');
    expect(r.code).toBe(0);
    // Nothing to do: the same JSON shape as a run.
    expect(JSON.parse(r.stdout)).toEqual({ run_id: null, operation: 'lifecycle', targets: 0, failed: 0, skipped: 0 });
    expect(r.stderr).toMatch(/no applied script has a table with a lifecycle/);
    const bad = await cli('lifecycle', '--url', env.adminUrl, '--as-of', 'tomorrow');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--as-of must be a date YYYY-MM-DD, not tomorrow/);
  });

  it('exits 3 with a one-line reason when a target fails, and status lists the failure', async () => {
    await env.queryIn('cli_two', 'CREATE TABLE mgttest.blocker (id int)');
    await env.addScript({
      id: 2, description: 'clash', tables: [{ schema: 'mgttest', name: 'blocker', columns: [{ name: 'id', type: 'int' }] }],
    });
    const r = await cli('apply', '--url', env.adminUrl);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/ERROR: 1 of 3 target\(s\) failed in run \d+/);
    const s = await cli('status', '--url', env.adminUrl, '--json');
    const status = JSON.parse(s.stdout);
    expect(status.template).toEqual({ dbname: 'cli_tpl', scriptversion: 2 });
    expect(status.failures).toEqual([expect.objectContaining({ dbname: 'cli_two', scriptid: 2, sqlstate: '42P07' })]);
    expect(status.tenants.find((t: { dbname: string }) => t.dbname === 'cli_two').scriptversion).toBe(1);
    const text = await cli('status', '--url', env.adminUrl);
    expect(text.stdout).toMatch(/cli_two .* version 1 .*1 failure/);
  });
});
