// plpgsql_check over every PL/pgSQL routine of schema admmgt (functions, procedures, and each
// trigger function with every relation it is a trigger of), with every warning on: no error, and
// no warning but the ones docs/development.md lists with their reason. Runs where the server has
// the extension (Debian: postgresql-15-plpgsql-check); CI runs it on Debian's PostgreSQL 15.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';
import { extensionGate, gatedTitle } from './support/extension.js';

const gate = await extensionGate('plpgsql_check', 'postgresql-15-plpgsql-check');

interface Finding {
  routine: string;
  level: string;
  message: string;
}

const key = (f: Finding) => `${f.routine} | ${f.level} | ${f.message}`;

/** The table of docs/development.md, "What plpgsql_check leaves": routine, level, message, reason. */
async function documentedFindings(): Promise<Finding[]> {
  const text = await readFile(new URL('../docs/development.md', import.meta.url), 'utf8');
  const section = text.split('\n### What plpgsql_check leaves\n')[1];
  if (section === undefined) throw new Error('docs/development.md has no section "What plpgsql_check leaves"');
  const rows = section.split('\n').filter((l) => /^\| `/.test(l));
  return rows.map((l) => {
    const cells = l.split(' | ').map((c) => c.replace(/^\| /, '').trim());
    const unquote = (c: string | undefined) => (c ?? '').replace(/^`|`$/g, '');
    return { routine: unquote(cells[0]), level: unquote(cells[1]), message: unquote(cells[2]) };
  });
}

let env: TestEnv;

describe.skipIf(gate.skipReason !== null)(gatedTitle('plpgsql_check', gate, 'test/plpgsql-check.test.ts'), () => {
  beforeAll(async () => {
    env = await createEnv('plchk');
  });
  afterAll(async () => {
    await env?.close();
  });

  it('the server has the extension', () => {
    expect(gate.version, `CI runs this on Debian's PostgreSQL 15: apt-get install postgresql-15-plpgsql-check`).not.toBeNull();
  });

  it('finds no error and only the documented warnings in any admmgt routine', async () => {
    await env.admin.query('CREATE EXTENSION plpgsql_check');
    // Every trigger function is checked once per relation it is a trigger of (NEW and OLD are
    // that relation's rows); one without a trigger gets relid 0, which plpgsql_check refuses.
    const checked = await env.rows<{ fn: string; rel: string; kind: string }>(`
      SELECT p.oid::regprocedure::text AS fn, coalesce(t.tgrelid::regclass::text, '-') AS rel, p.prokind::text AS kind
        FROM pg_proc p
        JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
        LEFT JOIN pg_trigger t ON t.tgfoid = p.oid
       WHERE p.pronamespace = 'admmgt'::regnamespace
       ORDER BY 1, 2`);
    const findings = await env.rows<Finding & { fn: string; rel: string; lineno: number | null; statement: string | null;
                                                sqlstate: string; detail: string | null; hint: string | null }>(`
      SELECT p.proname::text AS routine, r.level, r.message, p.oid::regprocedure::text AS fn,
             coalesce(t.tgrelid::regclass::text, '-') AS rel, r.lineno, r.statement, r.sqlstate, r.detail, r.hint
        FROM pg_proc p
        JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
        LEFT JOIN pg_trigger t ON t.tgfoid = p.oid
        CROSS JOIN LATERAL public.plpgsql_check_function_tb(p.oid::regprocedure, coalesce(t.tgrelid, 0)::regclass,
                     fatal_errors => false, other_warnings => true, extra_warnings => true,
                     performance_warnings => true) r
       WHERE p.pronamespace = 'admmgt'::regnamespace
       ORDER BY p.proname, rel, r.lineno`);

    // What was checked: every kind of routine, and the frozen-rows trigger on each script row table.
    expect(new Set(checked.map((c) => c.kind))).toEqual(new Set(['f', 'p']));
    expect(checked.length).toBeGreaterThan(100);
    const triggerRels = checked.filter((c) => c.fn === 'admmgt._guard_frozen_rows()').map((c) => c.rel);
    expect(triggerRels).toContain('admmgt.script_tables');
    expect(triggerRels).not.toContain('-');

    expect(findings.filter((f) => f.level === 'error'), 'plpgsql_check errors').toEqual([]);
    const documented = await documentedFindings();
    expect(documented.length).toBeGreaterThan(0);
    // Every finding that is not in the table fails with everything plpgsql_check said about it.
    const known = new Set(documented.map(key));
    expect(findings.filter((f) => !known.has(key(f))), 'findings docs/development.md does not list').toEqual([]);
    // And every row of the table is still a finding: a fixed one leaves the table.
    expect(findings.map(key).sort()).toEqual(documented.map(key).sort());
  });
});
