// docs/reference/cli.md is generated from the CLI's --help (src/cli-reference.ts): it must say
// what the help says. Needs no database.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliReference } from '../src/cli-reference.js';
import { projectRoot } from '../src/paths.js';

describe('docs', () => {
  it('docs/reference/cli.md is what the CLI help says', async () => {
    const file = await readFile(path.join(projectRoot(), 'docs', 'reference', 'cli.md'), 'utf8');
    expect(file, 'docs/reference/cli.md differs from the CLI help: run `npm run docs` and commit the result').toBe(await cliReference());
  });
});
