import type { CommandModule } from 'yargs';
import { assembleInstallSql } from '../install.js';

export const command: CommandModule = {
  command: 'sql',
  describe: 'Print the whole install as one psql script (psql -v ON_ERROR_STOP=1 -d postgres -f admmgt.sql)',
  handler: async () => {
    process.stdout.write(await assembleInstallSql());
  },
};
