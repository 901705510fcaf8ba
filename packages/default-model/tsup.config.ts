import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { defineConfig } from 'tsup';

/** The files a model folder needs; the training log and the parity fixture stay in the repository. */
const MODEL_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'README.md'];

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  // The repository keeps one copy of the model, in models/default (the demo and the parity tests read
  // it there); the package carries its own copy in model/, refreshed on every build.
  onSuccess: async () => {
    const from = new URL('../../models/default/', import.meta.url);
    const to = new URL('./model/', import.meta.url);
    rmSync(to, { recursive: true, force: true });
    mkdirSync(to, { recursive: true });
    for (const name of MODEL_FILES) copyFileSync(new URL(name, from), new URL(name, to));
  },
});
