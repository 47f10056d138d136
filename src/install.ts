// Assembling and installing the control plane. Two paths share every piece:
//  - installControlPlane(): versioned DDL through postgres-migrations (its ledger is
//    admmgt.migrations), then every routine re-created in one transaction;
//  - assembleInstallSql(): the same as one psql-ready file, with the same ledger rows, so either
//    path can upgrade what the other installed.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type pg from 'pg';
import { migrate } from 'postgres-migrations';
import { migrationsDir, proceduresDir, projectRoot } from './paths.js';
import { AdmmgtError } from './errors.js';
import { lit, sql } from './sql.js';

interface Migration {
  id: number;
  name: string;
  fileName: string;
  sql: string;
  hash: string;
}

/**
 * The operations' advisory locks: admmgt._lock_class() and admmgt._lock_keys() in
 * plpgsql/procedures/065_locks.sql (a test checks that both say the same). The install holds them
 * from before the first migration to after the last routine, so that no run sees new tables with
 * old routines, and no worker session of a run whose caller is gone books with replaced routines
 * (101 to 104, which the workers hold shared). They are named here as well because the first
 * install runs before those routines exist.
 */
export const OPERATION_LOCKS = { classId: 426601, keys: [1, 2, 3, 4, 101, 102, 103, 104] } as const;

const HOLD_OPERATIONS = `DO $$ BEGIN PERFORM pg_catalog.pg_advisory_lock(${OPERATION_LOCKS.classId}, k) FROM pg_catalog.unnest(ARRAY[${OPERATION_LOCKS.keys.join(', ')}]) AS k; END $$;`;
const RELEASE_OPERATIONS = `DO $$ BEGIN PERFORM pg_catalog.pg_advisory_unlock(${OPERATION_LOCKS.classId}, k) FROM pg_catalog.unnest(ARRAY[${OPERATION_LOCKS.keys.join(', ')}]) AS k; END $$;`;

const PREAMBLE = `CREATE EXTENSION IF NOT EXISTS dblink;
CREATE SCHEMA IF NOT EXISTS admmgt;
COMMENT ON SCHEMA admmgt IS 'admmgt control plane: tenant registry, scripts as rows, procedures';`;

// Routines are created with this search_path and keep it (SET search_path FROM CURRENT), so they
// find dblink in whatever schema it was installed in, and nothing a caller puts first.
const ROUTINE_SEARCH_PATH = `SELECT pg_catalog.set_config('search_path',
    'pg_catalog, admmgt, ' || (SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e
                                 JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                                WHERE e.extname = 'dblink'), false);`;

async function loadMigration(file: string): Promise<Migration> {
  const fileName = path.basename(file);
  const match = /^(\d+)[-_]?(.*)\.sql$/i.exec(fileName);
  if (!match) throw new Error(`admmgt: migration file name must be <id>_<name>.sql: ${fileName}`);
  const sql = await readFile(file, 'utf8');
  // The same name and hash that postgres-migrations records, so both install paths agree.
  return {
    id: Number(match[1]),
    name: match[2] || fileName,
    fileName,
    sql,
    hash: createHash('sha1').update(fileName + sql, 'utf8').digest('hex'),
  };
}

/** postgres-migrations' own first migration (the ledger table), then ours, in id order. */
export async function loadMigrations(dir: string = migrationsDir()): Promise<Migration[]> {
  const require = createRequire(import.meta.url);
  const builtin = path.join(path.dirname(require.resolve('postgres-migrations')), 'migrations', '0_create-migrations-table.sql');
  const ours = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const all = await Promise.all([builtin, ...ours.map((f) => path.join(dir, f))].map(loadMigration));
  return all.sort((a, b) => a.id - b.id);
}

/** Every routine file, in file-name order (the order they depend on each other). */
export async function loadRoutines(): Promise<{ file: string; sql: string }[]> {
  const files = (await readdir(proceduresDir())).filter((f) => f.endsWith('.sql')).sort();
  return Promise.all(files.map(async (file) => ({ file, sql: await readFile(path.join(proceduresDir(), file), 'utf8') })));
}

