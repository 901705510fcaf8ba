/**
 * Probe: TFLOP/s of tile configs outside the built-in table (tileK, threads per tile, the K-tile
 * multiply unrolled) on the prefill matmul shapes of the bench models at 512 and 4096 tokens.
 *
 *   pnpm exec esbuild bench/src/matmul-variants.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/matmul-variants.mjs
 *   node /tmp/matmul-variants.mjs
 */
import { Runtime, type TiledMatmulConfig, createTiledMatmulKernel, tiledMatmulConfigName, chooseTiledMatmulConfig } from '@statespace/core';
import { relError } from '@statespace/core/testing';
import { BENCH_MODELS } from './models.js';
import { fill, measureFp32Peak, prefillMatmulShapes } from './matmul.js';

const base: TiledMatmulConfig[] = [
  { tileM: 128, tileN: 128, tileK: 16, threadM: 8, threadN: 8 },
  { tileM: 128, tileN: 128, tileK: 8, threadM: 8, threadN: 8 },
  { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 8 },
  { tileM: 64, tileN: 128, tileK: 16, threadM: 8, threadN: 8 },
  { tileM: 64, tileN: 64, tileK: 16, threadM: 8, threadN: 4 },
  { tileM: 64, tileN: 64, tileK: 32, threadM: 8, threadN: 4 },
  { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 8 },
  { tileM: 32, tileN: 64, tileK: 16, threadM: 4, threadN: 4 },
];
const configs = base.flatMap((c) => [c, { ...c, unrollK: true }]);

const rt = await Runtime.create();
const peak = await measureFp32Peak(rt);
console.log(`adapter ${rt.adapterName}; FP32 peak ${peak.toFixed(1)} TFLOP/s; flags ${process.env.STATESPACE_DAWN_FLAGS ?? ''}`);
const seen = new Set<string>();
const shapes = [512, 4096].flatMap((L) => BENCH_MODELS.flatMap((m) => prefillMatmulShapes(m.composition, L).map((s) => ({ ...s, model: m.name }))))
  .filter((s) => { const k = `${s.M}x${s.N}x${s.K}`; if (seen.has(k)) return false; seen.add(k); return true; });
console.log(`shape (model) M N K | ${configs.map(tiledMatmulConfigName).join(' | ')} | chosen`);
const totals = new Map<string, number>();
let chosenTotal = 0;
for (const s of shapes) {
  const x = rt.upload(fill(s.M * s.K, 1), [s.M, s.K], 'f32');
  const w = rt.upload(fill(s.N * s.K, 2), [s.N, s.K], 'f32');
  const y = rt.empty([s.M, s.N], 'f32');
  const flops = 2 * s.M * s.N * s.K;
  const cells: string[] = [];
  let ref: Float32Array | undefined;
  let worst = 0;
  for (const c of configs) {
    const k = createTiledMatmulKernel(s, c);
    const every = rt.submitEvery;
    rt.submitEvery = 0;
    for (let i = 0; i < 2; i++) rt.run(k, [x, w, y]);
    await rt.sync();
    const reps = Math.max(4, Math.min(400, Math.ceil(20e-3 / (flops / 25e12))));
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < reps; i++) rt.run(k, [x, w, y]);
      const t0 = performance.now();
      await rt.sync();
      best = Math.min(best, (performance.now() - t0) / reps);
    }
    rt.submitEvery = every;
    const tf = flops / (best / 1000) / 1e12;
    totals.set(tiledMatmulConfigName(c), (totals.get(tiledMatmulConfigName(c)) ?? 0) + (best * s.count) / 1000);
    cells.push(tf.toFixed(1));
    rt.clear(y);
    rt.run(k, [x, w, y]);
    const out = (await rt.read(y)) as Float32Array;
    if (!ref) ref = out; else worst = Math.max(worst, relError(out, ref));
  }
  const ch = tiledMatmulConfigName(chooseTiledMatmulConfig(s, rt));
  console.log(`${s.name} (${s.model}) ${s.M} ${s.N} ${s.K} x${s.count} | ${cells.join(' | ')} | ${ch} | rel ${worst.toExponential(1)}`);
  x.dispose(); w.dispose(); y.dispose();
  rt.trimPool();
}
console.log('summed seconds per config over all shapes x count (lower is better):');
for (const [k, v] of totals) console.log(`  ${k}: ${(v * 1000).toFixed(2)} ms`);
void chosenTotal;
process.exit(0);
