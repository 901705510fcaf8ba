import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig } from 'vite';
import { serveFolders } from './serve-folder';

const repo = fileURLToPath(new URL('../../', import.meta.url));

// The workspace packages are used from source (`@statespace/source` export
// condition): `pnpm --filter @statespace/demo dev` needs no build of them first.
export default defineConfig({
  base: './',
  resolve: { conditions: ['@statespace/source', ...defaultClientConditions] },
  plugins: [
    serveFolders([
      // The repo's default model (config.json, model.safetensors, tokenizer.json), copied into the build.
      { prefix: '/models/default/', dir: `${repo}models/default`, copyOnBuild: true },
      // Any other folder under models/ in dev and preview only.
      { prefix: '/models/', dir: `${repo}models` },
    ]),
  ],
  build: { target: 'es2022', sourcemap: true, chunkSizeWarningLimit: 2000 },
  esbuild: { target: 'es2022' },
  optimizeDeps: { esbuildOptions: { target: 'es2022' } },
  server: { host: '127.0.0.1' },
});
