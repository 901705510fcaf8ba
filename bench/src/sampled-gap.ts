/**
 * Probe: sampled decode against greedy decode at the same context, in fresh sessions, with the
 * decode engine's counters (replays, captures, eager steps, the last refusal) and the GPU time in
 * passes per token, so a gap between the two can be placed on the host or on the GPU.
 *
 *   RUNS=llama-350m:16,llama-350m:2048 node /tmp/gpu-bundles/sampled-gap.mjs
 */
import { Runtime } from '@statespace/core';
import { Session, composeModel } from '@statespace/hybrid';
import { BENCH_MODELS } from './models.js';

const rt = await Runtime.create();
const STEPS = Number(process.env.STEPS ?? 256);
type Sampling = { greedy?: boolean; temperature?: number; topP?: number; topK?: number; seed?: number };
const MODES: Record<string, Sampling> = {
  greedy: { greedy: true },
  sampled: { temperature: 0.7, topP: 0.9, seed: 1 },
  temperature: { temperature: 0.7, topP: 1, seed: 1 },
};

async function run(s: Session, sampling: Sampling, steps: number, timed: boolean) {
  const before = { ...s.decodeStats()! };
  if (timed) rt.startPassTiming();
  let n = 0;
  let t0 = 0;
  for await (const _ of s.generateBatch(null, { ...sampling, maxNewTokens: steps + 2, ignoreEos: true })) {
    if (n === 1) t0 = performance.now();
    n++;
  }
  const wall = performance.now() - t0;
  const gpu = timed ? (await rt.stopPassTiming()).ms : 0;
  const after = s.decodeStats()!;
  return {
    tokS: ((n - 2) * 1000) / wall,
    gpuMs: gpu / (steps + 2),
    hostMs: (after.hostMs - before.hostMs) / (n - 2),
    replays: after.replays - before.replays,
    captures: after.captures - before.captures,
    eager: after.eager - before.eager,
    refusal: after.lastRefusal,
    planSize: after.planSize,
  };
}

for (const spec of (process.env.RUNS ?? 'mamba2-130m:16,llama-350m:16,llama-350m:2048').split(',')) {
  const [name, ctx] = spec.split(':');
  const m = BENCH_MODELS.find((x) => x.name === name)!;
  const model = composeModel(rt, m.composition, { seed: 1 });
  for (const order of [['greedy', 'sampled', 'temperature'], ['sampled', 'greedy']]) {
    const s = new Session(model, { batch: 1 });
    await s.prefill(Array.from({ length: Number(ctx) }, (_, i) => (i * 7) % 1000));
    for (const mode of order) {
      await run(s, MODES[mode], 64, false);
      const r = await run(s, MODES[mode], STEPS, false);
      const t = await run(s, MODES[mode], STEPS, true);
      console.log(
        `${name} ctx ${ctx} (${order.join('>')}) ${mode.padEnd(11)}: ${r.tokS.toFixed(0)} tok/s, host ${r.hostMs.toFixed(3)} ms/token, ` +
          `GPU ${t.gpuMs.toFixed(3)} ms/token (timed run ${t.tokS.toFixed(0)} tok/s); replays ${r.replays} captures ${r.captures} eager ${r.eager} plan ${r.planSize} refusal ${r.refusal}`,
      );
    }
    s.dispose();
  }
  model.dispose();
  rt.trimPool();
}
process.exit(0);
