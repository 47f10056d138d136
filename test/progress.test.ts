// The per-target progress NOTICEs of a run, as the CLI's progress bar reads them (PROGRESS in
// src/context.ts): real runs of create_database and applyScripts, one target failing, send them
// in that format with the right counts, and noticePrinter draws the bar from them on a terminal.
// Every database of this file starts with progress_.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Notice } from '../src/connection.js';
import { noticePrinter, PROGRESS } from '../src/context.js';
import { createEnv, type TestEnv } from './support/env.js';

const TPL = 'progress_tpl';
const T1 = 'progress_t1';
const T2 = 'progress_t2';
let env: TestEnv;
/** Every NOTICE and WARNING of the two runs, as the CLI's client gets them. */
const notices: Notice[] = [];

beforeAll(async () => {
  env = await createEnv('progress');
  await env.makeTemplate(TPL);
  const collect = (n: Notice) => notices.push(n);
  env.admin.on('notice', collect);
  try {
    // One target at a time, so that the order of the NOTICEs is known.
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ($1, 1), ($2, 1)`, [T1, T2]);
    await env.admin.query('CALL admmgt.create_database(p_parallel => 1)');
    // T2 already has the table the script creates: it fails there.
    await env.queryIn(T2, 'CREATE TABLE mgttest.clash (id int)');
    await env.addScript({ id: 1, description: 'clash', tables: [{ schema: 'mgttest', name: 'clash', columns: [{ name: 'id', type: 'int' }] }] });
    await env.admin.query('CALL admmgt.applyScripts(p_parallel => 1)');
  } finally {
    env.admin.off('notice', collect);
  }
});
afterAll(async () => {
  await env?.close();
});

const WARNING = 'admmgt apply: progress_t2 failed: admmgt.script_tables id 1: relation "clash" already exists (SQLSTATE 42P07)';

describe('progress NOTICEs', () => {
  it('come one per target, after the WARNING of a target that failed', () => {
    expect(notices.map(({ severity, message }) => ({ severity, message }))).toEqual([
      { severity: 'NOTICE', message: 'admmgt create: progress_t1 done  (1/2 done, 0 failed)' },
      { severity: 'NOTICE', message: 'admmgt create: progress_t2 done  (2/2 done, 0 failed)' },
      // The template goes first, on its own; the tenants follow.
      { severity: 'NOTICE', message: 'admmgt apply: progress_tpl done  (1/1 done, 0 failed)' },
      { severity: 'NOTICE', message: 'admmgt apply: progress_t1 done  (1/2 done, 0 failed)' },
      { severity: 'WARNING', message: WARNING },
      { severity: 'NOTICE', message: 'admmgt apply: progress_t2 FAILED  (2/2 done, 1 failed)' },
    ]);
  });

  it('match the pattern the CLI parses, counting 1/N to N/N and the failures so far', () => {
    const parsed = notices.filter((n) => n.severity === 'NOTICE').map((n) => {
      const m = PROGRESS.exec(n.message ?? '');
      expect(m, n.message).not.toBeNull();
      const [, op, target, outcome, done, total, failed] = m!;
      return { op, target, outcome, done: Number(done), total: Number(total), failed: Number(failed) };
    });
    expect(parsed).toEqual([
      { op: 'create', target: T1, outcome: 'done', done: 1, total: 2, failed: 0 },
      { op: 'create', target: T2, outcome: 'done', done: 2, total: 2, failed: 0 },
      { op: 'apply', target: TPL, outcome: 'done', done: 1, total: 1, failed: 0 },
      { op: 'apply', target: T1, outcome: 'done', done: 1, total: 2, failed: 0 },
      { op: 'apply', target: T2, outcome: 'FAILED', done: 2, total: 2, failed: 1 },
    ]);
    // The WARNING is no progress NOTICE: the CLI prints it on its own line.
    expect(PROGRESS.test(WARNING)).toBe(false);
  });
});

describe('noticePrinter', () => {
  /** Feed the collected NOTICEs to a printer; what it wrote to stderr (the bar) and its out lines. */
  function print(tty: boolean): { stderr: string; lines: string[] } {
    let stderr = '';
    const lines: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((stderr += String(c)), true));
    try {
      const printer = noticePrinter((l) => lines.push(l), tty);
      for (const n of notices) printer(n);
    } finally {
      spy.mockRestore();
    }
    return { stderr, lines };
  }

  it('on a terminal draws one bar per run from the progress NOTICEs, a failure breaking the line for its WARNING', () => {
    const { stderr, lines } = print(true);
    expect(stderr).toBe([
      '\r\x1b[Kcreate [###############...............] 1/2, 0 failed  progress_t1',
      '\r\x1b[Kcreate [##############################] 2/2, 0 failed  progress_t2', '\n',
      '\r\x1b[Kapply [##############################] 1/1, 0 failed  progress_tpl', '\n',
      '\r\x1b[Kapply [###############...............] 1/2, 0 failed  progress_t1', '\n',
      '\r\x1b[Kapply [##############################] 2/2, 1 failed  progress_t2', '\n',
    ].join(''));
    expect(lines).toEqual([`WARNING: ${WARNING} (statement: CREATE TABLE mgttest.clash (\n    id int\n))`]);
  });

  it('elsewhere prints every NOTICE as a line of its own and draws nothing', () => {
    const { stderr, lines } = print(false);
    expect(stderr).toBe('');
    expect(lines).toEqual([
      'admmgt create: progress_t1 done  (1/2 done, 0 failed)',
      'admmgt create: progress_t2 done  (2/2 done, 0 failed)',
      'admmgt apply: progress_tpl done  (1/1 done, 0 failed)',
      'admmgt apply: progress_t1 done  (1/2 done, 0 failed)',
      `WARNING: ${WARNING} (statement: CREATE TABLE mgttest.clash (\n    id int\n))`,
      'admmgt apply: progress_t2 FAILED  (2/2 done, 1 failed)',
    ]);
  });
});
