/**
 * Where one decode step of a benchmark model spends its time: wall time per
 * token, host time to record it, and GPU time per kernel (timestamp queries).
 *   node --conditions=@statespace/source --import tsx src/profile.ts mamba-130m [--prefill 4096]
 * With --prefill-kernels: GPU time per kernel of one prefill of --prefill tokens instead (after warm runs).
 */
import { parseArgs } from 'node:util';
import { Runtime } from '@statespace/core';
import { Session, composeModel } from '@statespace/hybrid';
import { BENCH_MODELS } from './models.js';

const { values, positionals } = parseArgs({ options: { prefill: { type: 'string' }, dtype: { type: 'string' }, 'prefill-kernels': { type: 'boolean' } }, allowPositionals: true });
const rt = await Runtime.create();
for (const name of positionals.length ? positionals : ['mamba-130m']) {
  const m = BENCH_MODELS.find((x) => x.name === name);
  if (!m) throw new Error(`unknown model ${name}`);
  const model = composeModel(rt, m.composition, { seed: 1, dtype: (values.dtype ?? 'f32') as 'f32' | 'f16' });
  const s = new Session(model);
  const L = Number(values.prefill ?? 16);
  if (values['prefill-kernels']) {
    const ids = Array.from({ length: L }, (_, i) => (i * 7) % 1000);
    const t0 = performance.now();
    while (performance.now() - t0 < 300) {
      s.reset();
      await s.prefill(ids);
    }
    s.reset();
    rt.startProfiling();
    await s.prefill(ids);
    const prof = await rt.stopProfiling();
    const gpu = prof.reduce((a, k) => a + k.ms, 0);
    console.log(`${name} prefill ${L}: GPU ${gpu.toFixed(2)} ms in ${prof.reduce((a, k) => a + k.count, 0)} kernels (one pass each)`);
    for (const k of prof.slice(0, 16)) console.log(`   ${k.name.padEnd(30)} ${k.ms.toFixed(3)} ms x${k.count} (${((1000 * k.ms) / k.count).toFixed(1)} us each)`);
    s.dispose();
    model.dispose();
    rt.trimPool();
    continue;
  }
  await s.prefill(Array.from({ length: L }, (_, i) => (i * 7) % 1000));
  for (let i = 0; i < 5; i++) await s.step(1);
  const n = 20;
  let t0 = performance.now();
  for (let i = 0; i < n; i++) await s.step(1);
  const wall = (performance.now() - t0) / n;
  const walls: string[] = [];
  for (const every of [32, 64, 128]) {
    rt.submitEvery = every;
    for (let i = 0; i < 3; i++) await s.step(1);
    t0 = performance.now();
    for (let i = 0; i < n; i++) await s.step(1);
    walls.push(`submit every ${every}: ${((performance.now() - t0) / n).toFixed(2)} ms`);
  }
  rt.submitEvery = 0;
  const state = model.createState(1);
  const ids = rt.upload(new Int32Array([1]), [1, 1], 'i32');
  const d0 = rt.dispatchCount;
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    model.forward(ids, state, 'last').dispose();
    rt.flush();
  }
  const rec = (performance.now() - t0) / n;
  const disp = (rt.dispatchCount - d0) / n;
  await rt.sync();
  // Kernel timings come from the kernels' own dispatches (a replayed plan bypasses them).
  s.usePlans = false;
  rt.startProfiling();
  await s.step(1);
  const prof = await rt.stopProfiling();
  const gpu = prof.reduce((a, k) => a + k.ms, 0);
  console.log(`${name} (context ${L}): ${wall.toFixed(2)} ms/token wall, recording ${rec.toFixed(2)} ms (${disp} dispatches, ${((rec / disp) * 1000).toFixed(1)} us each), GPU ${gpu.toFixed(2)} ms in kernels; ${walls.join(', ')}`);
  for (const k of prof.slice(0, 12)) console.log(`   ${k.name.padEnd(30)} ${k.ms.toFixed(3)} ms x${k.count}`);
  s.dispose();
  state.dispose();
  model.dispose();
  rt.trimPool();
}
process.exit(0);
