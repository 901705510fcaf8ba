import { defineProject } from 'vitest/config';

// Vite 7 applies `resolve.conditions` to the client environment only; tests run in the
// SSR (node) environment, so the source condition is set there too. The e2e test builds
// the page with vite.config.ts (which sets the condition for the browser bundle).
export default defineProject({
  resolve: { conditions: ['@statespace/source'] },
  ssr: { resolve: { conditions: ['@statespace/source'] } },
  test: {
    include: ['src/**/*.test.ts', 'e2e/**/*.test.ts'],
    testTimeout: 150_000,
    hookTimeout: 120_000,
  },
});
