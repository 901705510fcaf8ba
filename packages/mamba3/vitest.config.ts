import { defineProject } from 'vitest/config';

// Vite 7 applies `resolve.conditions` to the client environment only; tests run in the
// SSR (node) environment, so the source condition is set there too.
export default defineProject({
  resolve: { conditions: ['@statespace/source'] },
  ssr: { resolve: { conditions: ['@statespace/source'] } },
  test: { include: ['src/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 120_000 },
});
