import { defineConfig } from 'vitest/config';

// One run over every package (each package's vitest.config.ts is a project), so
// `pnpm test` ends with a single summary. GPU tests share one Dawn device per file.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default', './scripts/summary-reporter.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    teardownTimeout: 10_000,
  },
});
