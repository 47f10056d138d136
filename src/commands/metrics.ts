// admmgt metrics: the fleet in the Prometheus text exposition format, for node_exporter's textfile
// collector (--output, written atomically) or any scraper that runs a command. What is measured,
// every name, label and help text, is decided in the admin database (SELECT * FROM admmgt.metrics(),
// plpgsql/procedures/230_metrics.sql); this only formats its rows.
import { open, rename, rm } from 'node:fs/promises';
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { AdmmgtError, usageError } from '../errors.js';

/** One row of admmgt.metrics(): one sample, with the HELP and TYPE of its metric. */
export interface MetricRow {
  name: string;
  labels: Record<string, string | number | boolean | null> | null;
  value: number;
  help: string;
  type: string;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'untyped']);

/** The samples, in the order admmgt.metrics() returns them. */
export async function readMetrics(client: pg.Client): Promise<MetricRow[]> {
  const { rows } = await client.query<MetricRow>(
    'SELECT m.name, m.labels, m.value, m.help, m.type FROM admmgt.metrics() WITH ORDINALITY AS m ORDER BY m.ordinality');
  return rows;
}

/** A label value as the text format wants it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A HELP text as the text format wants it: backslash and line feed escaped. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value: Go's float syntax, with NaN, +Inf and -Inf. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function bad(message: string): AdmmgtError {
  return new AdmmgtError(`admmgt.metrics() returned ${message}`, { hint: 'This is a bug of admmgt: report it with the output of SELECT * FROM admmgt.metrics().' });
}

/**
 * The exposition text of the rows: per metric name one HELP and one TYPE line, then its samples,
 * each name's samples together (in the order of their first row), label names sorted. Refuses
 * rows that would make a text a scraper rejects: a bad metric or label name, an unknown type, one
 * name with two helps or types, or one series twice.
 */
export function formatMetrics(rows: MetricRow[]): string {
  const families = new Map<string, { help: string; type: string; samples: string[]; series: Set<string> }>();
  for (const r of rows) {
    if (!METRIC_NAME.test(r.name)) throw bad(`the metric name ${JSON.stringify(r.name)}, which is not one`);
    if (!TYPES.has(r.type)) throw bad(`the type ${JSON.stringify(r.type)} for ${r.name}`);
    let f = families.get(r.name);
    if (!f) {
      f = { help: r.help, type: r.type, samples: [], series: new Set() };
      families.set(r.name, f);
    } else if (f.help !== r.help || f.type !== r.type) {
      throw bad(`two different HELP or TYPE texts for ${r.name}`);
    }
    const names = Object.keys(r.labels ?? {}).sort();
    for (const n of names) {
      if (!LABEL_NAME.test(n) || n.startsWith('__')) throw bad(`the label name ${JSON.stringify(n)} for ${r.name}, which is not one`);
    }
    const labels = names.map((n) => `${n}="${escapeLabelValue(String(r.labels?.[n] ?? ''))}"`).join(',');
    if (f.series.has(labels)) throw bad(`the series ${r.name}{${labels}} twice`);
    f.series.add(labels);
    if (typeof r.value !== 'number') throw bad(`the value ${JSON.stringify(r.value)} for ${r.name}, which is not a number`);
    f.samples.push(`${r.name}${labels ? `{${labels}}` : ''} ${formatValue(r.value)}`);
  }
  const lines: string[] = [];
  for (const [name, f] of families) {
    lines.push(`# HELP ${name} ${escapeHelp(f.help)}`, `# TYPE ${name} ${f.type}`, ...f.samples);
  }
  return lines.map((l) => l + '\n').join('');
}

/**
 * Write text to file so that a reader sees the old file or the whole new one, never a part:
 * into file.tmp beside it (the textfile collector reads only *.prom), flushed, then renamed over file.
 */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new AdmmgtError(`cannot write ${file}: ${code}`, {
      hint: 'Name a file in a folder that exists and that this user may write, such as the --collector.textfile.directory of node_exporter; the file there is left as it was.',
    });
  }
}

interface MetricsArgv extends GlobalArgs {
  output?: string;
}

export const command: CommandModule<object, MetricsArgv> = {
  command: 'metrics',
  describe: 'Print the fleet as Prometheus metrics (text format): targets by kind, server, status and version, scripts by status, failed targets, runs and the last finished run per operation, runs in progress. Exit code 0 even when targets failed (admmgt_failed_targets says so)',
  builder: (y) =>
    withGlobalOptions(y).option('output', {
      type: 'string',
      describe: 'Write to this file instead of stdout, atomically (FILE.tmp, then renamed): for node_exporter\'s textfile collector, e.g. /var/lib/node_exporter/textfile/admmgt.prom. On an error the file is left as it was',
    }) as Argv<MetricsArgv>,
  handler: (a) => {
    if (a.output !== undefined && !a.output.trim()) throw usageError('--output needs a file name', 'Give --output /var/lib/node_exporter/textfile/admmgt.prom, or leave it out to print on stdout.');
    return withAdmin(a, async ({ client }) => {
      const text = formatMetrics(await readMetrics(client));
      if (a.output !== undefined) await writeAtomically(a.output, text);
      else process.stdout.write(text);
    });
  },
};
