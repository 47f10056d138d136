// admmgt metrics: the fleet as Prometheus metrics. A fleet in a real database (a template, tenants
// created, designing and pending, a script that failed on one tenant, runs with fixed times), the
// exact samples admmgt.metrics() returns and the CLI prints, the whole output read by a strict
// parser of the text format, label escaping, --output written atomically, and the built CLI's
// exit codes in a subprocess.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMetrics, type MetricRow } from '../src/commands/metrics.js';
import { projectRoot } from '../src/paths.js';
import { cli } from './support/cli.js';
import { createEnv, type TestEnv } from './support/env.js';

let env: TestEnv;
let tmp: string;

// ---- A strict reader of the Prometheus text exposition format (version 0.0.4) ------------------
// What the format allows and nothing else: HELP and TYPE at most once per name and before its
// samples, a name's lines in one group, label values with only the escapes \\ \" \n, no label
// twice in a sample, no series twice, values as Go's ParseFloat reads them, a final line feed.

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Family { name: string; help?: string; type?: string; samples: Sample[] }

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;

function unescape(s: string, allowQuote: boolean, where: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    if (c === '"' && allowQuote) return '"';
    throw new Error(`${where}: invalid escape \\${c}`);
  });
}

function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the text does not end with a line feed');
  const families = new Map<string, Family>();
  const done = new Set<string>();
  let current: string | undefined;
  const family = (name: string, where: string): Family => {
    if (current !== name) {
      if (done.has(name)) throw new Error(`${where}: ${name} has lines in two groups`);
      if (current !== undefined) done.add(current);
      current = name;
    }
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, samples: [] }));
    return f;
  };
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(.*)$/.exec(line);
      if (!m) return; // a comment
      const rest = m[2] ?? '';
      const n = NAME.exec(rest)?.[0];
      if (!n || !(rest.length === n.length || /^[ \t]/.test(rest.slice(n.length)))) throw new Error(`${where}: ${m[1]} without a metric name`);
      const arg = rest.slice(n.length).replace(/^[ \t]/, '');
      const f = family(n, where);
      if (m[1] === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: a second HELP for ${n}`);
        f.help = unescape(arg, false, where);
      } else {
        if (f.type !== undefined) throw new Error(`${where}: a second TYPE for ${n}`);
        if (f.samples.length) throw new Error(`${where}: TYPE for ${n} after its samples`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(arg)) throw new Error(`${where}: unknown type ${arg}`);
        f.type = arg;
      }
      return;
    }
    const name = NAME.exec(line)?.[0];
    if (!name) throw new Error(`${where}: no metric name: ${line}`);
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      for (;;) {
        if (rest.startsWith('}')) break;
        const ln = LABEL.exec(rest)?.[0];
        if (!ln) throw new Error(`${where}: bad label name at ${rest}`);
        rest = rest.slice(ln.length);
        const v = /^="((?:[^"\\\n]|\\.)*)"/.exec(rest);
        if (!v) throw new Error(`${where}: bad value of label ${ln}`);
        if (ln in labels) throw new Error(`${where}: label ${ln} twice`);
        labels[ln] = unescape(v[1] ?? '', true, where);
        rest = rest.slice(v[0].length);
        if (rest.startsWith(',')) rest = rest.slice(1);
        else if (!rest.startsWith('}')) throw new Error(`${where}: expected , or } at ${rest}`);
      }
      rest = rest.slice(1);
    }
    const parts = /^[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$/.exec(rest);
    if (!parts || !FLOAT.test(parts[1] ?? '')) throw new Error(`${where}: bad value in ${line}`);
    const f = family(name, where);
    const key = JSON.stringify(Object.entries(labels).sort());
    if (f.samples.some((s) => JSON.stringify(Object.entries(s.labels).sort()) === key)) throw new Error(`${where}: series ${name}${key} twice`);
    const raw = parts[1] ?? '';
    f.samples.push({ name, labels, value: raw.endsWith('Inf') ? (raw.startsWith('-') ? -Infinity : Infinity) : Number(raw) });
  });
  return families;
}

// ---- The fleet ---------------------------------------------------------------------------------

const T0 = Date.parse('2020-01-01T00:00:00Z') / 1000;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'admmgt-metrics-'));
  env = await createEnv('metrics');
  await env.makeTemplate('metrics_tpl');
  await env.makeTenants(['metrics_a', 'metrics_b']);
  // A tenant still being designed and one pending with no server yet: in the registry, not created.
  await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('metrics_later', 0), ('metrics_queued', 1)`);
  await env.addScript({ id: 1, description: 'items', tables: [{ schema: 'mgttest', name: 'items', columns: [{ name: 'id', type: 'bigint', primaryKey: true }] }] });
  await env.admin.query('CALL admmgt.applyScripts()');
  // Script 2 fails on metrics_b, which has a table of that name already.
  await env.queryIn('metrics_b', 'CREATE TABLE mgttest.orders (id int)');
  await env.addScript({ id: 2, description: 'orders', tables: [{ schema: 'mgttest', name: 'orders', columns: [{ name: 'id', type: 'bigint', primaryKey: true }] }] });
  await env.addScript({ id: 3, description: 'still designing', tables: [{ schema: 'mgttest', name: 'later', columns: [{ name: 'id', type: 'int' }] }] }, false);
  await env.admin.query('CALL admmgt.applyScripts()');
  // Fixed times: create 00:00:00-00:00:02.25, apply 01:00:00-01:00:01 and 02:00:00-02:00:03.5 (UTC).
  await env.admin.query(`
    WITH r AS (SELECT run_id, operation, row_number() OVER (PARTITION BY operation ORDER BY run_id) AS n FROM admmgt.runs)
    UPDATE admmgt.runs u
       SET started_at = timestamptz '2020-01-01 00:00:00+00' + CASE WHEN r.operation = 'create' THEN interval '0' ELSE r.n * interval '1 hour' END,
           finished_at = timestamptz '2020-01-01 00:00:00+00' + CASE WHEN r.operation = 'create' THEN interval '2.25 s'
                                                                     WHEN r.n = 1 THEN interval '1 hour 1 s' ELSE interval '2 hours 3.5 s' END
      FROM r WHERE r.run_id = u.run_id`);
});

