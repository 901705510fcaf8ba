/**
 * Probe: split-K (K in S slices, then one pass that sums the S partial products) against the tiles
 * alone, on the prefill matmul shapes of the bench models at short prompt lengths, where the chosen
 * tile leaves the GPU's cores short of workgroups. Times kernel + reduce as one matmul.
 *
 *   pnpm exec esbuild bench/src/matmul-splitk.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/matmul-splitk.mjs
 *   node /tmp/matmul-splitk.mjs [lengths, default 512,1024,2048,4096] [slices, default 1,2,3,4,6,8]
 */
import {
  Runtime,
  TILED_MATMUL_UNROLLED,
  type TiledMatmulTile,
  chooseTiledMatmul,
  createSplitKReduceKernel,
  createTiledMatmulKernel,
  tiledMatmulConfigName,
} from '@statespace/core';
import { relError } from '@statespace/core/testing';
import { BENCH_MODELS } from './models.js';
import { type Steps, fill, prefillMatmulShapes, secondsPerRun } from './matmul.js';

const lengths = (process.argv[2] ?? '512,1024,2048,4096').split(',').map(Number);
const tiles: TiledMatmulTile[] = ['128x128', '64x128', '128x64', '64x64', '32x64'];
const splits = (process.argv[3] ?? '1,2,3,4,6,8').split(',').map(Number);

const rt = await Runtime.create();
console.log(`adapter ${rt.adapterName}; flags ${process.env.STATESPACE_DAWN_FLAGS ?? ''}`);
const seen = new Set<string>();
const shapes = lengths
  .flatMap((L) => BENCH_MODELS.flatMap((m) => prefillMatmulShapes(m.composition, L).map((s) => ({ ...s, model: m.name }))))
  .filter((s) => {
    const k = `${s.M}x${s.N}x${s.K}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });

const header = tiles.flatMap((t) => splits.map((s) => `${t}/${s}`));
console.log(`shape (model) M N K x count | ${header.join(' | ')} | best | rule`);
let bestTotal = 0;
let ruleTotal = 0;
let unsplitTotal = 0;
for (const s of shapes) {
  const x = rt.upload(fill(s.M * s.K, 1), [s.M, s.K], 'f32');
  const w = rt.upload(fill(s.N * s.K, 2), [s.N, s.K], 'f32');
  const y = rt.empty([s.M, s.N], 'f32');
  const part = rt.empty([8, s.M, s.N], 'f32');
  const flops = 2 * s.M * s.N * s.K;
  const cells: string[] = [];
  const ms = new Map<string, number>();
  let ref: Float32Array | undefined;
  let worst = 0;
  for (const t of tiles) {
    const c = TILED_MATMUL_UNROLLED[t];
    for (const S of splits) {
      if (S > 1 && Math.floor(s.K / (8 * c.tileK)) < S) {
        cells.push('-');
        continue;
      }
      const steps: Steps =
        S === 1
          ? [{ kernel: createTiledMatmulKernel(s, c), tensors: [x, w, y] }]
          : [
              { kernel: createTiledMatmulKernel(s, c, { splitK: S }), tensors: [x, w, part] },
              { kernel: createSplitKReduceKernel({ M: s.M, N: s.N, S }), tensors: [part, y] },
            ];
      const t0 = (await secondsPerRun(rt, steps, 10)) * 1000; // ms
      ms.set(`${t}/${S}`, t0);
      cells.push(((flops / (t0 / 1000)) / 1e12).toFixed(1));
      rt.clear(y);
      for (const st of steps) rt.run(st.kernel, st.tensors);
      const out = (await rt.read(y)) as Float32Array;
      if (!ref) ref = out;
      else worst = Math.max(worst, relError(out, ref));
    }
  }
  const [bestName, bestMs] = [...ms].reduce((a, b) => (b[1] < a[1] ? b : a));
  const choice = chooseTiledMatmul(s, rt);
  const chosenTile = tiles.find((t) => TILED_MATMUL_UNROLLED[t] === choice.config) ?? tiledMatmulConfigName(choice.config);
  const rule = `${chosenTile}/${choice.splitK}`;
  const ruleMs = ms.get(rule) ?? NaN;
  // the table's tile before split-K: the first of the profile's tiles alone that fills the GPU, else 32x64
  const before = tiles.find((t) => t !== '128x64' && ms.has(`${t}/1`) && Math.ceil(s.M / TILED_MATMUL_UNROLLED[t].tileM) * Math.ceil(s.N / TILED_MATMUL_UNROLLED[t].tileN) >= 200) ?? '32x64';
  const unsplitMs = ms.get(`${before}/1`) ?? NaN;
  bestTotal += bestMs * s.count;
  ruleTotal += ruleMs * s.count;
  unsplitTotal += unsplitMs * s.count;
  console.log(
    `${s.name} (${s.model}) ${s.M} ${s.N} ${s.K} x${s.count} | ${cells.join(' | ')} | ${bestName} ${((flops / (bestMs / 1000)) / 1e12).toFixed(1)} | ${rule} ${((flops / (ruleMs / 1000)) / 1e12).toFixed(1)} | unsplit ${((flops / (unsplitMs / 1000)) / 1e12).toFixed(1)} | rel ${worst.toExponential(1)}`,
  );
  for (const t of [x, w, y, part]) t.dispose();
  rt.trimPool();
}
console.log(`summed ms over shapes x count: best per shape ${bestTotal.toFixed(2)}, the rule ${ruleTotal.toFixed(2)}, the table's tile unsplit ${unsplitTotal.toFixed(2)}`);
process.exit(0);
