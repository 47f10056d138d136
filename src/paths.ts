import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder with package.json), whether running from src/ or dist/src/. */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('admmgt: cannot find its package.json');
    dir = up;
  }
  return dir;
}

export const plpgsqlDir = (): string => path.join(projectRoot(), 'plpgsql');
export const migrationsDir = (): string => path.join(plpgsqlDir(), 'migrations');
export const proceduresDir = (): string => path.join(plpgsqlDir(), 'procedures');
