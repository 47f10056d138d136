// Migrations as files: `admmgt script add` and `admmgt script sync` register SQL files as scripts
// (admmgt.add_script_file, admmgt.sync_script_files), and `admmgt apply` runs them everywhere.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src/paths.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let tmp: string;

const ORDERS = 'CREATE TABLE mgttest.orders (id bigint PRIMARY KEY, total numeric(12,2) NOT NULL DEFAULT 0);\nINSERT INTO mgttest.orders VALUES (1, 10);\n';
const LINES = `-- order lines, and a function whose body holds semicolons
CREATE TABLE mgttest.order_lines (order_id bigint NOT NULL REFERENCES mgttest.orders (id), qty int NOT NULL);
CREATE FUNCTION mgttest.line_count() RETURNS bigint LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN (SELECT count(*) FROM mgttest.order_lines);
END;
$fn$;
`;
// Each statement a step of its own, run alone (the way CREATE INDEX CONCURRENTLY must run).
const INDEXES = `-- admmgt: no-transaction
CREATE INDEX CONCURRENTLY order_lines_order ON mgttest.order_lines (order_id);
/* the second one */
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_total ON mgttest.orders (total);
`;

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');

/** A folder of files, made fresh. */
async function folder(name: string, files: Record<string, string>): Promise<string> {
  const dir = path.join(tmp, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [f, body] of Object.entries(files)) await writeFile(path.join(dir, f), body);
  return dir;
}

