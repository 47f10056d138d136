// docs/troubleshooting.md lists every SQLSTATE admmgt raises, so that it cannot fall behind the
// code: every ERRCODE of plpgsql/ (condition names turned into SQLSTATEs by PostgreSQL itself),
// every SQLSTATE a target is refused with, and every SQLSTATE the TypeScript tests for.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { plpgsqlDir, projectRoot } from '../src/paths.js';

async function filesUnder(dir: string, ext: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p, ext)));
    else if (e.name.endsWith(ext)) out.push(p);
  }
  return out.sort();
}

const all = (text: string, re: RegExp) => [...text.matchAll(re)].map((m) => m[1] ?? '');

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: inject('pgUrl') });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
});

/** The SQLSTATE PostgreSQL gives a PL/pgSQL condition name (or a SQLSTATE written as one). */
async function sqlstateOf(condition: string): Promise<string> {
  try {
    await client.query(`DO $$ BEGIN RAISE EXCEPTION 'probe' USING ERRCODE = '${condition.replace(/'/g, "''")}'; END $$`);
  } catch (e) {
    return (e as pg.DatabaseError).code ?? '';
  }
  throw new Error(`${condition} raised nothing`);
}

describe('docs/troubleshooting.md', () => {
  it('lists every SQLSTATE admmgt raises, under its condition name, in code order, and no other', async () => {
    const raised = new Map<string, string | undefined>(); // SQLSTATE -> condition name, if known
    const where = new Map<string, Set<string>>();
    const add = (code: string, name: string | undefined, file: string) => {
      if (!raised.has(code) || name) raised.set(code, name ?? raised.get(code));
      where.set(code, (where.get(code) ?? new Set()).add(path.relative(projectRoot(), file)));
    };
    for (const file of await filesUnder(plpgsqlDir(), '.sql')) {
      const text = await readFile(file, 'utf8');
      for (const name of all(text, /ERRCODE\s*=\s*'([a-z_]+)'/g)) add(await sqlstateOf(name), name, file);
      for (const code of all(text, /ERRCODE\s*=\s*'([0-9A-Z]{5})'/g)) add(code, undefined, file);
      // A target refused with a SQLSTATE of admmgt's choosing (admmgt._refused, 060_record.sql).
      for (const code of all(text, /_refused\(\s*[^,()]+,\s*'([0-9A-Z]{5})'/g)) add(code, undefined, file);
    }
    for (const file of [...(await filesUnder(path.join(projectRoot(), 'src'), '.ts')), ...(await filesUnder(path.join(projectRoot(), 'templates'), '.ts'))]) {
      const text = await readFile(file, 'utf8');
      // A SQLSTATE has a digit (EPIPE and the like are Node's error codes).
      for (const code of all(text, /(?:sqlstateOf\([^)]*\)|\.code)\s*[!=]==?\s*'((?=[A-Z]*\d)[0-9A-Z]{5})'/g)) add(code, undefined, file);
    }
    // The scan finds what it should (a guard against a regex that matches nothing).
    expect(raised.get('22023')).toBe('invalid_parameter_value');
    expect(raised.has('42P04')).toBe(true);
    expect(raised.has('55P03')).toBe(true);

    const doc = await readFile(path.join(projectRoot(), 'docs', 'troubleshooting.md'), 'utf8');
    const start = doc.indexOf('\n## Raised by admmgt\n');
    expect(start).toBeGreaterThan(0);
    const end = doc.indexOf('\n## ', start + 1);
    const section = doc.slice(start, end < 0 ? undefined : end);
    const listed = [...section.matchAll(/^### ([0-9A-Z]{5}) ([a-z_]+)$/gm)].map((m) => ({ code: m[1] ?? '', name: m[2] ?? '' }));

    const missing = [...raised.keys()].filter((c) => !listed.some((l) => l.code === c)).sort()
      .map((c) => `${c} ${raised.get(c) ?? ''} (${[...(where.get(c) ?? [])].join(', ')})`);
    expect(missing, 'SQLSTATEs admmgt raises that docs/troubleshooting.md does not list: add a "### CODE condition_name" section for each').toEqual([]);
    const stale = listed.filter((l) => !raised.has(l.code)).map((l) => l.code);
    expect(stale, 'SQLSTATEs listed under "Raised by admmgt" that nothing raises any more').toEqual([]);
    for (const l of listed) {
      // The condition name PostgreSQL gives the code (for a code found only as a literal, ask it).
      const name = raised.get(l.code);
      if (name) expect(l.name, l.code).toBe(name);
      else expect(await sqlstateOf(l.name), l.name).toBe(l.code);
    }
    const codes = listed.map((l) => l.code);
    expect(codes).toEqual([...codes].sort());
    expect(new Set(codes).size).toBe(codes.length);
  });
});
