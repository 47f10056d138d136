import type pg from 'pg';
import type { CommandModule } from 'yargs';
import { withAdmin, withGlobalOptions, type GlobalArgs, type Out } from '../context.js';
import { checkInstallRights, installControlPlane, type InstallReport } from '../install.js';
import { inQuietTransaction } from '../quiet.js';

/**
 * Install or upgrade admmgt in the admin database. When the URL carries a password, the control
 * plane needs it for its own dblink connections: it goes into a user mapping (the catalog), sent
 * as a bound parameter in a transaction whose statement logging is off.
 */
export async function install(client: pg.Client, url: string | undefined, out: Out): Promise<InstallReport> {
  await checkInstallRights(client, Boolean(url && new URL(url).password));
  const report = await installControlPlane(client, out);
  if (url) {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? decodeURIComponent(u.hostname);
    if (u.password) {
      await inQuietTransaction(client, () => client.query('SELECT admmgt.set_connection($1, $2, $3, $4)', [
        host,
        Number(u.port || u.searchParams.get('port') || 5432),
        decodeURIComponent(u.username) || 'postgres',
        decodeURIComponent(u.password),
      ]), 'the password of the --url');
      out('stored the connection for dblink in server admmgt_local and a user mapping');
    }
  }
  return report;
}

export const command: CommandModule<object, GlobalArgs> = {
  command: 'install',
  describe: 'Install or upgrade the control plane (schema admmgt) in the admin database; safe to run again',
  builder: (y) => withGlobalOptions(y),
  handler: (a) =>
    withAdmin(a, async ({ client, target, out }) => {
      out(`installing admmgt into ${target.describe}`);
      const r = await install(client, target.url, out);
      process.stdout.write(`admmgt installed: ${r.applied.length} migration(s) applied, routines of ${r.routines} files re-created\n`);
    }, { installs: true }),
};
