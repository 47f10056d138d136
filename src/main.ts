// admmgt: a thin CLI over the control plane's CALLs. Every error ends here, as one message with
// SQLSTATE, detail and hint, and a non-zero exit code.
import yargs from 'yargs';
import { command as apply } from './commands/apply.js';
import { command as check } from './commands/check.js';
import { command as cluster } from './commands/cluster.js';
import { command as createDatabases } from './commands/create-databases.js';
import { command as createSchemas } from './commands/create-schemas.js';
import { command as demo } from './commands/demo.js';
import { command as deploy } from './commands/deploy.js';
import { command as drift } from './commands/drift.js';
import { command as dropTenant } from './commands/drop-tenant.js';
import { command as embedded } from './commands/embedded.js';
import { command as install } from './commands/install.js';
import { command as lifecycle } from './commands/lifecycle.js';
import { command as maintain } from './commands/maintain.js';
import { command as markApplied } from './commands/mark-applied.js';
import { command as baseline } from './commands/baseline.js';
import { command as metrics } from './commands/metrics.js';
import { command as pin } from './commands/pin.js';
import { command as pool } from './commands/pool.js';
import { command as refreshProcs } from './commands/refresh-procs.js';
import { command as refreshViews } from './commands/refresh-views.js';
import { command as retry } from './commands/retry.js';
import { command as rollback } from './commands/rollback.js';
import { command as script } from './commands/script.js';
import { command as sqlCommand } from './commands/sql.js';
import { command as status } from './commands/status.js';
import { command as unpin } from './commands/unpin.js';
import { AdmmgtError, describeError, usageError } from './errors.js';
import { packageVersion } from './install.js';

export interface MainOptions {
  /** Wrap help text at this many columns (default: yargs' own, the terminal width up to 80). */
  wrap?: number;
  /** Let yargs end the process after --help or --version (default true, as the CLI needs). */
  exitProcess?: boolean;
}

export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  try {
    const y = yargs(argv);
    if (options.wrap !== undefined) y.wrap(options.wrap);
    if (options.exitProcess !== undefined) y.exitProcess(options.exitProcess);
    await y
      .scriptName('admmgt')
      .usage('$0 <command> [options]\n\nControl plane for database-per-tenant PostgreSQL. Connects to --url, DATABASE_URL or the libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE, PGPASSFILE); --embedded uses the embedded PostgreSQL that the demo starts. Exit codes: 0 done, 1 error, 2 usage error (nothing touched), 3 targets failed or disagree.')
      .command(install)
      .command(sqlCommand)
      .command(createDatabases)
      .command(createSchemas)
      .command(pool)
      .command(script)
      .command(apply)
      .command(rollback)
      .command(pin)
      .command(unpin)
      .command(retry)
      .command(markApplied)
      .command(baseline)
      .command(dropTenant)
      .command(maintain)
      .command(lifecycle)
      .command(refreshProcs)
      .command(refreshViews)
      .command(deploy)
      .command(status)
      .command(cluster)
      .command(check)
      .command(metrics)
      .command(drift)
      .command(demo)
      .command(embedded)
      .demandCommand(1, 'Name a command; see --help.')
      .strict()
      .help()
      .alias('help', 'h')
      // Its own version: yargs would otherwise read the package.json nearest the caller.
      .version(await packageVersion())
      .fail((msg, err) => {
        // yargs reports its own usage errors, and a coerce function's, as a YError.
        if (!err || err.name === 'YError') throw usageError(msg ?? err?.message);
        throw err;
      })
      .parseAsync();
    return 0;
  } catch (e) {
    process.stderr.write(describeError(e) + '\n');
    return e instanceof AdmmgtError ? e.exitCode : 1;
  }
}

