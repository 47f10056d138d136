// admmgt unpin NAME: let a pinned tenant move with the fleet again (CALL admmgt.unpin_tenant).
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { lit, sql } from '../sql.js';

export async function unpinTenant(client: pg.Client, tenant: string): Promise<void> {
  await client.query(sql`CALL admmgt.unpin_tenant(${lit(tenant)})`.text);
}

interface UnpinArgv extends GlobalArgs {
  tenant: string;
}

export const command: CommandModule<object, UnpinArgv> = {
  command: 'unpin <tenant>',
  describe: 'Let a pinned tenant move with the fleet again (CALL admmgt.unpin_tenant)',
  builder: (y) => withGlobalOptions(y).positional('tenant', { type: 'string', demandOption: true, describe: 'The tenant database' }) as Argv<UnpinArgv>,
  handler: (a) => withAdmin(a, async ({ client }) => unpinTenant(client, a.tenant)),
};
