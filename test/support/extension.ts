// Whether a test of a PostgreSQL extension from a Debian package runs here. CI (CI set, the suite
// on Debian's PostgreSQL 15) installs the packages, so there the test always runs and fails when
// the extension is missing; elsewhere (another major, a machine without the package) it is
// skipped, saying why and how to run it.
import path from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';

export const DEBIAN_PG15_BINDIR = '/usr/lib/postgresql/15/bin';

export interface ExtensionGate {
  /** The extension's default version as the test server offers it, or null if it offers none. */
  version: string | null;
  /** CI on Debian's PostgreSQL 15: the extension must be there. */
  required: boolean;
  /** Why the test does not run here, or null when it runs. */
  skipReason: string | null;
}

const onCi = (): boolean => {
  const ci = (process.env.CI ?? '').toLowerCase();
  return ci !== '' && ci !== '0' && ci !== 'false';
};

/** The suite runs on clusters started from Debian's PostgreSQL 15 binaries. */
export const onDebianPg15 = (): boolean =>
  Boolean(process.env.ADMMGT_TEST_BINDIR) && path.resolve(process.env.ADMMGT_TEST_BINDIR!) === DEBIAN_PG15_BINDIR;

/**
 * The gate of extension `name` (Debian package `pkg`), read from pg_available_extensions of the
 * suite's server (the control files of the binaries it runs). `needsBinDir`: the test starts a
 * cluster of its own from ADMMGT_TEST_BINDIR (pg_cron must be preloaded), so it needs one.
 */
export async function extensionGate(name: string, pkg: string, needsBinDir = false): Promise<ExtensionGate> {
  const required = onCi() && onDebianPg15();
  const how = `on Debian: apt-get install ${pkg}, then run with ADMMGT_TEST_BINDIR=${DEBIAN_PG15_BINDIR}`;
  if (needsBinDir && (!process.env.ADMMGT_TEST_BINDIR || process.env.ADMMGT_TEST_URL || process.env.ADMMGT_TEST_PROVIDER)) {
    return {
      version: null, required,
      skipReason: required ? null : `${name} needs a cluster of its own, started from ADMMGT_TEST_BINDIR (${how})`,
    };
  }
  const client = new pg.Client({ connectionString: inject('pgUrl') });
  await client.connect();
  try {
    const { rows } = await client.query<{ default_version: string }>(
      'SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = $1', [name]);
    const version = rows[0]?.default_version ?? null;
    const major = (await client.query<{ v: string }>(`SELECT current_setting('server_version_num')::int / 10000 AS v`)).rows[0]?.v;
    const skipReason = version !== null || required ? null : `the PostgreSQL ${major} under test has no ${name} extension (${how})`;
    return { version, required, skipReason };
  } finally {
    await client.end();
  }
}

/** A describe title that says why it is skipped; the reason goes to stderr as well, where a run shows it. */
export function gatedTitle(title: string, gate: ExtensionGate, file: string): string {
  if (gate.skipReason === null) return title;
  console.warn(`${file}: skipped: ${gate.skipReason}`);
  return `${title} (skipped: ${gate.skipReason})`;
}
