// admmgt baseline NAME --version N: an existing database (or, with --schema, a schema) joins the
// fleet at a version (CALL admmgt.baseline): compared with the template of its kind at that
// version and refused, with the differences listed, unless --force; then it gets its ledger and is
// registered as created.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { integerArg } from '../calls.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { lit, sql } from '../sql.js';

export interface BaselineOptions {
  force?: boolean;
  server?: string;
  loginRole?: string;
  waitSeconds?: number;
  /** The tenant is a schema (compared with the schema template). */
  schema?: boolean;
  /** The database that holds the schema (default the admin database). */
  schemaDb?: string;
}

export async function baseline(client: pg.Client, tenant: string, version: number, o: BaselineOptions = {}): Promise<void> {
  await client.query(sql`CALL admmgt.baseline(${lit(tenant)}, ${lit(version)}, p_force => ${lit(o.force ?? false)},
    p_server => ${lit(o.server ?? 'local')}, p_loginrole => ${lit(o.loginRole ?? null)}, p_wait_seconds => ${lit(o.waitSeconds ?? 0)},
    p_kind => ${lit(o.schema ? 'schema' : 'database')}, p_schema_db => ${lit(o.schemaDb ?? null)})`.text);
}

interface BaselineArgv extends GlobalArgs {
  tenant: string;
  version: number;
  force: boolean;
  server?: string;
  'login-role'?: string;
  wait?: number;
  schema: boolean;
  'schema-db'?: string;
}

export const command: CommandModule<object, BaselineArgv> = {
  command: 'baseline <tenant>',
  describe: 'Bring an existing database (or, with --schema, a schema) into the fleet at a version: compared with the template of its kind at that version (refused, listing the differences, unless --force), given its ledger and registered as created (CALL admmgt.baseline)',
  builder: (y) =>
    // Its --version is the script version: not yargs' own (the program's), which would take it.
    withGlobalOptions(y.version(false))
      .positional('tenant', { type: 'string', demandOption: true, describe: 'The existing database (with --schema: schema)' })
      .option('version', { type: 'string', coerce: integerArg('version', 0), demandOption: true, describe: 'The script version it is at' })
      .option('force', { type: 'boolean', default: false, describe: 'Take it as it is, without comparing it with the template' })
      .option('server', { type: 'string', describe: 'The registered server it is on (default local)' })
      .option('login-role', { type: 'string', describe: 'Its login role, which may connect to it and to no other tenant' })
      .option('schema', { type: 'boolean', default: false, describe: 'The tenant is an existing schema, compared with the schema template' })
      .option('schema-db', { type: 'string', describe: 'With --schema: the database that holds it (default the admin database)' })
      .option('wait', { type: 'string', coerce: integerArg('wait', 0), describe: 'Seconds to wait for a running create or apply (default 0: stop at once)' }) as Argv<BaselineArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client }) =>
      baseline(client, a.tenant, a.version, { force: a.force, server: a.server, loginRole: a['login-role'], waitSeconds: a.wait, schema: a.schema, schemaDb: a['schema-db'] })),
};
