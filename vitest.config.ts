import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Files share one cluster, each with its own admin database and name prefix; two at a time
    // suits a 2-core machine.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
