/**
 * Probe: a gated MLP's first half at the bench models' prefill shapes, as gate + up + silu_mul (what
 * `matmul` chooses for each product) and as one `glu` tiled product per tile (`createTiledMatmulKernel`'s
 * `glu`), µs per product in a chain of dispatches and TFLOP/s (2·M·2I·K flops).
 *
 *   pnpm exec esbuild bench/src/glu.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/glu.mjs
 *   node /tmp/glu.mjs
 */
import { Runtime, type TiledMatmulConfig, binary, chooseTiledMatmul, createTiledMatmulKernel, matmul, tiledMatmulConfigName, TILED_MATMUL_UNROLLED } from '@statespace/core';
import { relError } from '@statespace/core/testing';
import { fill, measureFp32Peak, secondsPerCall } from './matmul.js';

const rt = await Runtime.create();
const peak = await measureFp32Peak(rt);
console.log(`adapter ${rt.adapterName}; FP32 peak ${peak.toFixed(1)} TFLOP/s`);
const widen = (c: TiledMatmulConfig): TiledMatmulConfig => (c.threadN === 4 ? { ...c, threadN: 8 } : c);
const tiles = (['128x128', '64x128', '128x64', '64x64', '32x64'] as const).map((t) => widen(TILED_MATMUL_UNROLLED[t]));
const shapes = [
  { name: 'llama-350m gate/up', I: 2816, K: 1024 },
  { name: 'granite-hybrid-350m gate/up', I: 2048, K: 768 },
];

/** ms per call of `step` (a chain of calls of ~20 ms, best of 3). */
const time = async (step: () => void): Promise<number> => 1000 * (await secondsPerCall(rt, step, 20));

console.log(`shape M I K | separate (gate + up + silu_mul) | ${tiles.map(tiledMatmulConfigName).join(' | ')} | gluMatmul's tile`);
for (const L of [512, 1024, 4096]) {
  for (const s of shapes) {
    const x = rt.upload(fill(L * s.K, 1), [L, s.K], 'f32');
    const g = rt.upload(fill(s.I * s.K, 2), [s.I, s.K], 'f32');
    const u = rt.upload(fill(s.I * s.K, 3), [s.I, s.K], 'f32');
    const y = rt.empty([L, s.I], 'f32');
    const flops = 2 * L * 2 * s.I * s.K;
    const cell = (ms: number) => `${(ms * 1000).toFixed(0)} µs ${(flops / (ms / 1000) / 1e12).toFixed(1)}`;
    const sep = await time(() => {
      const a = matmul(rt, x, g);
      const b = matmul(rt, x, u);
      binary(rt, a, b, 'silu_mul').dispose();
      a.dispose();
      b.dispose();
    });
    const ref = (() => {
      const a = matmul(rt, x, g);
      const b = matmul(rt, x, u);
      const h = binary(rt, a, b, 'silu_mul');
      a.dispose();
      b.dispose();
      return h;
    })();
    const refHost = (await rt.read(ref)) as Float32Array;
    ref.dispose();
    const cells = [cell(sep)];
    let worst = 0;
    for (const c of tiles) {
      const k = createTiledMatmulKernel({ M: L, N: s.I, K: s.K }, c, { glu: 'silu' });
      cells.push(cell(await time(() => rt.run(k, [x, g, u, y]))));
      rt.clear(y);
      rt.run(k, [x, g, u, y]);
      worst = Math.max(worst, relError((await rt.read(y)) as Float32Array, refHost));
    }
    const chosen = tiledMatmulConfigName(widen(chooseTiledMatmul({ M: L, N: 2 * s.I, K: s.K }, rt).config));
    console.log(`${s.name} ${L} ${s.I} ${s.K} | ${cells.join(' | ')} | ${chosen} | rel ${worst.toExponential(1)}`);
    for (const t of [x, g, u, y]) t.dispose();
    rt.trimPool();
  }
}
process.exit(0);
