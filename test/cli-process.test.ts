// The built CLI as a scheduler runs it: a subprocess with only the environment it is given, its
// exit code, and a reader that goes away. Builds dist/ first, so it always tests this tree.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'pg-connection-string';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultEmbeddedDir } from '../src/connection.js';
import { projectRoot } from '../src/paths.js';
import { markReadySql, scriptRowsSql } from '../templates/script.js';
import { createEnv, type TestEnv } from './support/env.js';

const CLI = path.join(projectRoot(), 'dist', 'src', 'cli.js');
let env: TestEnv;
let tmp: string;
/** Where an embedded PostgreSQL would be made: it must never appear. */
let embeddedDir: string;

interface Result { code: number | null; stdout: string; stderr: string }

/** Run the CLI with exactly this environment (as `env -i PATH=$PATH HOME=... admmgt ...`). */
function run(args: string[], extraEnv: Record<string, string> = {}, opts: { closeStdout?: boolean } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: tmp, ADMMGT_EMBEDDED_DIR: embeddedDir, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    // A reader that is gone before the first line arrives: every write of the CLI meets EPIPE.
    if (opts.closeStdout) child.stdout.destroy();
    else child.stdout.on('data', (c) => (stdout += String(c)));
    child.stderr.on('data', (c) => (stderr += String(c)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  execFileSync(process.execPath, [path.join(projectRoot(), 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
    { cwd: projectRoot(), stdio: 'inherit' });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'admmgt-cliproc-'));
  embeddedDir = path.join(tmp, 'embedded');
  env = await createEnv('cliproc');
  await env.makeTemplate('cliproc_tpl');
  await env.makeTenants(['cliproc_t1', 'cliproc_t2']);
  await env.admin.query(scriptRowsSql({
    id: 1, description: 'plan me',
    tables: [{ schema: 'mgttest', name: 'items', columns: [{ name: 'id', type: 'bigint', primaryKey: true }] }],
  }).text + markReadySql(1).text);
});

afterAll(async () => {
  await env?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('no silent fallback to the embedded server', () => {
  it.each([['apply'], ['status'], ['create-databases'], ['maintain'], ['check'], ['install']])(
    '%s with no connection settings stops with exit code 2, naming them, and starts nothing', async (cmd) => {
      const r = await run([cmd]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^ERROR: no PostgreSQL server given\nHINT: Give --url postgresql:\/\/\.\.\., set DATABASE_URL or the libpq variables \(PGHOST, PGHOSTADDR, PGPORT, PGUSER, PGDATABASE, PGSERVICE, PGPASSFILE\), or pass --embedded/);
      expect(existsSync(embeddedDir)).toBe(false);
    });

  it('PGSERVICE with its service file reaches the server that service names', async () => {
    const c = parse(env.adminUrl);
    const file = path.join(tmp, 'pg_service.conf');
    await writeFile(file, `# the fleet's admin database\n[fleet]\nhost=${c.host}\nport=${c.port}\ndbname=${env.adminDb}\nuser=${c.user}\n`);
    const r = await run(['status', '--json'], { PGSERVICE: 'fleet', PGSERVICEFILE: file });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).template).toEqual({ dbname: 'cliproc_tpl', scriptversion: 0 });

    const missing = await run(['status'], { PGSERVICE: 'nosuch', PGSERVICEFILE: file });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`ERROR: PGSERVICE names service nosuch, which is in none of ${file}, `);
    expect(existsSync(embeddedDir)).toBe(false);
  });

  it('--embedded and --url together are refused', async () => {
    const r = await run(['status', '--embedded', '--url', env.adminUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--embedded and --url name two servers/);
  });
});

describe('exit codes a scheduler can trust', () => {
  it.each([
    [['maintain', '--as-of', '2026-13-45'], /--as-of must be a date YYYY-MM-DD, not 2026-13-45/],
    [['lifecycle', '--as-of', '2026-02-30'], /--as-of must be a date YYYY-MM-DD, not 2026-02-30/],
    [['maintain', '--days', 'abc'], /--days must be an integer from 0 to 3660, not abc/],
    [['apply', '--parallel', '1.5'], /--parallel must be an integer from 1 to 64, not 1\.5/],
    [['apply', '--wait', '-1'], /--wait must be an integer from 0 to \d+, not -1/],
    [['apply', '--kind', 'bogus'], /Invalid values:\n\s*Argument: kind, Given: "bogus", Choices: "database", "schema"/],
    [['refresh-procs', '--since-script', '-2'], /--since-script must be an integer from 0 to \d+, not -2/],
  ])('%j is a usage error (exit code 2) before anything is called', async (args, message) => {
    const r = await run([...args, '--url', env.adminUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.runs`)).toEqual([{ n: 1 }]);
  });

  it.each([
    ['--url', 'mysql://app:s3cret@db1/app'],
    ['--url', 'postgres//nohost'],
    ['DATABASE_URL', 'mysql://app:s3cret@db1/app'],
  ])('a %s that is not a PostgreSQL URL (%s) is refused with exit code 2, without its password', async (source, url) => {
    const r = source === '--url' ? await run(['status', '--url', url]) : await run(['status'], { DATABASE_URL: url });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`ERROR: ${source} is not a PostgreSQL URL: `);
    expect(r.stderr).not.toContain('s3cret');
  });

  it('status exits with 3 while failures are listed, and with 0 once there are none', async () => {
    const [{ id }] = await env.rows<{ id: string }>(`SELECT id::text FROM admmgt.vendor_db_settings WHERE dbname = 'cliproc_t1'`) as [{ id: string }];
    await env.admin.query(`INSERT INTO admmgt.target_results (operation, scriptid, target_id, dbname, ok, sqlstate, message)
                           VALUES ('maintain', 0, $1, 'cliproc_t1', false, '55P03', 'lock timeout')`, [id]);
    try {
      const r = await run(['status', '--url', env.adminUrl]);
      expect(r.code).toBe(3);
      expect(r.stdout).toContain('cliproc_t1 (server local) maintain: lock timeout (SQLSTATE 55P03)');
      expect(r.stderr).toContain('ERROR: 1 failure(s) listed');
    } finally {
      await env.admin.query(`DELETE FROM admmgt.target_results WHERE target_id = $1`, [id]);
    }
    expect((await run(['status', '--url', env.adminUrl])).code).toBe(0);
  });
});

describe('a reader that goes away', () => {
  it.each([[['sql']], [['apply', '--plan', '--url']]])('%j ends quietly with exit code 0', async (args) => {
    const r = await run(args.map((a) => (a === '--url' ? `--url=${env.adminUrl}` : a)), {}, { closeStdout: true });
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled|at /);
    expect(r.code).toBe(0);
  });
});

describe('passwords from the password file', () => {
  const role = 'cliproc_pw';
  const password = `pw-${process.pid}-${Date.now()}`;
  let port: string;
  let libpq: Record<string, string>;

  beforeAll(async () => {
    port = parse(env.adminUrl).port ?? '5432';
    await env.admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' IN ROLE admmgt_operator`);
    await env.admin.query(`GRANT CONNECT ON DATABASE ${env.adminDb} TO ${role}`);
    libpq = { PGHOST: '127.0.0.1', PGPORT: port, PGUSER: role, PGDATABASE: env.adminDb };
  });
  afterAll(async () => {
    await env.admin.query(`DROP OWNED BY ${role}`).catch(() => {});
    await env.admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
  });

  it('PGPASSFILE gives the password, and node-postgres prints no deprecation warning', async () => {
    const file = path.join(tmp, 'pgpass');
    await writeFile(file, `127.0.0.1:${port}:*:${role}:${password}\n`, { mode: 0o600 });
    const r = await run(['status', '--json'], { ...libpq, PGPASSFILE: file });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('~/.pgpass gives the password to a --url without one, and node-postgres prints no deprecation warning', async () => {
    const home = path.join(tmp, 'home');
    await mkdir(home, { recursive: true });
    await writeFile(path.join(home, '.pgpass'), `127.0.0.1:${port}:*:${role}:${password}\n`, { mode: 0o600 });
    const r = await run(['status', '--json', '--url', `postgresql://${role}@127.0.0.1:${port}/${env.adminDb}`], { HOME: home });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('a wrong password is refused naming the server, with its SQLSTATE and without the password', async () => {
    const file = path.join(tmp, 'pgpass-wrong');
    await writeFile(file, `127.0.0.1:${port}:*:${role}:not-${password}\n`, { mode: 0o600 });
    const r = await run(['status'], { ...libpq, PGPASSFILE: file });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ERROR 28P01: cannot connect to PG* environment (host 127.0.0.1, port ${port}, database ${env.adminDb}): password authentication failed for user "${role}"`);
    expect(r.stderr).not.toContain(password);
  });
});

describe('messages that say what to do', () => {
  const urlAs = (user: string, db = env.adminDb): string => {
    const u = new URL(env.urlFor(db));
    u.username = user;
    return u.toString();
  };

  it('an admin database without admmgt: says so and what to run', async () => {
    await env.admin.query('CREATE DATABASE cliproc_empty');
    const r = await run(['status', '--url', env.urlFor('cliproc_empty')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERROR: admmgt is not installed in postgresql:\/\/.*\/cliproc_empty.*\nHINT: Install it there first: admmgt install/);
  });

  it('a role without admmgt_operator: names the role and the GRANT', async () => {
    await env.admin.query('CREATE ROLE cliproc_nobody LOGIN');
    try {
      const r = await run(['status', '--url', urlAs('cliproc_nobody')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('ERROR: role cliproc_nobody may not use admmgt in ');
      expect(r.stderr).toContain('HINT: As a superuser, in that database: GRANT admmgt_operator TO cliproc_nobody;');
    } finally {
      await env.admin.query('DROP ROLE cliproc_nobody');
    }
  });

  it('an operation that is already running: the hint names --wait, not the SQL parameter', async () => {
    await env.admin.query(`SELECT pg_advisory_lock(admmgt._lock_class(), admmgt._lock_key('apply'))`);
    try {
      const r = await run(['apply', '--url', env.adminUrl]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^ERROR 55P03: admmgt\.applyScripts is already running: pid \d+/);
      expect(r.stderr).toContain('HINT: Wait for that run to end, or pass --wait N to wait up to N seconds.');
    } finally {
      await env.admin.query(`SELECT pg_advisory_unlock(admmgt._lock_class(), admmgt._lock_key('apply'))`);
    }
  });
});

describe('the summary of a run', () => {
  it('counts the failed targets apart from the done ones, and exits with 3', async () => {
    await env.admin.query(scriptRowsSql({ id: 2, description: 'fails on the template', calls: ['call mgttest.no_such_proc()'] }).text
      + markReadySql(2).text);
    const r = await run(['apply', '--url', env.adminUrl]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/run \d+: 3 target\(s\), 2 done, 1 failed/);
    expect(r.stderr).toMatch(/ERROR: 1 of 3 target\(s\) failed in run \d+/);
  });
});

describe('install by a role that is not a superuser', () => {
  it('lists every right it lacks, with what to run, and changes nothing', async () => {
    await env.admin.query('CREATE DATABASE cliproc_fresh');
    await env.admin.query('CREATE ROLE cliproc_inst LOGIN CREATEDB');
    try {
      await env.admin.query('GRANT CONNECT ON DATABASE cliproc_fresh TO cliproc_inst');
      const u = new URL(env.urlFor('cliproc_fresh'));
      u.username = 'cliproc_inst';
      const r = await run(['install', '--url', u.toString()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain([
        'ERROR: role cliproc_inst cannot install admmgt here; it lacks:',
        '  - the extension dblink, which only a superuser can create here: CREATE EXTENSION dblink; (in database cliproc_fresh)',
        '  - CREATE on database cliproc_fresh, for schema admmgt: GRANT CREATE ON DATABASE cliproc_fresh TO cliproc_inst;',
        'HINT: Nothing was changed.',
      ].join('\n'));
      expect(await env.queryIn('cliproc_fresh', `SELECT to_regnamespace('admmgt') AS s, (SELECT count(*)::int FROM pg_extension WHERE extname = 'dblink') AS d`))
        .toEqual([{ s: null, d: 0 }]);
    } finally {
      await env.admin.query('DROP DATABASE cliproc_fresh');
      await env.admin.query('DROP ROLE cliproc_inst');
    }
  });
});

describe('install by a role that is not a superuser, all the way', () => {
  it('is refused until dblink\'s owner gave its grants, naming what to run; then installs and leaves dblink to the operator only', async () => {
    await env.admin.query('CREATE DATABASE cliproc_own');
    await env.queryIn('cliproc_own', 'CREATE EXTENSION dblink');
    await env.admin.query('CREATE ROLE cliproc_owner LOGIN CREATEROLE');
    try {
      await env.admin.query('GRANT CREATE, CONNECT ON DATABASE cliproc_own TO cliproc_owner');
      const u = new URL(env.urlFor('cliproc_own'));
      u.username = 'cliproc_owner';
      let r = await run(['install', '--url', u.toString()]);
      expect(r.code).toBe(1);
      const line = r.stderr.split('\n').find((l) => l.includes("EXECUTE on dblink's functions"));
      expect(line).toMatch(/^ {2}- EXECUTE on dblink's functions taken from PUBLIC and given to admmgt_operator, which only their owner can do \(\d+ function\(s\) left\): DO /);
      expect(await env.queryIn('cliproc_own', `SELECT to_regnamespace('admmgt') AS s`)).toEqual([{ s: null }]);
      // The superuser runs what the message says, then the role installs.
      await env.queryIn('cliproc_own', line!.slice(line!.indexOf('): ') + 3));
      r = await run(['install', '--url', u.toString()]);
      expect(r.stderr).not.toContain('ERROR');
      expect(r.code).toBe(0);
      expect(await env.queryIn('cliproc_own', `SELECT has_function_privilege('public', 'dblink_connect_u(text)', 'EXECUTE') AS public_may,
          has_function_privilege('admmgt_operator', 'dblink_connect_u(text)', 'EXECUTE') AS operator_may,
          (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'admmgt') AS owner`))
        .toEqual([{ public_may: false, operator_may: true, owner: 'cliproc_owner' }]);
    } finally {
      await env.admin.query('DROP DATABASE cliproc_own WITH (FORCE)');
      await env.admin.query('DROP OWNED BY cliproc_owner').catch(() => {});
      await env.admin.query('DROP ROLE cliproc_owner');
    }
  });
});

describe('cluster add keeps the password out of the server log', () => {
  const role = 'cliproc_logged';
  const pw = `Srv-${process.pid}-secret`;
  beforeAll(async () => {
    await env.admin.query(`CREATE ROLE ${role} LOGIN IN ROLE admmgt_operator`);
    await env.admin.query(`GRANT USAGE ON FOREIGN DATA WRAPPER dblink_fdw TO ${role}`);
    // Only a superuser may change log_statement: this role's sessions log every statement.
    await env.admin.query(`ALTER ROLE ${role} SET log_statement = 'all'`);
  });
  afterAll(async () => {
    await env.admin.query(`DROP OWNED BY ${role}`).catch(() => {});
    await env.admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
  });

  it('a role that may not turn statement logging off is refused before the password is sent', async () => {
    const admin = new URL(env.adminUrl);
    admin.username = role;
    const r = await run(['cluster', 'add', 'logged', '--url', `postgres://someone:${pw}@127.0.0.1:1/postgres`, '--admin-url', admin.toString(), '--no-check']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERROR: the password of server logged would reach the server log (log_statement = all), and this role may not turn that off; nothing was sent');
    expect(r.stderr).not.toContain(pw);
    expect(await env.rows(`SELECT count(*)::int AS n FROM admmgt.servers WHERE name = 'logged'`)).toEqual([{ n: 0 }]);
    expect(await env.rows(`SELECT count(*)::int AS n FROM pg_foreign_server WHERE srvname = 'admmgt_srv_logged'`)).toEqual([{ n: 0 }]);
    const socketDir = inject('pgSocketDir');
    if (socketDir) expect(await readFile(path.join(path.dirname(socketDir), 'postgres.log'), 'utf8')).not.toContain(pw);
  });

  it.each([
    ['postgres://u:p@127.0.0.1:99999/postgres', 'the port 99999 of --url is not between 1 and 65535'],
    ['postgres://u@127.0.0.1:5432/postgres?passfile=/tmp/x', '--url names a passfile, which admmgt cannot use'],
  ])('%s is refused with exit code 2, saying why', async (url, message) => {
    const r = await run(['cluster', 'add', 'odd', '--url', url, '--admin-url', env.adminUrl, '--no-check']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`ERROR: ${message}`);
  });
});

describe('the package', () => {
  it('keeps the embedded data out of node_modules when admmgt is installed as a package', () => {
    const home = '/home/ops';
    expect(defaultEmbeddedDir('/srv/app/node_modules/admmgt', {}, home)).toBe('/home/ops/.local/share/admmgt/embedded');
    expect(defaultEmbeddedDir('/srv/app/node_modules/admmgt', { XDG_DATA_HOME: '/var/lib/ops' }, home)).toBe('/var/lib/ops/admmgt/embedded');
    expect(defaultEmbeddedDir('/work/admmgt', {}, home)).toBe('/work/admmgt/.admmgt/embedded');
    expect(defaultEmbeddedDir('/srv/app/node_modules/admmgt', { ADMMGT_EMBEDDED_DIR: '/data/pg' }, home)).toBe('/data/pg');
  });
});
