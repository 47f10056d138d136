import type { Argv, CommandModule } from 'yargs';
import { startCluster, stopCluster } from '../cluster.js';
import { embeddedDir } from '../connection.js';

interface EmbeddedArgv {
  action: 'start' | 'stop' | 'info';
}

export const command: CommandModule<object, EmbeddedArgv> = {
  command: 'embedded <action>',
  describe: 'Start, stop or describe the embedded PostgreSQL that commands use when no server is given',
  builder: (y) =>
    y.positional('action', { choices: ['start', 'stop', 'info'] as const, demandOption: true }) as Argv<EmbeddedArgv>,
  handler: async (a) => {
    if (a.action === 'stop') {
      const stopped = await stopCluster(embeddedDir());
      process.stdout.write(stopped ? `stopped the embedded PostgreSQL in ${embeddedDir()}\n` : 'the embedded PostgreSQL is not running\n');
      return;
    }
    const c = await startCluster({ dir: embeddedDir() });
    process.stdout.write(`embedded PostgreSQL in ${c.dir}\n  psql:       ${c.psql}\n  URL:        ${c.url}\n  log:        ${c.dir}/postgres.log\n`);
  },
};
