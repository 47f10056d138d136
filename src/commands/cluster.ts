// admmgt cluster add|list: the registry of database servers that host tenants (admmgt.servers).
// Both are one SQL call each, so psql users do the same with SELECT admmgt.add_server(...) and
// SELECT * FROM admmgt.server_status.
import type pg from 'pg';
import { parse } from 'pg-connection-string';
import type { Argv, CommandModule } from 'yargs';
import { redactUrl } from '../connection.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { usageError } from '../errors.js';
import { inQuietTransaction } from '../quiet.js';

export interface ServerStatus {
  server: string;
  host: string | null;
  port: number | null;
  fdwserver: string | null;
  accepts_tenants: boolean;
  tenants: number;
  pending: number;
  template_version: number | null;
  failures: number;
  /** Every target on it is a schema target, which is made from the template schema itself and needs no copy of the template. */
  schema_targets_only: boolean;
}

export interface AddServerOptions {
  /** May placement choose it; undefined keeps what a registered server has (new: true). */
  acceptsTenants?: boolean;
  /** Connect once to prove the server is reachable (default true). */
  check?: boolean;
  /** Used when the URL carries none (ADMMGT_SERVER_PASSWORD for the CLI). */
  password?: string;
  /** Whose user mapping to write (default: the role connected); another role's needs a superuser. */
  forRole?: string;
}

// URL parameters that are the server's own, not extra libpq options for the foreign server.
const NOT_OPTIONS = new Set(['host', 'hostaddr', 'port', 'user', 'password', 'dbname', 'passfile']);

/** Register a server (or change how it is reached); returns its version() as it answered. */
export async function addServer(client: pg.Client, name: string, url: string, opts: AddServerOptions = {}): Promise<string> {
  let c: ReturnType<typeof parse>;
  let params: URLSearchParams;
  const port = /^[a-z]+:\/\/(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?]*):(\d+)/i.exec(url)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    throw usageError(`the port ${port} of --url is not between 1 and 65535`, 'Give postgres://USER:PASSWORD@HOST:PORT/DATABASE.');
  }
  try {
    c = parse(url);
    params = new URL(url).searchParams;
  } catch {
    throw usageError(`--url ${redactUrl(url)} is not a connection URL`, 'Give postgres://USER:PASSWORD@HOST:PORT/DATABASE.');
  }
  if (!c.host || !c.user) {
    throw usageError(`--url ${redactUrl(url)} must name a host and a user`,
      'Give postgres://USER:PASSWORD@HOST:PORT/postgres (the database is the one admmgt connects to for CREATE DATABASE).');
  }
  if (params.has('passfile')) {
    throw usageError('--url names a passfile, which admmgt cannot use: dblink lets a role that is not a superuser connect only with a password in the connection (the user mapping)',
      'Leave passfile out; give the password in the URL or in ADMMGT_SERVER_PASSWORD, which go into the user mapping only.');
  }
  // sslmode, sslrootcert, connect_timeout, ...: kept as options of the foreign server.
  const options = Object.fromEntries([...params].filter(([k]) => !NOT_OPTIONS.has(k)));
  const password = c.password || opts.password || null;
  // The password travels as a bound parameter, never in a statement's text, in a transaction
  // that turns statement logging off, and not at all where the role may not turn it off.
  const register = async () => {
    const { rows } = await client.query<{ version: string }>(
      `SELECT admmgt.add_server($1, $2, $3::int, $4, $5, p_maintdb => $6, p_accepts_tenants => $7, p_check => $8, p_options => $9,
                                p_for_role => coalesce($10, current_user)) AS version`,
      [name, c.host, c.port ? Number(c.port) : 5432, c.user, password, c.database || null,
        opts.acceptsTenants ?? null, opts.check ?? true, Object.keys(options).length ? JSON.stringify(options) : null, opts.forRole ?? null],
    );
    return rows[0]?.version ?? '';
  };
  return password ? inQuietTransaction(client, register, `the password of server ${name}`) : register();
}

