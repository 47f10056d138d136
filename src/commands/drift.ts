// admmgt drift: CALL admmgt.detectDrift(...), then what it kept in admmgt.drift for this run: per
// target, each object of its app schemas missing, extra or different from the template at the
// target's version. Exit code 3 when anything drifted or a target could not be fingerprinted.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { callOptions, detectDrift, selectionOptions, verifyOptions, workersOptions, type CallArgv, type SelectionArgv, type VerifyArgv, type WorkersArgv } from '../calls.js';
import { withAdmin, type RunSummary } from '../context.js';
import { AdmmgtError } from '../errors.js';

export interface DriftRow {
  dbname: string;
  server: string;
  version: number | null;
  object: string;
  kind: 'missing' | 'extra' | 'different' | 'cannot compare';
  detail: string | null;
}

export interface DriftReport {
  run_id: number | null;
  targets: number;
  failed: number;
  /** Targets with at least one object missing, extra or different. */
  drifted: number;
  /** Targets that could not be compared (no fingerprint of theirs or of the template at their version). */
  cannot_compare: number;
  drift: DriftRow[];
}

export async function driftRows(client: pg.Client, runId: number): Promise<DriftRow[]> {
  const { rows } = await client.query<DriftRow>(
    `SELECT dbname, server, version, object, kind, detail FROM admmgt.drift WHERE run_id = $1 ORDER BY server, dbname, object, kind`,
    [runId]);
  return rows;
}

export function driftReport(run: RunSummary | undefined, rows: DriftRow[]): DriftReport {
  const targets = (kinds: (k: DriftRow['kind']) => boolean) => new Set(rows.filter((r) => kinds(r.kind)).map((r) => `${r.server}/${r.dbname}`)).size;
  return {
    run_id: run?.run_id ?? null,
    targets: run?.targets ?? 0,
    failed: run?.failed ?? 0,
    drifted: targets((k) => k !== 'cannot compare'),
    cannot_compare: targets((k) => k === 'cannot compare'),
    drift: rows,
  };
}

export function formatDrift(r: DriftReport): string {
  if (r.run_id === null) return 'drift: nothing compared';
  const lines = [`run ${r.run_id}: ${r.targets} target(s) fingerprinted, ${r.drifted} drifted, ${r.cannot_compare} cannot be compared`];
  let last = '';
  for (const row of r.drift) {
    const key = `${row.server}/${row.dbname}`;
    if (key !== last) lines.push(`  ${row.dbname} (server ${row.server}, version ${row.version ?? '?'}):`);
    last = key;
    lines.push(row.kind === 'cannot compare' ? `    cannot compare: ${row.detail}` : `    ${row.kind.padEnd(9)} ${row.object}`);
  }
  return lines.join('\n');
}

interface DriftArgv extends CallArgv, SelectionArgv, VerifyArgv, WorkersArgv {}

export const command: CommandModule<object, DriftArgv> = {
  command: 'drift',
  describe: 'CALL admmgt.detectDrift(): fingerprint the app schemas of every created target (not the template) and compare each with the template at its version; a target whose catalog stamp has not moved since its last fingerprint is compared with that one; exit code 3 when one drifted or could not be fingerprinted',
  builder: (y) =>
    workersOptions(verifyOptions(selectionOptions(callOptions(y)),
      'Fingerprint every chosen target anew, even those whose catalogs have not changed since their last fingerprint (p_verify => true)')) as Argv<DriftArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client }) => {
      const run = await detectDrift(client, { parallel: a.parallel, waitSeconds: a.wait, tenants: a.tenant, server: a.server, tag: a.tag, verify: a.verify, workers: a.workers });
      const report = driftReport(run, run ? await driftRows(client, run.run_id) : []);
      if (a.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else process.stdout.write(formatDrift(report) + '\n');
      if (report.drifted > 0 || report.failed > 0) {
        throw new AdmmgtError(`${report.drifted} target(s) drifted from the template${report.failed ? `, ${report.failed} could not be fingerprinted` : ''}`, {
          hint: 'Each line above names an object of a target (a database, or a tenant schema) that the template at its version has not (extra), has and it lacks (missing) or has otherwise (different); see SELECT * FROM admmgt.drift for the definitions.',
          exitCode: 3,
        });
      }
    }),
};
