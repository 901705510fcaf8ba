// GPU time per kernel of one decode step at batch B (kernels timed one pass each: relative, not absolute).
import { Runtime } from '@statespace/core';
import { Session, composeModel } from '@statespace/hybrid';
import { BENCH_MODELS } from './models.js';
const rt = await Runtime.create();
for (const spec of (process.env.RUNS ?? 'mamba2-130m:1,mamba2-130m:8,granite-hybrid-350m:1,llama-350m:1').split(',')) {
  const [name, b] = spec.split(':');
  const B = Number(b);
  const m = BENCH_MODELS.find((x) => x.name === name)!;
  const model = composeModel(rt, m.composition, { seed: 1 });
  const s = new Session(model, { batch: B });
  await s.prefill(Array.from({ length: B }, (_, r) => Array.from({ length: 16 }, (_, i) => (i * 7 + r) % 1000)));
  for (let i = 0; i < 3; i++) await s.step(Array(B).fill(1));
  s.usePlans = false;
  rt.startProfiling();
  await s.step(Array(B).fill(1));
  const prof = await rt.stopProfiling();
  const total = prof.reduce((a, k) => a + k.ms, 0);
  console.log(`${name} batch ${B}: ${total.toFixed(3)} ms in ${prof.reduce((a, k) => a + k.count, 0)} kernels`);
  for (const k of prof.slice(0, 12)) console.log(`   ${k.name.padEnd(30)} ${k.ms.toFixed(3)} ms x${k.count} (${((k.ms / k.count) * 1000).toFixed(1)} us each)`);
  s.dispose(); model.dispose(); rt.trimPool();
}
process.exit(0);
