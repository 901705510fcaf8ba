import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['@statespace/source'] },
  test: {
    include: ['src/**/*.test.ts', 'e2e/**/*.test.ts'],
    environment: 'node',
    testTimeout: 90_000,
    hookTimeout: 90_000,
  },
});
