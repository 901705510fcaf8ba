import { preview, build } from 'vite';
import { serveFolders } from '/work/main/apps/demo/serve-folder.ts';
const root = '/work/main/apps/demo';
if (!process.env.NOBUILD) await build({ root, configFile: root + '/vite.config.ts', logLevel: 'warn', build: { outDir: '/tmp/demo-dist', emptyOutDir: true } });
const s = await preview({ root, configFile: root + '/vite.config.ts', build: { outDir: '/tmp/demo-dist' }, preview: { host: '127.0.0.1', port: 4317, strictPort: true }, plugins: [serveFolders([{ prefix: '/fixtures/', dir: '/work/main/fixtures/hf-tiny/' }])] });
console.log('serving', s.resolvedUrls);
