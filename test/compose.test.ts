// docker-compose.yml as a user keeps it: a pinned PostgreSQL major, the password from .env (never
// in git), a named volume, a healthcheck. No Docker engine runs these tests, so the file is read by
// a small reader of the YAML it uses (block mappings, block and flow sequences, scalars), and
// handed to `docker compose config` (or docker-compose, the older tool) where one is installed.
// Needs no database.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../src/paths.js';

type Yaml = string | Yaml[] | { [k: string]: Yaml };

function scalar(s: string): string {
  const t = s.trim();
  if (/^".*"$/.test(t)) return JSON.parse(t) as string;
  if (/^'.*'$/.test(t)) return t.slice(1, -1).replace(/''/g, "'");
  return t;
}

/** The subset of YAML the compose file uses; throws on anything else, so the file stays in it. */
function readYaml(text: string): Yaml {
  const lines = text.split('\n')
    .map((l, i) => ({ n: i + 1, indent: l.search(/\S/), text: l.replace(/\s+#.*$/, '').trimEnd() }))
    .filter((l) => l.indent >= 0 && !l.text.trimStart().startsWith('#') && l.text.trim() !== '');
  let i = 0;
  const block = (indent: number): Yaml => {
    const first = lines[i];
    if (!first || first.indent < indent) return {};
    if (first.text.trimStart().startsWith('- ')) {
      const list: Yaml[] = [];
      while (lines[i] && lines[i]!.indent === first.indent && lines[i]!.text.trimStart().startsWith('- ')) {
        list.push(scalar(lines[i]!.text.trimStart().slice(2)));
        i++;
      }
      return list;
    }
    const map: Record<string, Yaml> = {};
    while (lines[i] && lines[i]!.indent === first.indent) {
      const l = lines[i]!;
      const m = /^([A-Za-z0-9_.-]+):(?:\s+(.*))?$/.exec(l.text.trim());
      if (!m) throw new Error(`line ${l.n}: not a key: ${l.text}`);
      const key = m[1]!;
      if (key in map) throw new Error(`line ${l.n}: ${key} twice`);
      i++;
      const v = m[2];
      if (v === undefined) map[key] = block(first.indent + 1);
      else if (v.startsWith('[')) map[key] = (JSON.parse(v) as string[]);
      else map[key] = scalar(v);
    }
    if (lines[i] && lines[i]!.indent > first.indent) throw new Error(`line ${lines[i]!.n}: bad indentation`);
    return map;
  };
  const doc = block(0);
  if (i < lines.length) throw new Error(`line ${lines[i]!.n}: not read`);
  return doc;
}

const at = (y: Yaml, ...keys: string[]): Yaml | undefined =>
  keys.reduce<Yaml | undefined>((v, k) => (v && typeof v === 'object' && !Array.isArray(v) ? v[k] : undefined), y);

describe('docker-compose.yml', () => {
  it('pins a PostgreSQL major, takes the password from .env, keeps data in a named volume, has a healthcheck', async () => {
    const root = projectRoot();
    const y = readYaml(await readFile(path.join(root, 'docker-compose.yml'), 'utf8'));
    expect(Object.keys(y)).toEqual(['services', 'volumes']);
    expect(at(y, 'services', 'postgres', 'image')).toMatch(/^postgres:\d+$/);
    expect(at(y, 'services', 'postgres', 'environment', 'POSTGRES_PASSWORD')).toMatch(/^\$\{POSTGRES_PASSWORD:\?.+\}$/);
    expect(at(y, 'services', 'postgres', 'environment', 'POSTGRES_HOST_AUTH_METHOD')).toBeUndefined();
    expect(at(y, 'services', 'postgres', 'environment', 'POSTGRES_INITDB_ARGS')).toBe('--auth-host=scram-sha-256');
    expect(at(y, 'services', 'postgres', 'ports')).toEqual(['127.0.0.1:5432:5432']);
    expect(at(y, 'services', 'postgres', 'volumes')).toEqual(['pgdata:/var/lib/postgresql/data']);
    expect(at(y, 'volumes')).toEqual({ pgdata: {} });
    const test = at(y, 'services', 'postgres', 'healthcheck', 'test');
    expect(Array.isArray(test) && test.slice(0, 2)).toEqual(['CMD', 'pg_isready']);
    expect(test).toEqual(expect.arrayContaining(['-h', '127.0.0.1']));

    // The example has no password in it, and .env is ignored by git.
    expect(await readFile(path.join(root, '.env.example'), 'utf8')).toMatch(/^POSTGRES_PASSWORD=$/m);
    expect((await readFile(path.join(root, '.gitignore'), 'utf8')).split('\n')).toContain('.env');
  });

  it('passes `docker compose config` with a password set and fails without one, where compose is installed', async (ctx) => {
    const tools: string[][] = [['docker', 'compose'], ['docker-compose']];
    const tool = tools.find(([cmd, ...sub]) => {
      try {
        execFileSync(cmd!, [...sub, 'version'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    });
    // Neither the compose plugin nor docker-compose here: the structural test above still runs.
    if (!tool) ctx.skip();
    const [cmd, ...sub] = tool!;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'admmgt-compose-'));
    try {
      const file = path.join(projectRoot(), 'docker-compose.yml');
      const envFile = path.join(dir, 'env');
      await writeFile(envFile, 'POSTGRES_PASSWORD=only-for-this-test\n');
      const env = { PATH: process.env.PATH ?? '', HOME: dir };
      execFileSync(cmd!, [...sub, '--env-file', envFile, '-f', file, 'config', '--quiet'], { env, stdio: 'pipe' });
      await writeFile(envFile, await readFile(path.join(projectRoot(), '.env.example'), 'utf8'));
      expect(() => execFileSync(cmd!, [...sub, '--env-file', envFile, '-f', file, 'config', '--quiet'], { env, stdio: 'pipe' }))
        .toThrow(/set POSTGRES_PASSWORD in \.env/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
