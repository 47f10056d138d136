// "Not connected", proved: a database with ALLOW_CONNECTIONS false refuses every new session, a
// superuser's too, so a call that reached one of them would book a failure.
import type { TestEnv } from './env.js';

/** Run f while no new session can reach the given databases of the env's cluster. */
export async function whileUnreachable(env: TestEnv, dbs: string[], f: () => Promise<unknown>): Promise<void> {
  for (const db of dbs) await env.admin.query(`ALTER DATABASE "${db}" ALLOW_CONNECTIONS false`);
  try {
    await f();
  } finally {
    for (const db of dbs) await env.admin.query(`ALTER DATABASE "${db}" ALLOW_CONNECTIONS true`);
  }
}
