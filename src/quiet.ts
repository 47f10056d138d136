// A transaction in which the server does not log statements, for the calls that carry a password
// as a bound parameter (statement logging records those too). A role that may not turn that
// logging off (only a superuser may change these settings) is refused before the password is
// sent, with the steps to do the same by hand.
import type pg from 'pg';
import { AdmmgtError } from './errors.js';

// auto_explain, when a session or the server loaded it, logs a statement's parameters too
// (PostgreSQL 16 and later): its settings are placeholders otherwise, which SET LOCAL only records.
const QUIET = ["log_statement = 'none'", 'log_min_duration_statement = -1', 'log_min_duration_sample = -1',
  'log_parameter_max_length = 0', 'log_parameter_max_length_on_error = 0', 'log_min_error_statement = panic',
  'auto_explain.log_min_duration = -1', 'auto_explain.log_parameter_max_length = 0'];

interface Logging {
  log_statement: string;
  log_min_duration_statement: string;
  log_parameter_max_length: string;
  log_parameter_max_length_on_error: string;
  /** NULL on servers older than PostgreSQL 13 (no sampling of statements). */
  log_min_duration_sample: string | null;
  log_statement_sample_rate: string | null;
  log_transaction_sample_rate: string | null;
  /** NULL when auto_explain is not loaded in this session. */
  auto_explain_min_duration: string | null;
  /** NULL before PostgreSQL 16 (auto_explain logs no parameters) or when it is not loaded. */
  auto_explain_parameter_max_length: string | null;
}

/** Which settings in force would still write this transaction's parameters to the server log. */
function stillLogged(s: Logging): string[] {
  const withParams = s.log_parameter_max_length !== '0';
  const out: string[] = [];
  if (s.log_statement === 'all' && withParams) out.push(`log_statement = ${s.log_statement}`);
  if (s.log_min_duration_statement !== '-1' && withParams) out.push(`log_min_duration_statement = ${s.log_min_duration_statement}`);
  if (s.log_parameter_max_length_on_error !== '0') out.push(`log_parameter_max_length_on_error = ${s.log_parameter_max_length_on_error}`);
  if (withParams && s.log_min_duration_sample !== null && s.log_min_duration_sample !== '-1' && Number(s.log_statement_sample_rate) !== 0) {
    out.push(`log_min_duration_sample = ${s.log_min_duration_sample}`);
  }
  // Decided when the transaction began: setting it to 0 inside does not help.
  if (withParams && s.log_transaction_sample_rate !== null && Number(s.log_transaction_sample_rate) !== 0) {
    out.push(`log_transaction_sample_rate = ${s.log_transaction_sample_rate}`);
  }
  if (s.auto_explain_min_duration !== null && s.auto_explain_min_duration !== '-1'
      && s.auto_explain_parameter_max_length !== null && s.auto_explain_parameter_max_length !== '0') {
    out.push(`auto_explain.log_min_duration = ${s.auto_explain_min_duration}`);
  }
  return out;
}

export async function inQuietTransaction<T>(client: pg.Client, fn: () => Promise<T>, what = 'this password'): Promise<T> {
  await client.query('BEGIN');
  try {
    for (const setting of QUIET) {
      await client.query('SAVEPOINT admmgt_quiet');
      await client.query(`SET LOCAL ${setting}`).catch(() => client.query('ROLLBACK TO SAVEPOINT admmgt_quiet'));
    }
    const { rows } = await client.query<Logging>(
      `SELECT current_setting('log_statement') AS log_statement, current_setting('log_min_duration_statement') AS log_min_duration_statement,
              current_setting('log_parameter_max_length') AS log_parameter_max_length,
              current_setting('log_parameter_max_length_on_error') AS log_parameter_max_length_on_error,
              current_setting('log_min_duration_sample', true) AS log_min_duration_sample,
              current_setting('log_statement_sample_rate', true) AS log_statement_sample_rate,
              current_setting('log_transaction_sample_rate', true) AS log_transaction_sample_rate,
              current_setting('auto_explain.log_min_duration', true) AS auto_explain_min_duration,
              current_setting('auto_explain.log_parameter_max_length', true) AS auto_explain_parameter_max_length`);
    const logged = rows[0] ? stillLogged(rows[0]) : [];
    if (logged.length) {
      throw new AdmmgtError(`${what} would reach the server log (${logged.join(', ')}), and this role may not turn that off; nothing was sent`, {
        hint: 'Run it as a superuser, or in psql as a superuser: SET log_statement = \'none\'; SET log_min_duration_statement = -1; '
          + '\\prompt \'password: \' pw  then the SQL call with :\'pw\' (see docs/operations.md, Registering a server).',
      });
    }
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
