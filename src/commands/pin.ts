// admmgt pin NAME VERSION: hold a tenant at a version (CALL admmgt.pin_tenant); applyScripts
// brings it up to that version and no further until `admmgt unpin NAME`.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { integerArg } from '../calls.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { lit, sql } from '../sql.js';

export async function pinTenant(client: pg.Client, tenant: string, version: number): Promise<void> {
  await client.query(sql`CALL admmgt.pin_tenant(${lit(tenant)}, ${lit(version)})`.text);
}

interface PinArgv extends GlobalArgs {
  tenant: string;
  upto: number;
}

export const command: CommandModule<object, PinArgv> = {
  command: 'pin <tenant> <upto>',
  describe: 'Hold a tenant at a version: apply brings it up to that version and no further (CALL admmgt.pin_tenant)',
  builder: (y) =>
    withGlobalOptions(y)
      .positional('tenant', { type: 'string', demandOption: true, describe: 'The tenant database' })
      .positional('upto', { type: 'string', coerce: integerArg('upto', 0), demandOption: true, describe: 'The version (script id) it may go up to' }) as Argv<PinArgv>,
  handler: (a) => withAdmin(a, async ({ client }) => pinTenant(client, a.tenant, a.upto)),
};
