// libpq's connection service file (pg_service.conf), which node-postgres does not read: PGSERVICE
// names a section, found first in the user's file (PGSERVICEFILE, else ~/.pg_service.conf), then
// in the system's (PGSYSCONFDIR/pg_service.conf, Debian's /etc/postgresql-common by default).
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AdmmgtError } from './errors.js';

export type ServiceParams = Record<string, string>;

/** The files libpq searches for a service, in its order. */
export function serviceFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const user = env.PGSERVICEFILE ?? path.join(env.HOME ?? os.homedir(), '.pg_service.conf');
  const system = path.join(env.PGSYSCONFDIR ?? '/etc/postgresql-common', 'pg_service.conf');
  return [user, system];
}

/** The sections of a service file: [name] lines, then key=value lines; # starts a comment line. */
export function parseServiceFile(text: string, file: string): Map<string, ServiceParams> {
  const sections = new Map<string, ServiceParams>();
  let current: ServiceParams | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = {};
      sections.set(section[1]!.trim(), current);
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0 || !current) {
      throw new AdmmgtError(`${file} line ${i + 1} is not a [service] header or a key=value line`, {
        hint: 'See "The Connection Service File" in the PostgreSQL documentation.',
        exitCode: 2,
      });
    }
    current[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  });
  return sections;
}

/** The parameters of service `name`, from the first file that has it. */
export async function readService(name: string, env: NodeJS.ProcessEnv = process.env): Promise<{ params: ServiceParams; file: string }> {
  const files = serviceFiles(env);
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    const params = parseServiceFile(text, file).get(name);
    if (params) return { params, file };
  }
  throw new AdmmgtError(`PGSERVICE names service ${name}, which is in none of ${files.join(', ')}`, {
    hint: 'Add a [' + name + '] section to one of them, point PGSERVICEFILE at the file that has it, or unset PGSERVICE.',
    exitCode: 2,
  });
}

/**
 * A service as a URL node-postgres reads: the keywords go into the query, where
 * pg-connection-string takes host, port, user, password, sslmode, sslrootcert, application_name,
 * options and the rest as libpq does. Never shown: it may hold a password.
 */
export function serviceUrl(params: ServiceParams): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (key === 'dbname') continue;
    query.set(key === 'hostaddr' && !params.host ? 'host' : key, value);
  }
  const db = params.dbname ? encodeURIComponent(params.dbname) : '';
  return `postgresql:///${db}?${query.toString()}`;
}