const scripts = () => env.rows<{ id: number; status: number; source_file: string | null; description: string }>(
  'SELECT id, status, source_file, description FROM admmgt.scripts ORDER BY id');

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'admmgt-script-files-'));
  env = await createEnv('sfiles');
  await env.makeTemplate('sfiles_tpl');
  await env.makeTenants(['sfiles_t1', 'sfiles_t2']);
});
afterAll(async () => {
  await env?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('admmgt script add', () => {
  it('registers a file as one script; the same file again, with CRLF line ends too, is unchanged', async () => {
    const dir = await folder('add', { 'V1__orders.sql': ORDERS });
    const file = path.join(dir, 'V1__orders.sql');
    let r = await cli('script', 'add', file, '--id', '1', '--url', env.adminUrl);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('V1__orders.sql: script 1 added\n');
    expect(await env.rows('SELECT id, description, status, source_file, source_checksum FROM admmgt.scripts')).toEqual([
      { id: 1, description: 'orders', status: 1, source_file: 'V1__orders.sql', source_checksum: md5(ORDERS) }]);
    expect(await env.rows('SELECT scriptid, seq, body, txmode, status FROM admmgt.script_sql')).toEqual([
      { scriptid: 1, seq: 1, body: ORDERS, txmode: 'script', status: 1 }]);

    r = await cli('script', 'add', file, '--url', env.adminUrl, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ operation: 'script add', files: [{ file: 'V1__orders.sql', scriptid: 1, outcome: 'unchanged' }],
      added: 0, unchanged: 1 });
    await writeFile(file, ORDERS.replace(/\n/g, '\r\n'));
    r = await cli('script', 'add', file, '--url', env.adminUrl);
    expect(r.stdout).toBe('V1__orders.sql: script 1 unchanged\n');
    expect(await env.rows('SELECT count(*)::int AS n FROM admmgt.script_sql')).toEqual([{ n: 1 }]);
  });

  it('refuses a changed file, naming file and script, and keeps the script as registered', async () => {
    const file = path.join(tmp, 'add', 'V1__orders.sql');
    await writeFile(file, ORDERS + 'INSERT INTO mgttest.orders VALUES (2, 20);\n');
    const r = await cli('script', 'add', file, '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERROR 42710: admmgt: refused, registered scripts never change: V1__orders\.sql \(script 1\): it changed since it was registered as script 1/);
    expect(r.stderr).toMatch(/HINT: Restore V1__orders\.sql as registered \(git checkout\) and write the change as a new file V2__<words>\.sql/);
    expect(await env.rows('SELECT source_checksum FROM admmgt.scripts')).toEqual([{ source_checksum: md5(ORDERS) }]);
    await writeFile(file, ORDERS);
  });

  it('refuses an id made from rows, another file for a registered id, a name that disagrees with --id, an empty file', async () => {
    await env.admin.query(`INSERT INTO admmgt.scripts (id, description) VALUES (90, 'made from rows, designing')`);
    const dir = await folder('clash', { 'V90__from_file.sql': 'SELECT 1;', 'other.sql': ORDERS, 'V7__seven.sql': 'SELECT 7;', 'V8__empty.sql': '-- nothing yet\n' });
    let r = await cli('script', 'add', path.join(dir, 'V90__from_file.sql'), '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('V90__from_file.sql (script 90): script 90 was made from rows, not from a file');
    r = await cli('script', 'add', path.join(dir, 'other.sql'), '--id', '1', '--url', env.adminUrl);
    expect(r.stderr).toContain('other.sql (script 1): script 1 was registered from V1__orders.sql');
    r = await cli('script', 'add', path.join(dir, 'V7__seven.sql'), '--id', '8', '--url', env.adminUrl);
    expect(r.stderr).toMatch(/ERROR 22023: admmgt: file V7__seven\.sql is named for script 7, not 8/);
    r = await cli('script', 'add', path.join(tmp, 'add', 'V1__orders.sql'), '--no-transaction', '--url', env.adminUrl);
    expect(r.stderr).toContain('V1__orders.sql (script 1): script 1 was registered to run in one transaction, not with no-transaction');
    r = await cli('script', 'add', path.join(dir, 'V7__seven.sql'), '--no-transaction', '--draft', '--description', 'seven alone', '--url', env.adminUrl);
    expect(r.stdout).toBe('V7__seven.sql: script 7 added\n');
    expect(await env.rows('SELECT s.description, s.status, q.seq, q.txmode, q.body FROM admmgt.scripts s JOIN admmgt.script_sql q ON q.scriptid = s.id WHERE s.id = 7'))
      .toEqual([{ description: 'seven alone', status: 0, seq: 1, txmode: 'none', body: 'SELECT 7' }]);
    r = await cli('script', 'add', path.join(dir, 'V7__seven.sql'), '--url', env.adminUrl);
    expect(r.stdout).toBe('V7__seven.sql: script 7 unchanged\n');
    await env.admin.query('DELETE FROM admmgt.script_sql WHERE scriptid = 7; DELETE FROM admmgt.scripts WHERE id = 7');
    r = await cli('script', 'add', path.join(dir, 'V8__empty.sql'), '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERROR 22023: admmgt: file V8__empty\.sql holds no SQL statement\nHINT: .*V8__empty\.sql/);
    r = await cli('script', 'add', path.join(dir, 'missing.sql'), '--id', '9', '--url', env.adminUrl);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read .*missing\.sql: ENOENT/);
    await env.admin.query('DELETE FROM admmgt.scripts WHERE id = 90');
    expect((await scripts()).map((s) => s.id)).toEqual([1]);
  });
});

describe('admmgt script sync', () => {
  let migrations: string;

  it('registers a folder in id order, a no-transaction file as one step per statement, and apply builds it everywhere', async () => {
    migrations = await folder('migrations', { 'V1__orders.sql': ORDERS, 'V2__order_lines.sql': LINES, 'V5__indexes.sql': INDEXES, 'README.md': '# not SQL' });
    let r = await cli('script', 'sync', migrations, '--url', env.adminUrl, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ operation: 'script sync', added: 2, unchanged: 1, files: [
      { file: 'V1__orders.sql', scriptid: 1, outcome: 'unchanged' },
      { file: 'V2__order_lines.sql', scriptid: 2, outcome: 'added' },
      { file: 'V5__indexes.sql', scriptid: 5, outcome: 'added' }] });
    expect(await scripts()).toEqual([
      { id: 1, status: 1, source_file: 'V1__orders.sql', description: 'orders' },
      { id: 2, status: 1, source_file: 'V2__order_lines.sql', description: 'order lines' },
      { id: 5, status: 1, source_file: 'V5__indexes.sql', description: 'indexes' }]);
    expect(await env.rows(`SELECT seq, txmode, body FROM admmgt.script_sql WHERE scriptid = 5 ORDER BY seq`)).toEqual([
      { seq: 1, txmode: 'none', body: 'CREATE INDEX CONCURRENTLY order_lines_order ON mgttest.order_lines (order_id)' },
      { seq: 2, txmode: 'none', body: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_total ON mgttest.orders (total)' }]);
    expect(await env.rows(`SELECT txmode FROM admmgt.render_steps(5) WHERE stmt LIKE 'CREATE INDEX%'`)).toEqual([{ txmode: 'none' }, { txmode: 'none' }]);
    // Each a part of its own, run outside a transaction, that knows its index (a rerun after a failed build drops the leftover).
    expect(await env.rows(`SELECT part, txmode, index_def ->> 'schema' AS index_schema, index_def ->> 'name' AS index_name FROM admmgt._render_parts(5, current_date) ORDER BY part`)).toEqual([
      { part: 1, txmode: 'none', index_schema: 'mgttest', index_name: 'order_lines_order' },
      { part: 2, txmode: 'none', index_schema: 'mgttest', index_name: 'orders_total' }]);

    r = await cli('apply', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    for (const db of ['sfiles_tpl', 'sfiles_t1', 'sfiles_t2']) {
      expect(await env.queryIn(db, `SELECT (SELECT count(*)::int FROM mgttest.orders) AS orders, to_regclass('mgttest.order_lines') IS NOT NULL AS lines,
          to_regprocedure('mgttest.line_count()') IS NOT NULL AS fn,
          (SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'mgttest' AND indexname NOT LIKE '%pkey') AS idx,
          (SELECT bool_and(i.indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'mgttest'::regnamespace) AS valid`))
        .toEqual([{ orders: 1, lines: true, fn: true, idx: ['order_lines_order', 'orders_total'], valid: true }]);
    }
    expect(await env.versions()).toEqual({ sfiles_tpl: 5, sfiles_t1: 5, sfiles_t2: 5 });
    expect((await scripts()).map((s) => s.status)).toEqual([2, 2, 2]);

    // What CI runs on every push: the same folder again changes nothing.
    r = await cli('script', 'sync', migrations, '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('V1__orders.sql: script 1 unchanged\nV2__order_lines.sql: script 2 unchanged\nV5__indexes.sql: script 5 unchanged\n3 file(s): 0 added, 3 unchanged\n');
  });

  it('refuses every changed file, naming each, and registers nothing of that sync', async () => {
    await writeFile(path.join(migrations, 'V2__order_lines.sql'), LINES.replace('qty int', 'qty bigint'));
    await writeFile(path.join(migrations, 'V1__orders.sql'), ORDERS.replace(/\n/g, '\r\n') + '-- a comment is a change too\n');
    await writeFile(path.join(migrations, 'V6__customers.sql'), 'CREATE TABLE mgttest.customers (id int);');
    const r = await cli('script', 'sync', migrations, '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERROR 42710: admmgt: refused, registered scripts never change: V1__orders\.sql \(script 1\): it changed since it was registered as script 1 \(md5 \w+ then, \w+ now\); V2__order_lines\.sql \(script 2\): it changed/);
    expect(r.stderr).toMatch(/HINT: Restore V1__orders\.sql, V2__order_lines\.sql as registered \(git checkout\) and write the change as a new file V7__<words>\.sql/);
    expect((await scripts()).map((s) => s.id)).toEqual([1, 2, 5]);
    await writeFile(path.join(migrations, 'V1__orders.sql'), ORDERS);
    await writeFile(path.join(migrations, 'V2__order_lines.sql'), LINES);
  });

  it('refuses a file added below the template\'s version, naming it, and registers nothing of that sync', async () => {
    await writeFile(path.join(migrations, 'V4__late.sql'), 'CREATE TABLE mgttest.late (id int);');
    const r = await cli('script', 'sync', migrations, '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERROR 55000: admmgt: refused, added out of order: V4__late\.sql \(script 4\): the template is at version 5 already, so it would never run script 4\n/);
    expect(r.stderr).toMatch(/HINT: Scripts run in id order: rename V4__late\.sql to V7__<words>\.sql \(or higher\)\./);
    expect((await scripts()).map((s) => s.id)).toEqual([1, 2, 5]);
    await rm(path.join(migrations, 'V4__late.sql'));
  });

  it('refuses other .sql files with exit code 2, naming each, before anything is touched', async () => {
    const dir = await folder('names', { 'V9__fine.sql': 'SELECT 1;', 'R__views.sql': 'SELECT 1;', 'orders.sql': 'SELECT 1;', 'V1.1__dotted.sql': 'SELECT 1;' });
    const r = await cli('script', 'sync', dir, '--url', env.adminUrl);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERROR: 3 file\(s\) in .* are not versioned migration files: R__views\.sql: repeatable migrations \(R__\) are not supported yet; V1\.1__dotted\.sql: not named V<N>__<words>\.sql; orders\.sql: not named V<N>__<words>\.sql\nHINT: Name each V<N>__<words>\.sql/);
    expect((await scripts()).map((s) => s.id)).toEqual([1, 2, 5]);
  });

  it('in a subprocess: sync && apply succeeds the way CI runs it, and a changed file ends it with exit code 1', async () => {
    const out = path.join(projectRoot(), 'dist', 'script-files-test');
    // Its own output folder, so a build of another test file at the same time does not get in the way.
    execFileSync(process.execPath, [path.join(projectRoot(), 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', out],
      { cwd: projectRoot(), stdio: 'inherit' });
    const run = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(out, 'src', 'cli.js'), ...args],
        { env: { PATH: process.env.PATH ?? '', HOME: tmp, DATABASE_URL: env.adminUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += String(c)));
      child.stderr.on('data', (c) => (stderr += String(c)));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    let r = await run(['script', 'sync', migrations]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/V6__customers\.sql: script 6 added\n4 file\(s\): 1 added, 3 unchanged\n$/);
    r = await run(['apply']);
    expect(r.code).toBe(0);
    expect(await env.queryIn('sfiles_t2', `SELECT to_regclass('mgttest.customers') IS NOT NULL AS present`)).toEqual([{ present: true }]);

    await writeFile(path.join(migrations, 'V6__customers.sql'), 'CREATE TABLE mgttest.customers (id bigint);');
    r = await run(['script', 'sync', migrations]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^ERROR 42710: admmgt: refused, registered scripts never change: V6__customers\.sql \(script 6\): it changed since it was registered as script 6/);
  });

  it('a file the lexer refuses, or with the header on a later line, refuses the whole sync naming it; --draft registers new files designing', async () => {
    await writeFile(path.join(migrations, 'V6__customers.sql'), 'CREATE TABLE mgttest.customers (id int);');
    await writeFile(path.join(migrations, 'V7__seven.sql'), 'CREATE TABLE mgttest.seven (id int);');
    await writeFile(path.join(migrations, 'V8__eight.sql'), 'CREATE TABLE mgttest.eight (id int);\nCOMMIT;\n');
    let r = await cli('script', 'sync', migrations, '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERROR 42601: admmgt: file V8__eight\.sql holds the transaction-control statement COMMIT\n/);
    await writeFile(path.join(migrations, 'V8__eight.sql'), '-- eight\n-- admmgt: no-transaction\nCREATE TABLE mgttest.eight (id int);\n');
    r = await cli('script', 'sync', migrations, '--url', env.adminUrl);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERROR 42601: admmgt: file V8__eight\.sql has the header "-- admmgt: no-transaction" on line 2, where it does not count\nHINT: Move it to the first line of V8__eight\.sql/);
    // V7 came before V8 in id order, and is not registered either.
    expect((await scripts()).map((s) => s.id)).toEqual([1, 2, 5, 6]);

    await rm(path.join(migrations, 'V8__eight.sql'));
    await rm(path.join(migrations, 'V1__orders.sql'));
    r = await cli('script', 'sync', migrations, '--url', env.adminUrl, '--draft');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/V7__seven\.sql: script 7 added\n4 file\(s\): 1 added, 3 unchanged\n$/);
    expect(r.stderr).toContain('WARNING: admmgt script sync: script 1 was registered from V1__orders.sql, which is not among the files given');
    expect(await env.rows('SELECT s.status, q.status AS step_status FROM admmgt.scripts s JOIN admmgt.script_sql q ON q.scriptid = s.id WHERE s.id = 7'))
      .toEqual([{ status: 0, step_status: 0 }]);
    r = await cli('apply', '--url', env.adminUrl);
    expect(r.code).toBe(0);
    expect(await env.versions()).toEqual({ sfiles_tpl: 6, sfiles_t1: 6, sfiles_t2: 6 });
  });
});
