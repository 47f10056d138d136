// The one place that turns an error into what a person reads: a message with SQLSTATE, detail and
// hint. It never prints a connection string: pg errors do not carry one, and our own errors are
// built without it.

export interface AdmmgtErrorOptions extends ErrorOptions {
  /** What to do about it, printed as HINT. */
  hint?: string;
  /** 1 an error, 2 a usage error (nothing was touched), 3 targets failed or disagree. */
  exitCode?: number;
}

export class AdmmgtError extends Error {
  readonly hint?: string;
  readonly exitCode: number;
  constructor(message: string, options: AdmmgtErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AdmmgtError';
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** A usage error: bad arguments or settings, refused before anything is touched (exit code 2). */
export function usageError(message: string, hint = 'See admmgt --help.'): AdmmgtError {
  return new AdmmgtError(message, { hint, exitCode: 2 });
}

interface PgLikeError {
  code?: string;
  detail?: string;
  hint?: string;
  where?: string;
}

function pgFields(e: unknown): PgLikeError | undefined {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as PgLikeError).code === 'string' && /^[0-9A-Z]{5}$/.test((e as PgLikeError).code ?? '')) {
    return e as PgLikeError;
  }
  return undefined;
}

/** The database error behind e, if any (postgres-migrations wraps them in `cause`). */
function databaseError(e: unknown): (Error & PgLikeError) | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (pgFields(cur)) return cur as Error & PgLikeError;
  }
  return undefined;
}

/** What a "permission denied" on admmgt's own objects asks for. */
function privilegeHint(db: Error & PgLikeError): string | undefined {
  if (db.code !== '42501' || !/\badmmgt\b/.test(db.message)) return undefined;
  return 'Grant the role that runs admmgt the rights it needs: GRANT admmgt_operator TO <that role>; (as a superuser, in the admin database).';
}

export function describeError(e: unknown): string {
  const db = databaseError(e);
  const top = e instanceof Error ? e.message : String(e);
  if (db) {
    const lines = [`ERROR ${db.code}: ${db === e ? db.message : top}`];
    if (db.detail) lines.push(`DETAIL: ${db.detail}`);
    const hint = (e instanceof AdmmgtError ? e.hint : undefined) ?? db.hint ?? privilegeHint(db);
    if (hint) lines.push(`HINT: ${hint}`);
    return lines.join('\n');
  }
  const lines = [`ERROR: ${top}`];
  if (e instanceof AdmmgtError && e.hint) lines.push(`HINT: ${e.hint}`);
  return lines.join('\n');
}

export function sqlstateOf(e: unknown): string | undefined {
  return databaseError(e)?.code;
}
