#!/usr/bin/env node
import { hideBin } from 'yargs/helpers';
import { main } from './main.js';

// A reader that goes away (admmgt sql | head) is no error: drop the rest of the output quietly,
// as Unix tools do, and let the command end with its own exit code.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
}

process.exitCode = await main(hideBin(process.argv));
