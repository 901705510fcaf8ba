/**
 * Probe: an attention layer's q, k, v at the bench models' prefill shapes, as three products (what `matmul`
 * chooses for each) and as one stacked product (`stackedMatmul`: its own choice, then forced tiles and
 * slices), µs per layer in a chain of calls.
 *
 *   pnpm exec esbuild bench/src/stacked.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/stacked.mjs
 *   node /tmp/stacked.mjs
 */
import { Runtime, TILED_MATMUL_UNROLLED, type TiledMatmulConfig, chooseTiledMatmul, matmul, stackedMatmul, tiledMatmulConfigName } from '@statespace/core';
import { relError } from '@statespace/core/testing';
import { fill, secondsPerCall } from './matmul.js';

const rt = await Runtime.create();
console.log(`adapter ${rt.adapterName}`);
const shapes = [
  { name: 'llama-350m q/k/v', E: 1024, Ns: [1024, 256, 256] },
  { name: 'granite-hybrid-350m q/k/v', E: 768, Ns: [768, 256, 256] },
];
const forced: [TiledMatmulConfig, number][] = [
  [TILED_MATMUL_UNROLLED['128x128'], 1],
  [TILED_MATMUL_UNROLLED['128x128'], 2],
  [TILED_MATMUL_UNROLLED['128x128'], 4],
  [TILED_MATMUL_UNROLLED['64x128'], 1],
  [TILED_MATMUL_UNROLLED['64x128'], 2],
  [TILED_MATMUL_UNROLLED['64x64'], 1],
  [TILED_MATMUL_UNROLLED['64x64'], 2],
];

/** ms per call of `step` (a chain of calls of ~20 ms, best of 3). */
const time = async (step: () => void): Promise<number> => 1000 * (await secondsPerCall(rt, step, 20));

console.log(`shape M | separate | stackedMatmul's choice | ${forced.map(([c, s]) => `${tiledMatmulConfigName(c)}/k${s}`).join(' | ')}`);
for (const L of [512, 1024, 4096]) {
  for (const s of shapes) {
    const x = rt.upload(fill(L * s.E, 1), [L, s.E], 'f32');
    const ws = s.Ns.map((n, i) => rt.upload(fill(n * s.E, 2 + i), [n, s.E], 'f32'));
    const N = s.Ns.reduce((a, b) => a + b, 0);
    const us = (ms: number) => `${(ms * 1000).toFixed(0)}`;
    const sep = await time(() => ws.forEach((w) => matmul(rt, x, w).dispose()));
    const refs = await Promise.all(ws.map(async (w) => { const y = matmul(rt, x, w); const h = (await rt.read(y)) as Float32Array; y.dispose(); return h; }));
    let worst = 0;
    const cells: string[] = [];
    const check = async (ys: ReturnType<typeof stackedMatmul>) => {
      for (let i = 0; i < ys!.length; i++) worst = Math.max(worst, relError((await rt.read(ys![i])) as Float32Array, refs[i]));
      ys!.forEach((y) => y.dispose());
    };
    const auto = chooseTiledMatmul({ M: L, N, K: s.E }, rt);
    cells.push(`${us(await time(() => stackedMatmul(rt, x, ws)!.forEach((y) => y.dispose())))} (${tiledMatmulConfigName(auto.config)}/k${auto.splitK})`);
    await check(stackedMatmul(rt, x, ws));
    for (const [config, splitK] of forced) {
      cells.push(us(await time(() => stackedMatmul(rt, x, ws, { config, splitK })!.forEach((y) => y.dispose()))));
      await check(stackedMatmul(rt, x, ws, { config, splitK }));
    }
    console.log(`${s.name} ${L} | ${us(sep)} | ${cells.join(' | ')} | rel ${worst.toExponential(1)}`);
    for (const t of [x, ...ws]) t.dispose();
    rt.trimPool();
  }
}
process.exit(0);
