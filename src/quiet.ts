// A transaction in which the server does not log statements, where the role may turn that off:
// for the calls that carry a password as a bound parameter (statement logging records those too).
import type pg from 'pg';

export async function inQuietTransaction<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    for (const setting of ["log_statement = 'none'", 'log_min_duration_statement = -1', 'log_parameter_max_length = 0',
      'log_parameter_max_length_on_error = 0', 'log_min_error_statement = panic']) {
      await client.query('SAVEPOINT admmgt_quiet');
      await client.query(`SET LOCAL ${setting}`).catch(() => client.query('ROLLBACK TO SAVEPOINT admmgt_quiet'));
    }
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
