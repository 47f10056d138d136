// What the tests that kill or race runs share: extra sessions on the admin database (closed at
// the end of the file), a wait for a condition, and a template whose procedure app.slow_step
// keeps a target's transaction open for a while and counts its calls (a second apply would show).
import pg from 'pg';
import type { TestEnv } from './env.js';

export interface Session {
  client: pg.Client;
  pid: number;
  /** Every NOTICE and WARNING the session received, as "SEVERITY: message". */
  notices: string[];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** session() opens another session on the admin database; closeAll() ends every one of them. */
export function adminSessions(env: () => TestEnv): { session: () => Promise<Session>; closeAll: () => Promise<void> } {
  const clients: pg.Client[] = [];
  return {
    async session() {
      const client = new pg.Client({ connectionString: env().adminUrl });
      client.on('error', () => {}); // a terminated session reports here
      const notices: string[] = [];
      client.on('notice', (n) => notices.push(`${n.severity}: ${n.message}`));
      await client.connect();
      clients.push(client);
      const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
      return { client, pid: rows[0].pid, notices };
    },
    async closeAll() {
      for (const c of clients) await c.end().catch(() => {});
    },
  };
}

/** In a template with schema app: app.calls and CALL app.slow_step(scriptid, seconds), which sleeps, then records the call. */
export async function addSlowStep(env: TestEnv, template: string): Promise<void> {
  await env.queryIn(template, `
    CREATE TABLE app.calls (scriptid int, at timestamptz DEFAULT clock_timestamp());
    CREATE PROCEDURE app.slow_step(p_scriptid int, p_seconds float8) LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_sleep(p_seconds);
        INSERT INTO app.calls (scriptid) VALUES (p_scriptid);
    END $$;`);
  await env.waitIdle(template, 10_000);
}
