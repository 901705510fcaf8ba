/**
 * Probe: where a decode step's GPU time goes, in the stream. Replays a model's captured decode
 * plan with the dispatches of one kernel left out (the outputs are then wrong; only the time is
 * read) and reports the GPU time in passes per replay against the whole plan: the difference is
 * that kernel's share of the step, launch gaps and barriers included.
 *
 *   RUNS=llama-350m:16,llama-350m:1024 node /tmp/gpu-bundles/decode-ablation.mjs
 */
import { type CapturedPlan, Runtime } from '@statespace/core';
import { Session, composeModel } from '@statespace/hybrid';
import { BENCH_MODELS } from './models.js';

const rt = await Runtime.create();
const REPLAYS = 64;
async function gpuMsPerReplay(plan: CapturedPlan): Promise<number> {
  for (let i = 0; i < 16; i++) rt.replay(plan);
  await rt.sync();
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    rt.startPassTiming(2048);
    for (let i = 0; i < REPLAYS; i++) rt.replay(plan);
    best = Math.min(best, (await rt.stopPassTiming()).ms / REPLAYS);
  }
  return best;
}
function without(plan: CapturedPlan, keep: (name: string) => boolean): CapturedPlan {
  const commands = plan.commands.filter((c) => c.kind !== 'dispatch' || keep(c.name));
  return Object.create(plan, { commands: { value: commands } }) as CapturedPlan;
}
for (const spec of (process.env.RUNS ?? 'mamba2-130m:16,granite-hybrid-350m:16,llama-350m:16,llama-350m:1024').split(',')) {
  const [name, ctx] = spec.split(':');
  const m = BENCH_MODELS.find((x) => x.name === name)!;
  const model = composeModel(rt, m.composition, { seed: 1 });
  const s = new Session(model, { batch: 1 });
  await s.prefill(Array.from({ length: Number(ctx) }, (_, i) => (i * 7) % 1000));
  for (let i = 0; i < 4; i++) await s.step(1);
  const plan = (s as unknown as { engine: { plan: CapturedPlan } }).engine.plan;
  const counts = new Map<string, number>();
  for (const c of plan.commands) if (c.kind === 'dispatch') counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
  const full = await gpuMsPerReplay(plan);
  const empty = await gpuMsPerReplay(without(plan, () => false));
  console.log(`${name} at context ${ctx}: ${plan.commands.length} commands, GPU ${(full * 1000).toFixed(1)} us per replay (no dispatches: ${(empty * 1000).toFixed(1)} us)`);
  for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) {
    const w = await gpuMsPerReplay(without(plan, (x) => x !== k));
    const only = await gpuMsPerReplay(without(plan, (x) => x === k));
    console.log(`   ${k.padEnd(28)} x${String(n).padStart(3)}: left out -> ${(w * 1000).toFixed(1)} us (${(((full - w) / n) * 1000).toFixed(1)} us each); alone ${(only * 1000).toFixed(1)} us (${((only / n) * 1000).toFixed(1)} us each)`);
  }
  s.dispose();
  model.dispose();
  rt.trimPool();
}
process.exit(0);
