// The planner's estimates of admmgt's own queries. A set-returning function is estimated at 1000
// rows unless it says otherwise, so a query that joins three of them is costed in the hundreds of
// millions, and a server with JIT (Debian's and the PGDG packages have it; jit_above_cost is
// 100000) compiled _range_parents' query on every call: 1.4 s of each applyScripts with range
// partitions, measured on PostgreSQL 15. auto_explain reports every plan of the admin session,
// nested ones too, as NOTICEs here, so the test sees every query the CALLs plan, with or without
// JIT on the server. Every database of this file starts with qcost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnv, type TestEnv } from './support/env.js';
import { originalScripts } from './support/original-workflow.js';

let env: TestEnv;
const JIT_ABOVE_COST = 100000; // PostgreSQL's default jit_above_cost

beforeAll(async () => {
  env = await createEnv('qcost');
});
afterAll(async () => {
  await env?.close();
});

interface Explained {
  cost: number;
  query: string;
}

/** Every plan auto_explain reported while fn ran on the admin session. */
async function plansOf(fn: () => Promise<void>): Promise<Explained[]> {
  const from = env.notices.length;
  await env.admin.query(`LOAD 'auto_explain';
    SET auto_explain.log_min_duration = 0;
    SET auto_explain.log_nested_statements = on;
    SET auto_explain.log_format = json;
    SET auto_explain.log_level = notice`);
  try {
    await fn();
  } finally {
    await env.admin.query('SET auto_explain.log_min_duration = -1');
  }
  return env.notices.slice(from).flatMap((n) => {
    const at = n.indexOf('{');
    if (!n.includes('plan:') || at < 0) return [];
    const plan = JSON.parse(n.slice(at)) as { 'Query Text': string; Plan: { 'Total Cost': number } };
    return [{ cost: plan.Plan['Total Cost'], query: plan['Query Text'] }];
  });
}

function overJit(plans: Explained[]): string[] {
  return plans.filter((p) => p.cost >= JIT_ABOVE_COST).map((p) => `${Math.round(p.cost)}: ${p.query.replace(/\s+/g, ' ').slice(0, 200)}`);
}

describe('query costs', () => {
  it('no query of create_schema, applyScripts, applyMaintenance and refresh is estimated above jit_above_cost', async () => {
    const scripts = originalScripts('unitemplate');
    await env.admin.query(`INSERT INTO admmgt.vendor_db_settings (dbname, istemplate, status) VALUES ('unitemplate', true, 1);
                           INSERT INTO admmgt.vendor_db_settings (dbname, status) VALUES ('qcost_a', 1), ('qcost_b', 1)`);
    const plans = await plansOf(async () => {
      await env.admin.query('CALL admmgt.create_schema()');
      await env.addScript(scripts[0]!);
      await env.admin.query('CALL admmgt.applyScripts(0)');
      await env.admin.query('CALL admmgt.applyMaintenance(0, t_numdays => 100)');
      await env.admin.query('CALL admmgt.refesh_stored_procedures(0)');
      await env.admin.query('CALL admmgt.applyScripts(0)');
    });
    // The run really was explained, renderers included.
    expect(plans.length).toBeGreaterThan(100);
    expect(plans.some((p) => p.query.includes('RANGE period partitions'))).toBe(true);
    expect(overJit(plans)).toEqual([]);
    expect(await env.versions()).toEqual({ unitemplate: 1, qcost_a: 1, qcost_b: 1 });
  });

  it('nor of the database targets\' apply, maintenance, lifecycle, drift, check, plan and status', async () => {
    // Script ids are the registry's: the database fleet gets an admin database of its own.
    await env.close();
    env = await createEnv('qcostdb');
    await env.makeTemplate('qcostdb_tpl', ['mgttest']);
    await env.makeTenants(['qcostdb_t1', 'qcostdb_t2']);
    const plans = await plansOf(async () => {
      await env.addScript(originalScripts('mgttest')[0]!);
      await env.admin.query('SELECT count(*) FROM admmgt.plan_scripts()');
      await env.admin.query('CALL admmgt.applyScripts(1)');
      await env.admin.query('CALL admmgt.applyMaintenance(1, t_numdays => 100)');
      await env.admin.query('CALL admmgt.applyLifecycle()');
      await env.admin.query('CALL admmgt.detectDrift()');
      await env.admin.query('SELECT count(*) FROM admmgt.check_targets()');
      await env.admin.query('SELECT count(*) FROM admmgt.tenant_status');
    });
    expect(plans.some((p) => p.query.includes('RANGE period partitions'))).toBe(true);
    expect(overJit(plans)).toEqual([]);
  });
});
