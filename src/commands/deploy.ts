// admmgt deploy: what a CI/CD pipeline runs after a release, applyScripts, refesh_stored_procedures
// and applyMaintenance, as one CALL that visits each target once over one connection.
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import {
  callArgs, callOptions, checkRun, integerArg, kindArgs, kindOptions, runCall, selectionArgs, selectionOptions, verifyArgs, verifyOptions,
  workersArgs, workersOptions, type CallArgv, type CallOptions, type KindArgv, type KindOption, type SelectionArgv, type Selection, type VerifyArgv,
  type VerifyOption, type WorkersArgv, type WorkersOption,
} from '../calls.js';
import { withAdmin } from '../context.js';
import { lit, sql } from '../sql.js';

export type DeployOptions = CallOptions & Selection & KindOption & VerifyOption & WorkersOption;

/** CALL admmgt.deploy(t_numdays => N, ...): per target its scripts, the template's routines and its partitions, in one pass. */
export const deploy = (c: pg.Client, days: number, o: DeployOptions = {}) => {
  const first = [...kindArgs(o), sql`t_numdays => ${lit(integerArg('days', 0, 3660)(days))}`, ...selectionArgs(o), ...verifyArgs(o), ...workersArgs(o)];
  return runCall(c, sql`CALL admmgt.deploy(${callArgs(o, first)})`);
};

interface DeployArgv extends CallArgv, SelectionArgv, KindArgv, VerifyArgv, WorkersArgv {
  days: number;
}

export const command: CommandModule<object, DeployArgv> = {
  command: 'deploy',
  describe: 'CALL admmgt.deploy(t_numdays => N): apply the ready scripts, refresh the stored procedures and create the partitions through today + N days, in one pass per target over one connection (the template first, alone); a target whose scripts fail gets neither refresh nor maintenance',
  builder: (y) =>
    workersOptions(verifyOptions(kindOptions(selectionOptions(callOptions(y)))))
      .option('days', { type: 'string', default: '30', coerce: integerArg('days', 0, 3660), describe: 'Look-ahead in days (t_numdays), 0 to 3660' }) as Argv<DeployArgv>,
  handler: (a) =>
    withAdmin(a, async ({ client, out }) =>
      checkRun(await deploy(client, a.days, { parallel: a.parallel, waitSeconds: a.wait, kind: a.kind, tenants: a.tenant, server: a.server, tag: a.tag, verify: a.verify, workers: a.workers }), out, a.json, 'deploy')),
};
