/**
 * Old (simple) vs new (tiled) flash-attention prefill kernel at llama-350m's shapes
 * (1 sequence, 16 query heads, 4 KV heads, head_dim 64), causal, one KV run: times
 * each at L = 4096 and 32768 (--lengths) and checks the tiled output against the
 * simple one on the GPU (max |diff|, relative L2). Under a minute on an H200.
 *
 *   node attention.mjs [--lengths 4096,32768] [--heads 16] [--kv-heads 4] [--head-dim 64] [--window 0]
 */
import { parseArgs } from 'node:util';
import { Runtime } from '@statespace/core';
import { flashAttention, tiledFlashRows } from '@statespace/attention';

const { values } = parseArgs({
  options: {
    lengths: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    window: { type: 'string' },
    softcap: { type: 'string' },
  },
});
const lengths = (values.lengths ?? '4096,32768').split(',').map(Number);
const H = Number(values.heads ?? 16);
const Hkv = Number(values['kv-heads'] ?? 4);
const D = Number(values['head-dim'] ?? 64);
const window = Number(values.window ?? 0);
const softcap = Number(values.softcap ?? 0);

const rt = await Runtime.create();
console.log(`adapter ${rt.adapterName}; H ${H}, Hkv ${Hkv}, D ${D}${window ? `, window ${window}` : ''}; tiled rows ${tiledFlashRows(D, H / Hkv, rt.limits)} (workgroup storage ${rt.limits.maxComputeWorkgroupStorageSize} B)`);

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

for (const L of lengths) {
  const q = rt.upload(randn(L * H * D, 1), [1, L, H, D]);
  const k = rt.upload(randn(L * Hkv * D, 2), [1, L, Hkv, D]);
  const v = rt.upload(randn(L * Hkv * D, 3), [1, L, Hkv, D]);
  const pairs = window ? Math.min(L, window) * L - (Math.min(L, window) * (Math.min(L, window) - 1)) / 2 : (L * (L + 1)) / 2;
  const flops = 4 * H * D * pairs;
  const outs: Float32Array[] = [];
  const ms: Record<string, number> = {};
  for (const kernel of ['simple', 'tiled'] as const) {
    const opts = { path: 'prefill' as const, prefillKernel: kernel, slidingWindow: window || undefined, softcap: softcap || undefined };
    flashAttention(rt, q, k, v, opts).dispose(); // compile, warm
    await rt.sync();
    const reps = Math.max(1, Math.min(20, Math.round(2e13 / flops / (kernel === 'simple' ? 8 : 1))));
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) flashAttention(rt, q, k, v, opts).dispose();
    await rt.sync();
    ms[kernel] = (performance.now() - t0) / reps;
    const o = flashAttention(rt, q, k, v, opts);
    outs.push(await rt.readFloat(o));
    o.dispose();
    console.log(`L ${L} ${kernel.padEnd(6)}: ${ms[kernel].toFixed(2)} ms, ${(flops / (ms[kernel] * 1e9)).toFixed(2)} TFLOP/s (${reps} reps)`);
  }
  let maxDiff = 0;
  let num = 0;
  let den = 0;
  let nonFinite = 0;
  for (let i = 0; i < outs[0].length; i++) {
    const d = outs[1][i] - outs[0][i];
    if (!Number.isFinite(outs[1][i])) nonFinite++;
    maxDiff = Math.max(maxDiff, Math.abs(d));
    num += d * d;
    den += outs[0][i] * outs[0][i];
  }
  const rel = Math.sqrt(num / den);
  const ok = nonFinite === 0 && rel < 1e-5;
  console.log(`L ${L}: tiled / simple speed-up ${(ms.simple / ms.tiled).toFixed(2)}x; tiled vs simple max |diff| ${maxDiff.toExponential(2)}, rel L2 ${rel.toExponential(2)}, non-finite ${nonFinite} -> ${ok ? 'OK' : 'MISMATCH'}`);
  if (!ok) process.exitCode = 1;
  for (const t of [q, k, v]) t.dispose();
}
rt.destroy();