export async function listServers(client: pg.Client): Promise<ServerStatus[]> {
  const { rows } = await client.query<ServerStatus>(
    `SELECT s.server, s.host, s.port::int, s.fdwserver, s.accepts_tenants, s.tenants::int, s.pending::int, s.template_version, s.failures::int,
            s.tenants + s.pending > 0 AND NOT EXISTS (SELECT 1 FROM admmgt.registry r
                                                       WHERE r.on_server = s.server AND NOT r.deleted AND r.kind IS DISTINCT FROM 'schema') AS schema_targets_only
       FROM admmgt.server_status s ORDER BY s.server = 'local' DESC, s.server`);
  return rows;
}

export function formatServers(rows: ServerStatus[]): string {
  return rows.map((s) => {
    const where = s.host ? `${s.host}:${s.port ?? 5432}` : 'own socket';
    const tpl = s.template_version !== null ? `template at version ${s.template_version}`
      : s.schema_targets_only ? 'schema targets only (they need no copy of the template)' : 'no template yet';
    return `  ${s.server.padEnd(16)} ${where.padEnd(28)} ${String(s.tenants).padStart(5)} tenants` +
      `${s.pending ? `, ${s.pending} pending` : ''}, ${tpl}${s.accepts_tenants ? '' : ' (takes no new tenants)'}` +
      `${s.failures ? `  ${s.failures} failure(s)` : ''}`;
  }).join('\n');
}

interface AddArgv {
  name: string;
  url: string;
  adminUrl?: string;
  embedded?: boolean;
  quiet?: boolean;
  acceptsTenants?: boolean;
  check: boolean;
  forRole?: string;
}

interface ListArgv extends GlobalArgs {
  json?: boolean;
}

const add: CommandModule<object, AddArgv> = {
  command: 'add <name>',
  describe: 'Register a server that hosts tenants, or change how it is reached: a dblink_fdw foreign server admmgt_srv_<name> and your user mapping on it (SELECT admmgt.add_server(...))',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'Server name: a plain identifier (a letter or _, then letters, digits or _), at most 48 bytes' })
      .option('url', {
        type: 'string',
        alias: 'server-url',
        demandOption: true,
        describe: 'How the admin database reaches that server: postgres://USER:PASSWORD@HOST:PORT/postgres?sslmode=require. The password goes into the user mapping only; leave it out of the URL to take it from ADMMGT_SERVER_PASSWORD',
      })
      .option('admin-url', {
        type: 'string',
        describe: 'Admin database URL (in this command only; default: DATABASE_URL, then the libpq variables PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE, PGPASSFILE)',
      })
      .option('embedded', { type: 'boolean', describe: 'The admin database is the embedded PostgreSQL (the one admmgt demo starts)' })
      .option('quiet', { type: 'boolean', alias: 'q', describe: 'Print only errors and the result' })
      .option('accepts-tenants', { type: 'boolean', describe: 'May placement put new tenants there (--no-accepts-tenants to drain it; default: true for a new server, unchanged for a registered one)' })
      .option('check', { type: 'boolean', default: true, describe: 'Connect once before registering (--no-check to register a server that is down)' })
      .option('for-role', { type: 'string', describe: 'Write the user mapping of this role, the one that runs the CALLs (default: the role you connect as; another role needs a superuser)' }) as unknown as Argv<AddArgv>,
  handler: (a) =>
    withAdmin({ url: a.adminUrl, embedded: a.embedded, quiet: a.quiet }, async ({ client }) => {
      const version = await addServer(client, a.name, a.url,
        { acceptsTenants: a.acceptsTenants, check: a.check, password: process.env.ADMMGT_SERVER_PASSWORD, forRole: a.forRole });
      process.stdout.write(`registered server ${a.name.toLowerCase().trim()}: ${version}\n`);
    }),
};

const list: CommandModule<object, ListArgv> = {
  command: 'list',
  describe: 'List the registered servers: where they are (no credentials), tenants per server, the version of their template (SELECT * FROM admmgt.server_status)',
  builder: (y) => withGlobalOptions(y).option('json', { type: 'boolean', describe: 'Print JSON' }) as Argv<ListArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client }) => {
      const rows = await listServers(client);
      process.stdout.write((a.json ? JSON.stringify(rows, null, 2) : `servers:\n${formatServers(rows)}`) + '\n');
    }),
};

export const command: CommandModule = {
  command: 'cluster <command>',
  describe: 'The database servers that host tenants: add, list',
  builder: (y) => y.command(add).command(list).demandCommand(1, 'Name a cluster command: add or list.'),
  handler: () => {},
};
