import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['@statespace/source'] },
  test: { include: ['src/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 120_000 },
});
