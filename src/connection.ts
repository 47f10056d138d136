// Where the admin database is: --url, then DATABASE_URL, then the PG* environment variables as
// libpq reads them, and with none of those an embedded PostgreSQL in the project's .admmgt/ folder.
import path from 'node:path';
import pg from 'pg';
import { startCluster, type Cluster } from './cluster.js';
import { projectRoot } from './paths.js';

export interface ConnectionChoice {
  url?: string;
}

export interface AdminTarget {
  config: pg.ClientConfig;
  /** Where it is, without any password. */
  describe: string;
  /** The URL given by the user (holds the password if they put one in it). */
  url?: string;
  embedded?: Cluster;
}

const PG_ENV = ['PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGDATABASE'];

export function embeddedDir(): string {
  return process.env.ADMMGT_EMBEDDED_DIR ?? path.join(projectRoot(), '.admmgt', 'embedded');
}

/** A URL with its password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return '(a connection string)';
  }
}

export async function resolveAdmin(choice: ConnectionChoice = {}): Promise<AdminTarget> {
  const url = choice.url ?? process.env.DATABASE_URL;
  if (url) return { config: { connectionString: url }, describe: redactUrl(url), url };
  if (PG_ENV.some((k) => process.env[k])) {
    const host = process.env.PGHOST ?? process.env.PGHOSTADDR ?? 'localhost';
    return {
      config: {},
      describe: `PG* environment (host ${host}, port ${process.env.PGPORT ?? 5432}, database ${process.env.PGDATABASE ?? process.env.PGUSER ?? 'postgres'})`,
    };
  }
  const cluster = await startCluster({ dir: embeddedDir() });
  return { config: { connectionString: cluster.url }, describe: `embedded PostgreSQL (${cluster.psql})`, embedded: cluster };
}

export interface Notice {
  severity?: string;
  message?: string;
  code?: string;
  detail?: string;
  hint?: string;
}

export type NoticeHandler = (notice: Notice) => void;

export async function connect(config: pg.ClientConfig, onNotice?: NoticeHandler): Promise<pg.Client> {
  const client = new pg.Client({ application_name: 'admmgt-cli', ...config });
  if (onNotice) client.on('notice', onNotice);
  // An idle client whose server goes away emits 'error'; the next query reports it.
  client.on('error', () => {});
  await client.connect();
  return client;
}