export async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(path.join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function ledgerInsert(m: Migration): string {
  return sql`INSERT INTO admmgt.migrations (id, name, hash) VALUES (${lit(m.id)}, ${lit(m.name)}, ${lit(m.hash)});`.text;
}

/** The whole install as one file for `psql -v ON_ERROR_STOP=1 -f`. Safe to run again. */
export async function assembleInstallSql(): Promise<string> {
  const [migrations, routines, version] = await Promise.all([loadMigrations(), loadRoutines(), packageVersion()]);
  const [ledger, ...rest] = migrations;
  if (!ledger || ledger.id !== 0) throw new Error('admmgt: the migration ledger definition is missing');
  const out: string[] = [
    `-- admmgt ${version}: the control plane as one psql script (generated by \`admmgt sql\`).`,
    '-- Run it in the admin database as a superuser:  psql -v ON_ERROR_STOP=1 -d postgres -f admmgt.sql',
    '-- Running it again, or over an older install, applies only what is missing.',
    '\\set ON_ERROR_STOP 1',
    HOLD_OPERATIONS,
    PREAMBLE,
    'SET search_path = admmgt;',
    ledger.sql.trim(),
    'RESET search_path;',
  ];
  for (const m of [ledger, ...rest]) {
    out.push(
      `-- migration ${m.fileName}`,
      `SELECT NOT EXISTS (SELECT 1 FROM admmgt.migrations WHERE id = ${m.id}) AS admmgt_migration_pending \\gset`,
      '\\if :admmgt_migration_pending',
      'BEGIN;',
      'SET LOCAL search_path = admmgt;',
      m.sql.trim(),
      ledgerInsert(m),
      'COMMIT;',
      '\\endif',
    );
  }
  out.push('-- routines (re-created on every install)', 'BEGIN;', ROUTINE_SEARCH_PATH);
  for (const r of routines) out.push(`-- ${r.file}`, r.sql.trim());
  out.push('COMMIT;', 'RESET search_path;', RELEASE_OPERATIONS, '');
  return out.join('\n');
}

export interface InstallReport {
  applied: string[];
  routines: number;
}

/** Install or upgrade admmgt in the database `client` is connected to. Running it twice changes nothing. */
export async function installControlPlane(
  client: pg.Client,
  log: (line: string) => void = () => {},
  dir: string = migrationsDir(),
): Promise<InstallReport> {
  // IF NOT EXISTS notices say nothing a DBA needs on a rerun.
  await client.query('SET client_min_messages = warning');
  await client.query(HOLD_OPERATIONS);
  try {
    return await installSteps(client, log, dir);
  } finally {
    await client.query(RELEASE_OPERATIONS).catch(() => {});
    await client.query('RESET client_min_messages').catch(() => {});
  }
}

/** The versioned DDL only (schema, dblink, the migrations of `dir` not yet applied); returns the files it applied. */
export async function applyMigrations(client: pg.Client, dir: string = migrationsDir()): Promise<string[]> {
  await client.query(PREAMBLE);
  const ledger = (await loadMigrations(dir))[0];
  // Created first, in admmgt, so that postgres-migrations finds its ledger there (it looks a
  // table named "migrations" up in any schema, then reads it through the search_path).
  await client.query(`SET search_path = admmgt; ${ledger?.sql ?? ''}`);
  try {
    return (await migrate({ client }, dir)).map((m) => m.fileName);
  } finally {
    await client.query('RESET search_path');
  }
}

async function installSteps(client: pg.Client, log: (line: string) => void, dir: string): Promise<InstallReport> {
  const applied = await applyMigrations(client, dir);
  for (const name of applied) log(`applied migration ${name}`);

  const routines = await loadRoutines();
  await client.query('BEGIN');
  try {
    await client.query(ROUTINE_SEARCH_PATH);
    for (const r of routines) {
      try {
        await client.query(r.sql);
      } catch (e) {
        if (e instanceof Error) e.message = `${r.file}: ${e.message}`;
        throw e;
      }
    }
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    await client.query('RESET search_path').catch(() => {});
  }
  log(`re-created the routines of ${routines.length} files`);
  return { applied, routines: routines.length };
}

interface Rights {
  role: string;
  db: string;
  superuser: boolean;
  has_dblink: boolean;
  can_create: boolean;
  schema_exists: boolean;
  owns_schema: boolean;
  operator_role: boolean;
  createrole: boolean;
  fdw_usage: boolean;
  /** dblink's functions this role may not grant (another role owns them) whose EXECUTE is still PUBLIC's or not yet admmgt_operator's. */
  dblink_grants_left: number;
}

/**
 * What a role that is not a superuser lacks to install admmgt here, each with what to run; empty
 * when it has all it needs. Asked before anything is changed, so a refused install leaves nothing
 * half done. `storesConnection`: the install will also write the dblink connection (a password in
 * the URL), which needs USAGE on the foreign-data wrapper dblink_fdw.
 */
export async function missingInstallRights(client: pg.Client, storesConnection: boolean): Promise<string[]> {
  const { rows } = await client.query<Rights>(`
    SELECT current_user AS role, current_database() AS db, r.rolsuper AS superuser,
           EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'dblink') AS has_dblink,
           has_database_privilege(current_database(), 'CREATE') AS can_create,
           n.oid IS NOT NULL AS schema_exists,
           coalesce(pg_has_role(n.nspowner, 'USAGE'), false) AS owns_schema,
           EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'admmgt_operator') AS operator_role,
           r.rolcreaterole AS createrole,
           coalesce((SELECT has_foreign_data_wrapper_privilege(w.oid, 'USAGE') FROM pg_foreign_data_wrapper w
                      WHERE w.fdwname = 'dblink_fdw'), false) AS fdw_usage,
           (SELECT count(*)::int FROM pg_proc p
              JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
              JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink'
             WHERE NOT pg_has_role(p.proowner, 'USAGE')
               AND (EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
                    OR NOT EXISTS (SELECT 1 FROM pg_roles o JOIN aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a ON a.grantee = o.oid
                                    WHERE o.rolname = 'admmgt_operator' AND a.privilege_type = 'EXECUTE'))) AS dblink_grants_left
      FROM pg_roles r LEFT JOIN pg_namespace n ON n.nspname = 'admmgt'
     WHERE r.rolname = current_user`);
  const r = rows[0];
  if (!r || r.superuser) return [];
  const missing: string[] = [];
  if (!r.has_dblink) missing.push(`the extension dblink, which only a superuser can create here: CREATE EXTENSION dblink; (in database ${r.db})`);
  if (!r.schema_exists && !r.can_create) missing.push(`CREATE on database ${r.db}, for schema admmgt: GRANT CREATE ON DATABASE ${r.db} TO ${r.role};`);
  if (r.schema_exists && !r.owns_schema) missing.push(`ownership of schema admmgt, whose routines an upgrade replaces: install as its owner, or GRANT <its owner> TO ${r.role};`);
  if (!r.operator_role && !r.createrole) missing.push(`the role admmgt_operator, which ${r.role} may not create: CREATE ROLE admmgt_operator NOLOGIN; or ALTER ROLE ${r.role} CREATEROLE;`);
  if (r.dblink_grants_left > 0) {
    missing.push(`EXECUTE on dblink's functions taken from PUBLIC and given to admmgt_operator, which only their owner can do (${r.dblink_grants_left} function(s) left): ${DBLINK_GRANTS}`);
  }
  if (storesConnection && !r.fdw_usage) missing.push(`USAGE on the foreign-data wrapper dblink_fdw, to store the connection: GRANT USAGE ON FOREIGN DATA WRAPPER dblink_fdw TO ${r.role};`);
  return missing;
}

/** What a superuser runs so that only admmgt_operator may execute dblink's functions (900_grants.sql does the same when it may). */
const DBLINK_GRANTS = `DO $$ BEGIN CREATE ROLE admmgt_operator NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; ` +
  `DO $$ DECLARE f regprocedure; BEGIN FOR f IN SELECT p.oid FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e' ` +
  `JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink' LOOP EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f); ` +
  `EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO admmgt_operator', f); END LOOP; END $$;`;

/** Refuse an install the connected role cannot finish, listing every right it lacks. */
export async function checkInstallRights(client: pg.Client, storesConnection: boolean): Promise<void> {
  const missing = await missingInstallRights(client, storesConnection);
  if (missing.length === 0) return;
  const { rows } = await client.query<{ role: string }>('SELECT current_user AS role');
  throw new AdmmgtError(`role ${rows[0]?.role} cannot install admmgt here; it lacks:\n${missing.map((m) => `  - ${m}`).join('\n')}`, {
    hint: 'Nothing was changed. Run the statements above as a superuser, or install as a superuser (admmgt install, or psql -f the output of admmgt sql).',
  });
}
