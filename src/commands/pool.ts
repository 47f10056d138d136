// admmgt pool [refill]: the warm pool of spare tenant databases (SELECT * FROM admmgt.pool_status,
// admmgt.pool_databases), and `admmgt pool refill [--size N]` (CALL admmgt.refill_pool) to make it
// whole again. What counts as ready, and what a refill does, is decided in the admin database.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import { callArgs, callOptions, checkRun, integerArg, runCall, type CallArgv, type CallOptions } from '../calls.js';
import { withAdmin } from '../context.js';
import { lit, sql } from '../sql.js';

export interface PoolSummary {
  server: string;
  pool_size: number;
  ready: number;
  not_ready: number;
  pending: number;
}

export interface PoolDatabase {
  dbname: string;
  server: string;
  status: number;
  version: number;
  failures: number;
  ready: boolean;
}

export interface PoolView {
  pools: PoolSummary[];
  databases: PoolDatabase[];
}

export async function readPool(client: pg.Client): Promise<PoolView> {
  const pools = (await client.query<PoolSummary>(
    `SELECT server, pool_size, ready::int, not_ready::int, pending::int FROM admmgt.pool_status ORDER BY server = 'local' DESC, server`)).rows;
  const databases = (await client.query<PoolDatabase>(
    'SELECT dbname, server, status, version, failures::int, ready FROM admmgt.pool_databases ORDER BY id')).rows;
  return { pools, databases };
}

/** One line per server with a pool, for `admmgt status` and `admmgt pool`. */
export function formatPoolLines(pools: PoolSummary[]): string[] {
  return pools.map((p) => `pool: ${p.ready} ready of ${p.pool_size} on ${p.server}` +
    `${p.not_ready ? `, ${p.not_ready} not ready (behind the template or failed)` : ''}${p.pending ? `, ${p.pending} pending (admmgt pool refill)` : ''}`);
}

export function formatPool(v: PoolView): string {
  if (!v.pools.length) return 'pool: none (SET admmgt.servers.pool_size, or admmgt pool refill --size N)';
  const lines = formatPoolLines(v.pools);
  for (const d of v.databases) {
    lines.push(`  ${d.dbname.padEnd(40)} ${d.server.padEnd(8)} ${d.status === 2 ? 'created' : 'pending'}  version ${String(d.version).padEnd(5)} ${d.ready ? 'ready' : 'not ready'}${d.failures ? `  ${d.failures} failure(s)` : ''}`);
  }
  return lines.join('\n');
}

export const refillPool = (c: pg.Client, o: CallOptions & { size?: number } = {}) =>
  runCall(c, sql`CALL admmgt.refill_pool(${callArgs(o, o.size === undefined ? [] : [sql`p_size => ${lit(o.size)}`])})`);

interface PoolArgv extends CallArgv {
  action: string;
  size?: number;
}

export const command: CommandModule<object, PoolArgv> = {
  command: 'pool [action]',
  describe: 'The warm pool of spare tenant databases that create-databases renames instead of copying the template: show it (SELECT * FROM admmgt.pool_status), or refill it (CALL admmgt.refill_pool)',
  builder: (y) =>
    callOptions(y)
      .positional('action', { type: 'string', choices: ['show', 'refill'], default: 'show', describe: 'show: ready and other spare databases; refill: make the pool whole again' })
      .option('size', { type: 'string', coerce: integerArg('size', 0, 1000), describe: 'With refill: first set how many spare databases to keep ready on local (servers.pool_size; 0 turns the pool off)' }) as Argv<PoolArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) => {
      if (a.action === 'refill') {
        checkRun(await refillPool(client, { size: a.size, parallel: a.parallel, waitSeconds: a.wait }), out, a.json, 'pool');
        if (a.json) return;
      }
      const v = await readPool(client);
      if (a.json && a.action === 'show') process.stdout.write(JSON.stringify(v, null, 2) + '\n');
      else process.stdout.write(formatPool(v) + '\n');
    }),
};