afterAll(async () => {
  await env?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Every sample line the fleet gives, in order; the ages measured at 03:00:00 UTC. */
const SAMPLES = [
  'admmgt_targets{kind="template",server="local",status="created",version="2"} 1',
  'admmgt_targets{kind="tenant",server="",status="designing",version="0"} 1',
  'admmgt_targets{kind="tenant",server="",status="pending",version="0"} 1',
  'admmgt_targets{kind="tenant",server="local",status="created",version="1"} 1',
  'admmgt_targets{kind="tenant",server="local",status="created",version="2"} 1',
  'admmgt_scripts{status="designing"} 1',
  'admmgt_scripts{status="ready"} 1',
  'admmgt_scripts{status="applied"} 1',
  'admmgt_scripts{status="failed"} 0',
  'admmgt_failed_targets{operation="create"} 0',
  'admmgt_failed_targets{operation="adopt"} 0',
  'admmgt_failed_targets{operation="apply"} 1',
  'admmgt_failed_targets{operation="maintain"} 0',
  'admmgt_failed_targets{operation="lifecycle"} 0',
  'admmgt_failed_targets{operation="refresh"} 0',
  'admmgt_failed_targets{operation="deploy"} 0',
  'admmgt_runs_total{operation="create"} 1',
  'admmgt_runs_total{operation="apply"} 2',
  'admmgt_runs_total{operation="maintain"} 0',
  'admmgt_runs_total{operation="lifecycle"} 0',
  'admmgt_runs_total{operation="refresh"} 0',
  'admmgt_runs_total{operation="deploy"} 0',
  'admmgt_run_target_failures_total{operation="create"} 0',
  'admmgt_run_target_failures_total{operation="apply"} 1',
  'admmgt_run_target_failures_total{operation="maintain"} 0',
  'admmgt_run_target_failures_total{operation="lifecycle"} 0',
  'admmgt_run_target_failures_total{operation="refresh"} 0',
  'admmgt_run_target_failures_total{operation="deploy"} 0',
  'admmgt_run_in_progress{operation="create"} 0',
  'admmgt_run_in_progress{operation="apply"} 0',
  'admmgt_run_in_progress{operation="maintain"} 0',
  'admmgt_run_in_progress{operation="lifecycle"} 0',
  'admmgt_run_in_progress{operation="refresh"} 0',
  'admmgt_run_in_progress{operation="deploy"} 0',
  'admmgt_last_run_duration_seconds{operation="create"} 2.25',
  'admmgt_last_run_duration_seconds{operation="apply"} 3.5',
  `admmgt_last_run_finished_timestamp_seconds{operation="create"} ${T0 + 2.25}`,
  `admmgt_last_run_finished_timestamp_seconds{operation="apply"} ${T0 + 7203.5}`,
  'admmgt_last_run_age_seconds{operation="create"} 10797.75',
  'admmgt_last_run_age_seconds{operation="apply"} 3596.5',
  'admmgt_last_run_targets{operation="create"} 2',
  'admmgt_last_run_targets{operation="apply"} 3',
  'admmgt_last_run_failed_targets{operation="create"} 0',
  'admmgt_last_run_failed_targets{operation="apply"} 1',
];

const TYPES: Record<string, string> = {
  admmgt_targets: 'gauge',
  admmgt_scripts: 'gauge',
  admmgt_failed_targets: 'gauge',
  admmgt_runs_total: 'counter',
  admmgt_run_target_failures_total: 'counter',
  admmgt_run_in_progress: 'gauge',
  admmgt_last_run_duration_seconds: 'gauge',
  admmgt_last_run_finished_timestamp_seconds: 'gauge',
  admmgt_last_run_age_seconds: 'gauge',
  admmgt_last_run_targets: 'gauge',
  admmgt_last_run_failed_targets: 'gauge',
};

/** Metrics printed only where there is something to say: the warm pool's, for a server that has one (test/pool.test.ts reads them). */
const POOL_TYPES: Record<string, string> = {
  admmgt_pool_ready: 'gauge',
  admmgt_pool_size: 'gauge',
};

const sampleLines = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#'));

/** The CLI's text with every age replaced by what it was at 03:00:00 UTC (the CLI measures to now()). */
function agesAt3(text: string): string {
  return text.replace(/^(admmgt_last_run_age_seconds\{operation="(\w+)"\}) (\S+)$/gm, (_, series: string, op: string, v: string) => {
    const finished = op === 'create' ? T0 + 2.25 : T0 + 7203.5;
    const nowThen = finished + Number(v);
    // The age is measured to the moment of the call: within a minute of this test's clock.
    expect(Math.abs(nowThen - Date.now() / 1000)).toBeLessThan(60);
    return `${series} ${Math.round((T0 + 3 * 3600 - finished) * 100) / 100}`;
  });
}

describe('admmgt.metrics()', () => {
  it('returns every sample of the fleet, in order, with one HELP and TYPE per name', async () => {
    const rows = await env.rows<MetricRow>(`SELECT * FROM admmgt.metrics(timestamptz '2020-01-01 03:00:00+00')`);
    expect(sampleLines(formatMetrics(rows))).toEqual(SAMPLES);
    for (const name of new Set(rows.map((r) => r.name))) {
      const of = rows.filter((r) => r.name === name);
      expect(new Set(of.map((r) => `${r.type}|${r.help}`)).size, name).toBe(1);
      expect(of[0]?.type, name).toBe(TYPES[name]);
      expect(of[0]?.help.length, name).toBeGreaterThan(20);
    }
    expect([...new Set(rows.map((r) => r.name))]).toEqual(Object.keys(TYPES));
  });

  it('a run goes on while its session holds the lock: in progress, not the last finished run', async () => {
    const holder = new pg.Client({ connectionString: env.adminUrl });
    await holder.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(admmgt._lock_class(), admmgt._lock_key('refresh'))`);
      await holder.query(`INSERT INTO admmgt.runs (operation) VALUES ('refresh')`);
      const lines = sampleLines(formatMetrics(await env.rows<MetricRow>('SELECT * FROM admmgt.metrics()')));
      expect(lines).toContain('admmgt_run_in_progress{operation="refresh"} 1');
      expect(lines).toContain('admmgt_run_in_progress{operation="apply"} 0');
      expect(lines).toContain('admmgt_runs_total{operation="refresh"} 1');
      expect(lines.filter((l) => l.startsWith('admmgt_last_run_duration_seconds{operation="refresh"}'))).toEqual([]);
    } finally {
      await holder.end();
    }
    // Its session gone, the run is no longer going on (the next refresh closes it).
    for (let i = 0; i < 50; i++) {
      const lines = sampleLines(formatMetrics(await env.rows<MetricRow>('SELECT * FROM admmgt.metrics()')));
      if (lines.includes('admmgt_run_in_progress{operation="refresh"} 0')) break;
      if (i === 49) throw new Error('refresh still in progress after its session ended');
      await new Promise((r) => setTimeout(r, 100));
    }
    await env.admin.query(`DELETE FROM admmgt.runs WHERE operation = 'refresh'`);
  });
});

describe('admmgt metrics', () => {
  it('docs/monitoring.md names exactly the metrics it prints, with their types', async () => {
    const doc = await readFile(path.join(projectRoot(), 'docs', 'monitoring.md'), 'utf8');
    const table = [...doc.matchAll(/^\| `(admmgt_\w+)` \| (\w+) \|/gm)].map((m) => [m[1], m[2]]);
    expect(Object.fromEntries(table)).toEqual({ ...TYPES, ...POOL_TYPES });
    expect(table.map(([n]) => n)).toEqual([...Object.keys(TYPES), ...Object.keys(POOL_TYPES)]);
  });

  it('prints the exposition text: HELP and TYPE once per name, then its samples', async () => {
    const r = await cli('metrics', '--url', env.adminUrl);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const text = agesAt3(r.stdout);
    expect(sampleLines(text)).toEqual(SAMPLES);
    // Every line is HELP, TYPE or a sample, each family's HELP and TYPE just before its samples.
    const expected: string[] = [];
    for (const name of Object.keys(TYPES)) {
      const help = new RegExp(`^# HELP ${name} \\S.*$`, 'm').exec(text)?.[0];
      expect(help, name).toBeDefined();
      expected.push(help ?? '', `# TYPE ${name} ${TYPES[name]}`, ...SAMPLES.filter((s) => s.startsWith(name + '{')));
    }
    expect(text).toBe(expected.join('\n') + '\n');
    expect(text).toContain('# HELP admmgt_failed_targets Targets whose latest outcome of the operation failed, as admmgt.failures lists them: they need a person; the next run of the operation retries them.\n');
  });

  it('is valid exposition text, as a strict parser of the format reads it', async () => {
    const r = await cli('metrics', '--url', env.adminUrl);
    const families = parseExposition(r.stdout);
    expect([...families.keys()]).toEqual(Object.keys(TYPES));
    for (const f of families.values()) {
      expect(f.type).toBe(TYPES[f.name]);
      expect(f.help).toMatch(/\S/);
      expect(f.samples.length).toBeGreaterThan(0);
      if (f.type === 'counter') expect(f.name).toMatch(/_total$/);
    }
    expect(families.get('admmgt_failed_targets')?.samples.find((s) => s.labels.operation === 'apply')?.value).toBe(1);
    // The parser itself refuses what the format does not allow.
    expect(() => parseExposition('a 1')).toThrow(/line feed/);
    expect(() => parseExposition('a{x="1"} 1\nb 2\na{x="2"} 3\n')).toThrow(/two groups/);
    expect(() => parseExposition('a{x="1",x="2"} 1\n')).toThrow(/twice/);
    expect(() => parseExposition('a{x="1\\t"} 1\n')).toThrow(/invalid escape/);
    expect(() => parseExposition('a{x="1"b"} 1\n')).toThrow();
    expect(() => parseExposition('a 1\n# TYPE a gauge\n')).toThrow(/after its samples/);
    expect(() => parseExposition('a one\n')).toThrow(/bad value/);
  });

  it('passes promtool check metrics, where promtool is installed', async (ctx) => {
    let promtool = false;
    try {
      execFileSync('promtool', ['--version'], { stdio: 'ignore' });
      promtool = true;
    } catch {
      // Not on this machine (Debian: apt-get install prometheus); the strict parser above still runs.
    }
    if (!promtool) ctx.skip();
    const r = await cli('metrics', '--url', env.adminUrl);
    // promtool lints the names too (units, _total on counters) and exits non-zero on any finding.
    expect(execFileSync('promtool', ['check', 'metrics'], { input: r.stdout, encoding: 'utf8' })).toBe('');
  });

  it('escapes label values (backslash, double quote, line feed) and HELP texts, and refuses rows a scraper would reject', () => {
    const row = (labels: MetricRow['labels'], extra: Partial<MetricRow> = {}): MetricRow =>
      ({ name: 'admmgt_test', labels, value: 1, help: 'A help with a \\ backslash\nand a second line.', type: 'gauge', ...extra });
    const hostile = 'a"b\\c\nd';
    const text = formatMetrics([row({ server: hostile, b: 'plain' }), row({ server: 'x' }, { value: 0.5 }),
      row({}, { name: 'admmgt_other', value: Infinity }), row(null, { name: 'admmgt_nan', value: NaN })]);
    expect(text).toBe([
      '# HELP admmgt_test A help with a \\\\ backslash\\nand a second line.',
      '# TYPE admmgt_test gauge',
      'admmgt_test{b="plain",server="a\\"b\\\\c\\nd"} 1',
      'admmgt_test{server="x"} 0.5',
      '# HELP admmgt_other A help with a \\\\ backslash\\nand a second line.',
      '# TYPE admmgt_other gauge',
      'admmgt_other +Inf',
      '# HELP admmgt_nan A help with a \\\\ backslash\\nand a second line.',
      '# TYPE admmgt_nan gauge',
      'admmgt_nan NaN',
    ].join('\n') + '\n');
    const f = parseExposition(text);
    expect(f.get('admmgt_test')?.samples[0]?.labels).toEqual({ b: 'plain', server: hostile });
    expect(f.get('admmgt_test')?.help).toBe('A help with a \\ backslash\nand a second line.');

    expect(() => formatMetrics([row({ a: '1' }), row({ a: '1' })])).toThrow(/the series admmgt_test\{a="1"\} twice/);
    expect(() => formatMetrics([row({}), row({ a: '1' }, { type: 'counter' })])).toThrow(/two different HELP or TYPE/);
    expect(() => formatMetrics([row({}, { name: 'admmgt-test' })])).toThrow(/metric name/);
    expect(() => formatMetrics([row({ 'bad-label': '1' })])).toThrow(/label name/);
    expect(() => formatMetrics([row({ __name__: '1' })])).toThrow(/label name/);
    expect(() => formatMetrics([row({}, { type: 'histogram' })])).toThrow(/the type/);
  });

  it('--output writes the file atomically: a new file renamed over the old one, no .tmp left', async () => {
    const dir = path.join(tmp, 'textfile');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    const file = path.join(dir, 'admmgt.prom');
    await writeFile(file, '# an older scrape\n');
    // A leftover of a write that died midway is overwritten, then renamed away.
    await writeFile(file + '.tmp', 'half a fil');
    const before = await stat(file);
    const r = await cli('metrics', '--url', env.adminUrl, '--output', file);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('');
    expect(await readdir(dir)).toEqual(['admmgt.prom']);
    const after = await stat(file);
    // A rename replaces the directory entry: another inode. A write in place would keep the old one.
    expect(after.ino).not.toBe(before.ino);
    const text = await readFile(file, 'utf8');
    expect(sampleLines(agesAt3(text))).toEqual(SAMPLES);
    parseExposition(text);

    // An error (no server there) leaves the file as it was, and no .tmp.
    const down = await cli('metrics', '--url', 'postgresql://nobody@127.0.0.1:1/postgres', '--output', file);
    expect(down.code).toBe(1);
    expect(await readFile(file, 'utf8')).toBe(text);
    expect(await readdir(dir)).toEqual(['admmgt.prom']);

    // A folder that is not there: exit code 1, naming the file; nothing written.
    const missing = path.join(tmp, 'nosuch', 'admmgt.prom');
    const r2 = await cli('metrics', '--url', env.adminUrl, '--output', missing);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toBe(`ERROR: cannot write ${missing}: ENOENT\nHINT: Name a file in a folder that exists and that this user may write, such as the --collector.textfile.directory of node_exporter; the file there is left as it was.\n`);
    expect(existsSync(path.join(tmp, 'nosuch'))).toBe(false);

    const empty = await cli('metrics', '--url', env.adminUrl, '--output', '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^ERROR: --output needs a file name/);
  });

  it('in a subprocess: exit code 0 while targets failed, 2 without connection settings, 1 when the server is down', async () => {
    const out = path.join(projectRoot(), 'dist', 'metrics-test');
    // Its own output folder, so a build of another test file at the same time does not get in the way.
    execFileSync(process.execPath, [path.join(projectRoot(), 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--outDir', out],
      { cwd: projectRoot(), stdio: 'inherit' });
    const run = (args: string[], extra: Record<string, string> = {}) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(out, 'src', 'cli.js'), ...args],
        { env: { PATH: process.env.PATH ?? '', HOME: tmp, ADMMGT_EMBEDDED_DIR: path.join(tmp, 'embedded'), ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += String(c)));
      child.stderr.on('data', (c) => (stderr += String(c)));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    let r = await run(['metrics'], { DATABASE_URL: env.adminUrl });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('\nadmmgt_failed_targets{operation="apply"} 1\n');

    r = await run(['metrics']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ERROR: no PostgreSQL server given\n/);
    expect(r.stdout).toBe('');

    const file = path.join(tmp, 'down.prom');
    await writeFile(file, '# kept\n');
    r = await run(['metrics', '--output', file], { DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/postgres' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERROR: cannot connect to postgresql:\/\/nobody@127\.0\.0\.1:1\/postgres/);
    expect(await readFile(file, 'utf8')).toBe('# kept\n');
    expect(existsSync(file + '.tmp')).toBe(false);
    expect(existsSync(path.join(tmp, 'embedded'))).toBe(false);
  });
});
