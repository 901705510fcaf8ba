/**
 * The moonshot line (`pnpm bench --moonshot [--moonshot-length 1048576] [--chunk 8192]`): a
 * granite-4.0-h-350m-shaped hybrid (28 layers, 2 of them attention) prefills one long prompt in
 * passes of `chunk` tokens (Session's prefillChunk), printing each pass's tokens/s, the total time,
 * the peak GPU memory the runtime counted, and decode tok/s after the prompt against decode after
 * 1k tokens.
 */
import type { Runtime } from '@statespace/core';
import { type BenchModel, BENCH_MODELS } from './models.js';
import { Session, composeModel } from '@statespace/hybrid';
import { attentionFlops } from './attention-flops.js';

function randomIds(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = (s = (s * 1664525 + 1013904223) >>> 0) % vocab;
  return out;
}

async function decodeTokS(session: Session, steps: number): Promise<number> {
  let t0 = 0;
  let n = 0;
  for await (const _ of session.generate(null, { greedy: true, maxNewTokens: steps + 2, ignoreEos: true })) {
    if (n === 1) t0 = performance.now(); // the first token came from the prefill, the second paid for the captures
    n++;
  }
  return ((n - 2) * 1000) / (performance.now() - t0);
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/**
 * Runs the moonshot line on `rt` and returns what it printed as an object (for the JSON).
 *
 * @example
 * ```ts
 * const r = await moonshot(rt, { length: 1 << 20, chunk: 8192 });
 * ```
 */
export async function moonshot(rt: Runtime, options: { length: number; chunk: number; model?: string; decodeSteps?: number }) {
  const m: BenchModel = BENCH_MODELS.find((x) => x.name === (options.model ?? 'granite-hybrid-350m'))!;
  const { length: L, chunk } = options;
  const steps = options.decodeSteps ?? 128;
  const model = composeModel(rt, m.composition, { seed: 1 });
  const V = m.composition.vocabSize;
  // warm the pipelines on a short prompt in two passes
  {
    const warm = new Session(model, { prefillChunk: 64 });
    await warm.prefill(randomIds(130, V, 2));
    warm.dispose();
  }
  const short = new Session(model);
  await short.prefill(randomIds(1024, V, 3));
  const decode1k = await decodeTokS(short, steps);
  short.dispose();
  rt.trimPool();
  const before = rt.memory().liveBytes;
  rt.resetPeak();
  const ids = randomIds(L, V, 4);
  const session = new Session(model, { prefillChunk: chunk });
  const passes: { done: number; tokS: number; ms: number }[] = [];
  const t0 = performance.now();
  let last = t0;
  let lastDone = 0;
  console.log(`moonshot: ${m.name}, ${L} tokens in passes of ${chunk || L}`);
  await session.prefill(ids, {
    onProgress: ({ done, total }) => {
      const t = performance.now();
      const tokS = ((done - lastDone) * 1000) / (t - last);
      passes.push({ done, tokS, ms: t - last });
      const n = passes.length;
      const total_ = Math.ceil(total / (chunk || total));
      if (n <= 4 || n % 8 === 0 || done === total) {
        console.log(`  pass ${n}/${total_}: tokens ${lastDone}..${done}, ${(t - last).toFixed(0)} ms, ${tokS.toFixed(0)} tok/s, live ${gib(rt.memory().liveBytes - before)}`);
      }
      last = t;
      lastDone = done;
    },
  });
  const totalMs = performance.now() - t0;
  const peak = rt.memory().peakLiveBytes - before;
  const mem = session.memory();
  const flops = attentionFlops(m.composition, L);
  console.log(
    `  total ${(totalMs / 1000).toFixed(1)} s, ${((L * 1000) / totalMs).toFixed(0)} tok/s; attention ${(flops / 1e12).toFixed(0)} TFLOP (≥ ${(flops / (totalMs * 1e9)).toFixed(1)} TFLOP/s); ` +
      `peak GPU memory ${gib(peak)} above the weights (kv ${gib(mem.kv)}, ssm ${gib(mem.ssm)}, conv ${gib(mem.conv)})`,
  );
  const decodeLong = await decodeTokS(session, steps);
  console.log(`  decode after ${L} tokens: ${decodeLong.toFixed(1)} tok/s (after 1024: ${decode1k.toFixed(1)} tok/s)`);
  session.dispose();
  model.dispose();
  rt.trimPool();
  return { model: m.name, length: L, chunk, passes, totalMs, peakBytes: peak, kvBytes: mem.kv, decodeTokS: decodeLong, decodeTokSAt1k: decode1k };
}
