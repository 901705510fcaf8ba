import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/testing.ts'],
  format: ['esm'],
  // The declarations name GPUDevice, GPUBuffer and friends: point every emitted .d.ts at their
  // definitions (a dependency of this package), so a consumer's tsc finds them without a tsconfig entry.
  dts: { banner: '/// <reference types="@webgpu/types" />' },
  sourcemap: true,
  clean: true,
  target: 'es2022',
});
