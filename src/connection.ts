// Where the admin database is, from what the user gave: --embedded, --url, DATABASE_URL or the
// libpq variables (PGSERVICE with its service file included). Only the demo falls back to the
// embedded PostgreSQL in the project's .admmgt/ folder by itself.
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pgpass from 'pgpass';
import { startCluster, type Cluster } from './cluster.js';
import { usageError } from './errors.js';
import { projectRoot } from './paths.js';
import { readService, serviceUrl } from './service-file.js';

export interface ConnectionChoice {
  url?: string;
  /** --embedded: use (and start) the embedded PostgreSQL. */
  embedded?: boolean;
  /** The command may use the embedded PostgreSQL when nothing else is given (demo only). */
  embeddedByDefault?: boolean;
}

export interface AdminTarget {
  config: pg.ClientConfig;
  /** Where it is, without any password. */
  describe: string;
  /** The URL given by the user (holds the password if they put one in it). */
  url?: string;
  embedded?: Cluster;
}

/** The libpq variables that say which server to reach; any of them set means "use the environment". */
export const LIBPQ_ENV = ['PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGSERVICE', 'PGPASSFILE'] as const;

/**
 * Where the embedded PostgreSQL keeps its data: ADMMGT_EMBEDDED_DIR, else .admmgt/embedded in a
 * checkout of admmgt; installed as a package, admmgt sits inside node_modules, which the next
 * npm ci wipes, so then in the user's data folder (XDG_DATA_HOME, else ~/.local/share).
 */
export function defaultEmbeddedDir(root: string, env: NodeJS.ProcessEnv, home: string): string {
  if (env.ADMMGT_EMBEDDED_DIR) return env.ADMMGT_EMBEDDED_DIR;
  if (!root.split(path.sep).includes('node_modules')) return path.join(root, '.admmgt', 'embedded');
  return path.join(env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'admmgt', 'embedded');
}

export function embeddedDir(): string {
  return defaultEmbeddedDir(projectRoot(), process.env, os.homedir());
}

/** A URL with its password replaced, for messages; a string that is no URL keeps nothing between : and @. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':****@');
  }
}

/** Refuse, before connecting, a URL that is not a PostgreSQL URL (exit code 2). */
export function checkPostgresUrl(url: string, source: string): void {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || !url.slice(u.protocol.length).startsWith('//')) {
    throw usageError(`${source} is not a PostgreSQL URL: ${redactUrl(url)}`,
      'Give postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or postgresql:///DATABASE?host=/socket/dir for a Unix socket.');
  }
}

async function embeddedTarget(): Promise<AdminTarget> {
  const cluster = await startCluster({ dir: embeddedDir() });
  return { config: { connectionString: cluster.url }, describe: `embedded PostgreSQL (${cluster.psql})`, embedded: cluster };
}

async function environmentTarget(): Promise<AdminTarget> {
  const env = process.env;
  const service = env.PGSERVICE ? await readService(env.PGSERVICE) : undefined;
  const p = service?.params ?? {};
  const host = p.host ?? p.hostaddr ?? env.PGHOST ?? env.PGHOSTADDR ?? 'localhost';
  const where = `host ${host}, port ${p.port ?? env.PGPORT ?? 5432}, database ${p.dbname ?? env.PGDATABASE ?? p.user ?? env.PGUSER ?? 'postgres'}`;
  return {
    config: service ? { connectionString: serviceUrl(service.params) } : {},
    describe: service ? `service ${env.PGSERVICE} of ${service.file} (${where})` : `PG* environment (${where})`,
  };
}

/**
 * Where the admin database is: --embedded, --url, DATABASE_URL, the libpq variables, and, only
 * for a command that may (the demo), the embedded PostgreSQL. Anything else stops with exit code
 * 2: a scheduled job whose environment lost its settings must not report success on another server.
 */
export async function resolveAdmin(choice: ConnectionChoice = {}): Promise<AdminTarget> {
  if (choice.embedded && choice.url) throw usageError('--embedded and --url name two servers; give one of them');
  if (choice.embedded) return embeddedTarget();
  const source = choice.url ? '--url' : 'DATABASE_URL';
  const url = choice.url || process.env.DATABASE_URL;
  if (url) {
    checkPostgresUrl(url, source);
    return { config: { connectionString: url }, describe: redactUrl(url), url };
  }
  if (LIBPQ_ENV.some((k) => process.env[k])) return environmentTarget();
  if (choice.embeddedByDefault) return embeddedTarget();
  throw usageError(
    'no PostgreSQL server given',
    `Give --url postgresql://..., set DATABASE_URL or the libpq variables (${LIBPQ_ENV.join(', ')}), or pass --embedded for the embedded PostgreSQL that admmgt demo starts.`,
  );
}

export interface Notice {
  severity?: string;
  message?: string;
  code?: string;
  detail?: string;
  hint?: string;
}

export type NoticeHandler = (notice: Notice) => void;

/**
 * A password from the password file (PGPASSFILE, else ~/.pgpass), asked for only when the server
 * wants one and none was given. node-postgres reads that file itself too, but warns that it will
 * stop; a function as the client's password is the way it asks for instead.
 */
function passwordFromFile(params: { host?: string; port?: number; database?: string; user?: string }): Promise<string | undefined> {
  return new Promise<string | undefined>((resolve) => pgpass(params, resolve));
}

export async function connect(config: pg.ClientConfig, onNotice?: NoticeHandler): Promise<pg.Client> {
  const client = new pg.Client({ application_name: 'admmgt-cli', ...config });
  // No password anywhere (config, URL, PGPASSWORD): node-postgres would read the password file
  // itself and warn. It is set here, after the URL was parsed, since a URL's fields replace the
  // config's (its missing password as well).
  if (client.password === null) {
    // node-postgres calls it with its resolved connection parameters and takes undefined as "no
    // password"; its type declarations know neither.
    (client as unknown as { password: unknown }).password = passwordFromFile;
  }
  if (onNotice) client.on('notice', onNotice);
  // An idle client whose server goes away emits 'error'; the next query reports it.
  client.on('error', () => {});
  await client.connect();
  return client;
}
