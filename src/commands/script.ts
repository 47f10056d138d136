// admmgt script add|sync: migration files as scripts, the way Flyway keeps them in git. What
// happens to a file is decided in the admin database (SELECT admmgt.add_script_file(...) and
// admmgt.sync_script_files(...), plpgsql/procedures/150_script_files.sql); this only reads files.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { integerArg } from '../calls.js';
import { withAdmin, withGlobalOptions, type GlobalArgs } from '../context.js';
import { usageError } from '../errors.js';

/** A versioned migration file: V, its script id, two underscores, words (Flyway's naming). */
export const MIGRATION_FILE = /^V(\d+)__(.+)\.sql$/;

/** What a registration did to one file. */
export interface FileOutcome {
  file: string;
  scriptid: number;
  /** down added: the script was registered already, only its down steps (--down) are new. */
  outcome: 'added' | 'unchanged' | 'down added';
}

/** The JSON of `script add` and `script sync` (docs/operations.md). */
export interface FilesReport {
  operation: 'script add' | 'script sync';
  files: FileOutcome[];
  added: number;
  unchanged: number;
}

export interface FileInput {
  file: string;
  body: string;
}

/** A file's text; refused (exit code 2) when it is missing or is not UTF-8 text. */
export async function readSqlFile(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw usageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, 'Name a migration file, such as migrations/V1__orders.sql.');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw usageError(`${file} is not UTF-8 text`, 'Save the file as UTF-8.');
  }
  if (text.includes('\0')) throw usageError(`${file} holds a NUL byte, so it is not a SQL text file`, 'Save the file as UTF-8 text.');
  return text;
}

/** Why a .sql file of a migrations folder is not a versioned migration file, or undefined when it is one. */
export function badFileName(name: string): string | undefined {
  if (/^R__/.test(name)) return `${name}: repeatable migrations (R__) are not supported yet`;
  const m = MIGRATION_FILE.exec(name);
  if (!m) return `${name}: not named V<N>__<words>.sql`;
  const id = Number(m[1]);
  if (id < 1 || id > 2147483647) return `${name}: its id ${m[1]} is not between 1 and 2147483647`;
  if (!m[2]?.replace(/_/g, ' ').trim()) return `${name}: no words after V${m[1]}__`;
  return undefined;
}

/**
 * Every migration file of a folder (not its subfolders), in id order. Every other .sql file is
 * refused, all of them named in one usage error (exit code 2), before anything is touched; files
 * that do not end in .sql are left alone.
 */
export async function readMigrationFolder(dir: string): Promise<FileInput[]> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && /\.sql$/i.test(e.name)).map((e) => e.name);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw usageError(code === 'ENOTDIR' ? `${dir} is not a folder` : `cannot read the folder ${dir}: ${code ?? String(e)}`,
      'Name the folder of the migration files.');
  }
  const bad = names.map(badFileName).filter((b): b is string => b !== undefined).sort();
  if (bad.length) {
    throw usageError(`${bad.length} file(s) in ${dir} are not versioned migration files: ${bad.join('; ')}`,
      'Name each V<N>__<words>.sql (N the script id, words with _ for spaces, e.g. V3__add_orders.sql), or move it out of the folder.');
  }
  const id = (n: string) => Number(MIGRATION_FILE.exec(n)?.[1]);
  names.sort((a, b) => id(a) - id(b) || a.localeCompare(b));
  return Promise.all(names.map(async (file) => ({ file, body: await readSqlFile(path.join(dir, file)) })));
}

export interface AddOptions {
  /** The script id; default: the N of a file named V<N>__<words>.sql. */
  id?: number;
  description?: string;
  /** Each statement alone, outside any transaction (as the header `-- admmgt: no-transaction`). */
  noTransaction?: boolean;
  /** Register as designing (status 0) instead of ready. */
  draft?: boolean;
  /** The down file: SQL that undoes the script, its down steps (rollback). */
  down?: FileInput;
}

/** Register one file as a script (SELECT admmgt.add_script_file(...)). */
export async function addScriptFile(client: pg.Client, input: FileInput, o: AddOptions = {}): Promise<FileOutcome> {
  const { rows } = await client.query<{ outcome: FileOutcome['outcome']; scriptid: number }>(
    `SELECT admmgt.add_script_file($1, $2, $3, p_description => $4, p_no_transaction => $5, p_draft => $6,
                                   p_down => $7, p_down_file => $8) AS outcome,
            admmgt._script_file_id($2, $1) AS scriptid`,
    [o.id ?? null, input.file, input.body, o.description ?? null, o.noTransaction ?? false, o.draft ?? false,
     o.down?.body ?? null, o.down ? path.basename(o.down.file) : null]);
  const r = rows[0];
  if (!r) throw new Error('admmgt.add_script_file returned no row');
  return { file: path.basename(input.file), scriptid: r.scriptid, outcome: r.outcome };
}

