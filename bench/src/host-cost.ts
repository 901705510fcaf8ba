/**
 * Probe: host time per eagerly recorded dispatch (a prefill forward, not a replayed plan), and where it goes.
 *   pnpm exec esbuild bench/src/host-cost.ts --bundle --platform=node --format=esm --external:webgpu --conditions=@statespace/source --outfile=/tmp/host-cost.mjs
 *   node [--cpu-prof] /tmp/host-cost.mjs [model, default mamba-130m] [tokens, default 16] [reps, default 20]
 */
import { Runtime } from '@statespace/core';
import { composeModel } from '@statespace/hybrid';
import { BENCH_MODELS } from './models.js';

const name = process.argv[2] ?? 'mamba-130m';
const L = Number(process.argv[3] ?? 16);
const reps = Number(process.argv[4] ?? 20);
const rt = await Runtime.create();
const m = BENCH_MODELS.find((x) => x.name === name)!;
const model = composeModel(rt, { ...m.composition, vocabSize: 1024 }, { seed: 1 });
await rt.sync();
const ids = rt.upload(new Int32Array(L).map((_, i) => (i * 37) % 1024), [1, L], 'i32');
const hosts: number[] = [];
let dispatches = 0;
for (let r = 0; r < reps + 2; r++) {
  const st = model.createState(1);
  const d0 = rt.dispatchCount;
  const t0 = performance.now();
  const out = model.forward(ids, st, 'last');
  const t1 = performance.now();
  await rt.read(out);
  dispatches = rt.dispatchCount - d0;
  out.dispose();
  st.dispose();
  if (r >= 2) hosts.push(t1 - t0);
}
hosts.sort((a, b) => a - b);
const med = hosts[hosts.length >> 1];
console.log(`${rt.adapterName} ${name} L=${L}: ${dispatches} dispatches, host recording ${med.toFixed(2)} ms (median of ${reps}), ${((1000 * med) / dispatches).toFixed(1)} us per dispatch`);
process.exit(0);
