/**
 * Correctness and timing of the attention kernels on whatever adapter is found
 * (a real GPU when there is one). Run from the repo root:
 *   node --conditions=@statespace/source --import tsx packages/attention/bench/gpu-check.ts [maxLen]
 */
import { Runtime } from '@statespace/core';
import { randn, relError } from '@statespace/core/testing';
import { AttentionMixer, KVCacheState, attentionReference, flashAttention, type FlashAttentionOptions } from '../src/index.js';

const maxLen = Number(process.argv[2] ?? 16384);
const rt = await Runtime.create({ poison: true });
console.log(`adapter: ${rt.adapterName}`);
let failures = 0;

async function check(name: string, B: number, Lq: number, Lk: number, H: number, Hkv: number, D: number, opts: FlashAttentionOptions = {}) {
  const q = randn(B * Lq * H * D, Lq + D);
  const k = randn(B * Lk * Hkv * D, Lk + 1);
  const v = randn(B * Lk * Hkv * D, Lk + 2);
  const o = flashAttention(rt, rt.upload(q, [B, Lq, H, D]), rt.upload(k, [B, Lk, Hkv, D]), rt.upload(v, [B, Lk, Hkv, D]), opts);
  const err = relError(await rt.read(o), attentionReference(q, k, v, { B, Lq, Lk, H, Hkv, D }, opts));
  if (!(err < 1e-5)) failures++;
  console.log(`${err < 1e-5 ? 'ok  ' : 'FAIL'} ${name}: rel err ${err.toExponential(2)}`);
}

for (const L of [1, 2, 17, 64, 65, 300]) await check(`prefill L=${L} batch 2`, 2, L, L, 4, 2, 64, { path: 'prefill' });
for (const D of [16, 32, 64, 128, 256]) await check(`prefill D=${D} GQA 4:1`, 1, 70, 70, 4, 1, D);
for (const w of [1, 7, 33]) await check(`prefill window ${w}`, 1, 129, 129, 2, 2, 32, { slidingWindow: w });
await check('prefill soft-cap', 1, 100, 100, 2, 1, 32, { softcap: 5 });
await check('prefill continuing at offset 200', 2, 37, 237, 4, 2, 64, { path: 'prefill' });
for (const Lk of [1, 255, 257, 700]) await check(`decode Lk=${Lk}`, 2, 1, Lk, 8, 2, 128);
await check('decode window 100 soft-cap', 1, 1, 600, 4, 4, 64, { slidingWindow: 100, softcap: 3 });

// Mixer: prefill then decode agree.
{
  const config = { hiddenSize: 256, numHeads: 8, numKeyValueHeads: 2, headDim: 32, rope: { theta: 10000, rotaryDim: 32 }, qkNorm: { eps: 1e-6, unitOffset: true }, outputGate: true };
  const weights = Object.fromEntries(AttentionMixer.expectedWeights(config).map((s, i) => [s.name, rt.upload(randn(s.shape.reduce((a, b) => a * b, 1), i, 0.1), s.shape)]));
  const mixer = new AttentionMixer(rt, config, weights);
  const L = 40;
  const x = randn(L * 256, 3);
  const full = await rt.read(mixer.forward(rt.upload(x, [1, L, 256]), mixer.createState(1)));
  const st = mixer.createState(1);
  const inc = new Float32Array(L * 256);
  for (let t = 0; t < L; t++) inc.set(await rt.read(mixer.forward(rt.upload(x.subarray(t * 256, (t + 1) * 256), [1, 1, 256]), st)), t * 256);
  const err = relError(inc, full);
  if (!(err < 1e-5)) failures++;
  console.log(`${err < 1e-5 ? 'ok  ' : 'FAIL'} mixer decode == prefill: ${err.toExponential(2)}`);
}

async function time(label: string, fn: () => void, reps = 3): Promise<number> {
  fn();
  await rt.sync();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  await rt.sync();
  const ms = (performance.now() - t0) / reps;
  console.log(`${label}: ${ms.toFixed(2)} ms`);
  return ms;
}

// Long prefill, one head of dim 32: O(L) memory.
{
  const L = maxLen;
  const D = 32;
  rt.resetPeak();
  const cache = new KVCacheState(rt, { batch: 1, numKeyValueHeads: 1, headDim: D });
  const x = randn(L * D, 11);
  const kv = rt.upload(x, [1, L, 1, D]);
  cache.append(kv, kv);
  const q = randn(L * D, 12);
  const qt = rt.upload(q, [1, L, 1, D]);
  const t0 = performance.now();
  const o = await rt.read(cache.attend(qt));
  console.log(`prefill ${L} tokens, 1 head D=32: ${(performance.now() - t0).toFixed(1)} ms (first run, compile included)`);
  const mem = rt.memory();
  const okMem = mem.largestBufferBytes < L * L * 4;
  let worst = 0;
  for (const row of [0, 1000, L - 1]) {
    const ref = attentionReference(q.subarray(row * D, (row + 1) * D), x.subarray(0, (row + 1) * D), x.subarray(0, (row + 1) * D), { B: 1, Lq: 1, Lk: row + 1, H: 1, Hkv: 1, D });
    worst = Math.max(worst, relError(o.subarray(row * D, (row + 1) * D), ref));
  }
  if (!okMem || !(worst < 1e-5)) failures++;
  console.log(`${okMem && worst < 1e-5 ? 'ok  ' : 'FAIL'} largest buffer ${mem.largestBufferBytes} B < L*L*4 = ${L * L * 4} B; spot rows rel err ${worst.toExponential(2)}`);
  await time(`prefill ${L} tokens, 1 head D=32 (warm)`, () => cache.attend(qt).dispose());
  cache.dispose();
}

// Llama-7B-like attention shapes: 32 heads, 8 kv heads, D=128.
{
  const H = 32, Hkv = 8, D = 128;
  for (const L of [1024, 4096]) {
    const cache = new KVCacheState(rt, { batch: 1, numKeyValueHeads: Hkv, headDim: D });
    const k = rt.upload(randn(L * Hkv * D, 1), [1, L, Hkv, D]);
    cache.append(k, k);
    const q = rt.upload(randn(L * H * D, 2), [1, L, H, D]);
    const ms = await time(`prefill ${L} tokens, H=32 Hkv=8 D=128`, () => cache.attend(q).dispose(), 2);
    console.log(`  ~${((2 * 2 * L * L * H * D) / 2 / (ms * 1e9)).toFixed(2)} TFLOP/s (causal)`);
    const q1 = rt.upload(randn(H * D, 3), [1, 1, H, D]);
    await time(`decode attention over ${L} cached tokens, H=32 Hkv=8 D=128`, () => cache.attend(q1).dispose(), 20);
    cache.dispose();
  }
}
console.log(failures ? `${failures} FAILED` : 'all checks passed');
process.exit(failures ? 1 : 0);