/** Register every file of a folder at once, all or nothing (SELECT * FROM admmgt.sync_script_files(...)). */
export async function syncScriptFiles(client: pg.Client, files: FileInput[], o: { draft?: boolean } = {}): Promise<FileOutcome[]> {
  const { rows } = await client.query<FileOutcome>(
    'SELECT scriptid, file, outcome FROM admmgt.sync_script_files($1::jsonb, p_draft => $2)',
    [JSON.stringify(files), o.draft ?? false]);
  return rows;
}

export function report(operation: FilesReport['operation'], files: FileOutcome[]): FilesReport {
  const added = files.filter((f) => f.outcome === 'added').length;
  return { operation, files, added, unchanged: files.filter((f) => f.outcome === 'unchanged').length };
}

export function formatReport(r: FilesReport): string {
  const lines = r.files.map((f) => `${f.file}: script ${f.scriptid} ${f.outcome}`);
  if (r.operation === 'script sync') lines.push(`${r.files.length} file(s): ${r.added} added, ${r.unchanged} unchanged`);
  return lines.join('\n');
}

function print(r: FilesReport, json: boolean | undefined): void {
  process.stdout.write((json ? JSON.stringify(r) : formatReport(r)) + '\n');
}

interface AddArgv extends GlobalArgs {
  file: string;
  id?: number;
  description?: string;
  transaction: boolean;
  draft?: boolean;
  down?: string;
  json?: boolean;
}

interface SyncArgv extends GlobalArgs {
  dir: string;
  draft?: boolean;
  json?: boolean;
}

const draftOption = { type: 'boolean', describe: 'Register new scripts as designing (status 0), not ready: apply leaves them (and every script after them) until status 1' } as const;
const jsonOption = { type: 'boolean', describe: 'Print JSON: {"operation", "files": [{"file", "scriptid", "outcome"}], "added", "unchanged"}' } as const;

const add: CommandModule<object, AddArgv> = {
  command: 'add <file>',
  describe: 'Register one SQL file as a script, ready to apply (SELECT admmgt.add_script_file(...)); the same file again is unchanged, a changed one is refused',
  builder: (y) =>
    withGlobalOptions(y)
      .positional('file', { type: 'string', demandOption: true, describe: 'The SQL file; admmgt keeps its base name and checksum' })
      .option('id', { type: 'string', coerce: integerArg('id', 1, 2147483647), describe: 'The script id (default: N of a file named V<N>__<words>.sql)' })
      .option('description', { type: 'string', describe: 'The script description (default: the words of a V<N>__<words>.sql name, else the file name)' })
      .option('transaction', {
        type: 'boolean',
        default: true,
        describe: 'Run the file in one transaction per target; --no-transaction runs each statement alone, outside any transaction (as a first line -- admmgt: no-transaction does)',
      })
      .option('draft', draftOption)
      .option('down', {
        type: 'string',
        describe: 'A SQL file that undoes the script: its down steps, run in one transaction per target by admmgt rollback; may be given for a script registered (or applied) already',
      })
      .option('json', jsonOption) as unknown as Argv<AddArgv>,
  handler: async (a) => {
    const input = { file: a.file, body: await readSqlFile(a.file) };
    const down = a.down === undefined ? undefined : { file: a.down, body: await readSqlFile(a.down) };
    await withAdmin(a, async ({ client }) => {
      const outcome = await addScriptFile(client, input, { id: a.id, description: a.description, noTransaction: !a.transaction, draft: a.draft, down });
      print(report('script add', [outcome]), a.json);
    });
  },
};

const sync: CommandModule<object, SyncArgv> = {
  command: 'sync <dir>',
  describe: 'Register every V<N>__<words>.sql file of a folder as script N, all or nothing (SELECT * FROM admmgt.sync_script_files(...)): new files added in id order, registered ones unchanged; a changed or out-of-order file refuses the whole folder',
  builder: (y) =>
    withGlobalOptions(y)
      .positional('dir', { type: 'string', demandOption: true, describe: 'The folder of the migration files (its subfolders are not read); another .sql file there is refused' })
      .option('draft', draftOption)
      .option('json', jsonOption) as unknown as Argv<SyncArgv>,
  handler: async (a) => {
    const files = await readMigrationFolder(a.dir);
    await withAdmin(a, async ({ client }) => print(report('script sync', await syncScriptFiles(client, files, { draft: a.draft })), a.json));
  },
};

export const command: CommandModule = {
  command: 'script <command>',
  describe: 'Migrations as files: add one SQL file as a script, or sync a folder of V<N>__<words>.sql files',
  builder: (y) => y.command(add).command(sync).demandCommand(1, 'Name a script command: add or sync.'),
  handler: () => {},
};
