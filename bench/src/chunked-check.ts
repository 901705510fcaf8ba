/**
 * The long-prompt check of issue 19 on the GPU machine: a granite-4.0-h-350m-shaped hybrid (random
 * weights) prefills one prompt of `--length` tokens (default 65,536) in one pass and in passes of
 * `--chunk` tokens (Session's prefillChunk, the SSM state and KV cache carried across passes), and
 * the two last-position logits are compared (max |difference|, relative error, argmax).
 *   node --conditions=@statespace/source --import tsx src/chunked-check.ts [--length 65536] [--chunk 8192]
 */
import { parseArgs } from 'node:util';
import { Runtime } from '@statespace/core';
import { Session, composeModel } from '@statespace/hybrid';
import { BENCH_MODELS } from './models.js';

const { values } = parseArgs({ options: { length: { type: 'string' }, chunk: { type: 'string' }, model: { type: 'string' } } });
const L = Number(values.length ?? 65536);
const chunk = Number(values.chunk ?? 8192);
const m = BENCH_MODELS.find((x) => x.name === (values.model ?? 'granite-hybrid-350m'))!;
const rt = await Runtime.create();
const model = composeModel(rt, m.composition, { seed: 1 });
let s = (7 >>> 0);
const ids = Array.from({ length: L }, () => (s = (s * 1664525 + 1013904223) >>> 0) % m.composition.vocabSize);
const run = async (c: number) => {
  const session = new Session(model, { prefillChunk: c });
  const t0 = performance.now();
  const [logits] = await session.prefill(ids);
  const ms = performance.now() - t0;
  session.dispose();
  rt.trimPool();
  return { logits, ms };
};
const one = await run(0);
const parts = await run(chunk);
let maxAbs = 0;
let maxRef = 0;
const argmax = (a: Float32Array) => a.reduce((bi, v, i) => (v > a[bi] ? i : bi), 0);
for (let i = 0; i < one.logits.length; i++) {
  maxAbs = Math.max(maxAbs, Math.abs(one.logits[i] - parts.logits[i]));
  maxRef = Math.max(maxRef, Math.abs(one.logits[i]));
}
const finite = one.logits.every(Number.isFinite) && parts.logits.every(Number.isFinite);
console.log(
  `${m.name} on ${rt.adapterName}: ${L} tokens, one pass ${one.ms.toFixed(0)} ms vs passes of ${chunk} ${parts.ms.toFixed(0)} ms; last logits max |diff| ${maxAbs.toExponential(2)} (max |logit| ${maxRef.toFixed(3)}, relative ${(maxAbs / maxRef).toExponential(2)}), argmax ${argmax(one.logits)} / ${argmax(parts.logits)}, finite ${finite}`,
);
process.exit(finite && maxAbs / maxRef < 1e-4 && argmax(one.logits) === argmax(parts.logits) ? 0 : 1);
