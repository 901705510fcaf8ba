import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { attentionReference, type AttentionOptions } from './flash-attention.js';
import { KVCacheState } from './kv-cache.js';

const rt = await getTestRuntime();

/** Appends `chunks` of tokens one call at a time and checks each call's attention against the reference over everything so far. */
async function run(B: number, H: number, Hkv: number, D: number, chunks: number[], opts: AttentionOptions, cacheOpts = { pageSize: 16, maxRunPages: 4 }) {
  const cache = new KVCacheState(rt, { batch: B, numKeyValueHeads: Hkv, headDim: D }, cacheOpts);
  const total = chunks.reduce((a, b) => a + b, 0);
  const K = randn(B * total * Hkv * D, 1);
  const V = randn(B * total * Hkv * D, 2);
  const Q = randn(B * total * H * D, 3);
  const slice = (src: Float32Array, a: number, n: number, heads: number) => {
    const out = new Float32Array(B * n * heads * D);
    for (let b = 0; b < B; b++) out.set(src.subarray((b * total + a) * heads * D, (b * total + a + n) * heads * D), b * n * heads * D);
    return out;
  };
  let pos = 0;
  let worst = 0;
  for (const n of chunks) {
    const starts = cache.kvRuns().map((r) => r.k);
    cache.append(rt.upload(slice(K, pos, n, Hkv), [B, n, Hkv, D]), rt.upload(slice(V, pos, n, Hkv), [B, n, Hkv, D]));
    // pages already allocated stay where they are
    expect(cache.kvRuns().slice(0, starts.length).map((r) => r.k)).toEqual(starts);
    const q = slice(Q, pos, n, H);
    const o = cache.attend(rt.upload(q, [B, n, H, D]), opts);
    pos += n;
    const ref = attentionReference(q, slice(K, 0, pos, Hkv), slice(V, 0, pos, Hkv), { B, Lq: n, Lk: pos, H, Hkv, D }, opts);
    worst = Math.max(worst, relError(await rt.read(o), ref));
  }
  expect(cache.length).toBe(total);
  expect(cache.capacity).toBeGreaterThanOrEqual(total);
  return { cache, worst };
}

describe('paged KV cache', () => {
  it('prefill then token-by-token decode across many page runs (GQA 4:2, batch 2)', async () => {
    const { cache, worst } = await run(2, 4, 2, 32, [37, 1, 1, 1, 30, 1, 1, 64, 1, 1], {});
    expect(worst).toBeLessThan(1e-5);
    expect(cache.runCount).toBeGreaterThan(2);
    expect(cache.pages).toBe(cache.capacity / 16);
  });
  it('decode from an empty cache, one token at a time, with a sliding window', async () => {
    const { worst, cache } = await run(1, 2, 1, 16, Array(40).fill(1), { slidingWindow: 9 });
    expect(worst).toBeLessThan(1e-5);
    // doubling runs capped at 4 pages: 1,1,2 pages hold 64 tokens
    expect(cache.capacity).toBe(64);
  });
  it('chunked prefill with soft-cap, head_dim 64, window spanning runs', async () => {
    const { worst } = await run(2, 3, 3, 64, [5, 50, 17, 2], { softcap: 4, slidingWindow: 40 });
    expect(worst).toBeLessThan(1e-5);
  });
  it('a long prompt gets one run; decode continues with 256-token pages', async () => {
    const { worst, cache } = await run(1, 2, 2, 16, [300, 1, 1, 250], {}, { pageSize: 256, maxRunPages: 32 });
    expect(worst).toBeLessThan(1e-5);
    // 300 tokens: one run of 2 pages; 552 tokens: a second run of 2 pages (doubling)
    expect(cache.runCount).toBe(2);
    expect(cache.capacity).toBe(1024);
    expect(cache.memory()).toEqual({ ssm: 0, conv: 0, kv: 2 * 1024 * 2 * 16 * 4 });
  });
  it('clone is independent; save/load round-trips; reset frees the pages', async () => {
    const B = 2, H = 2, Hkv = 1, D = 16;
    const cache = new KVCacheState(rt, { batch: B, numKeyValueHeads: Hkv, headDim: D }, { pageSize: 8 });
    const k = randn(B * 21 * Hkv * D, 5);
    const v = randn(B * 21 * Hkv * D, 6);
    cache.append(rt.upload(k, [B, 21, Hkv, D]), rt.upload(v, [B, 21, Hkv, D]));
    const copy = cache.clone();
    const bytes = await cache.save();
    cache.append(rt.upload(randn(B * 3 * D, 7), [B, 3, 1, D]), rt.upload(randn(B * 3 * D, 8), [B, 3, 1, D]));
    expect(copy.length).toBe(21);
    const restored = new KVCacheState(rt, { batch: B, numKeyValueHeads: Hkv, headDim: D }, { pageSize: 4 });
    restored.load(bytes);
    expect(restored.length).toBe(21);
    const q = randn(B * H * D, 9);
    const want = attentionReference(q, k, v, { B, Lq: 1, Lk: 21, H, Hkv, D }, { queryOffset: 20 });
    // the query of the last token against the 21 saved tokens
    expect(relError(await rt.read(copy.attend(rt.upload(q, [B, 1, H, D]))), want)).toBeLessThan(1e-5);
    expect(relError(await rt.read(restored.attend(rt.upload(q, [B, 1, H, D]))), want)).toBeLessThan(1e-5);
    expect(() => new KVCacheState(rt, { batch: 1, numKeyValueHeads: 1, headDim: D }).load(bytes)).toThrow(/expected K and V/);
    cache.reset();
    expect(cache.length).toBe(0);
    expect(cache.memory().kv).toBe(0);
    copy.dispose();
    restored.dispose();
  });
  it('rejects keys of the wrong shape and queries without keys', () => {
    const cache = new KVCacheState(rt, { batch: 1, numKeyValueHeads: 2, headDim: 16 });
    expect(() => cache.append(rt.upload(randn(32, 1), [1, 1, 1, 32]), rt.upload(randn(32, 1), [1, 1, 1, 32]))).toThrow(/k has shape \[1,1,1,32\]/);
    expect(() => cache.attend(rt.upload(randn(32, 1), [1, 1, 2, 16]))).toThrow(/append their keys first/);
  });
});

describe('long prefill in O(L) memory', () => {
  // 4,096 tokens on SwiftShader (16,384 take over two minutes there); set STATESPACE_LONG_PREFILL=16384
  // on a real GPU (run on an H100: see README).
  const L = Number(process.env.STATESPACE_LONG_PREFILL ?? 4096);
  it(`prefill of ${L} tokens keeps every buffer far below L·L·4 bytes`, async () => {
    const D = 32;
    rt.resetPeak();
    const cache = new KVCacheState(rt, { batch: 1, numKeyValueHeads: 1, headDim: D });
    const x = randn(L * D, 11);
    const k = rt.upload(x, [1, L, 1, D]);
    cache.append(k, k);
    const o = cache.attend(rt.upload(randn(L * D, 12), [1, L, 1, D]));
    const out = await rt.read(o);
    const mem = rt.memory();
    expect(mem.largestBufferBytes).toBeLessThan(L * L * 4);
    expect(mem.largestBufferBytes).toBeLessThanOrEqual(4 * L * D * 4);
    // spot-check three rows against the reference
    const qh = randn(L * D, 12);
    for (const row of [0, 777, L - 1]) {
      const ref = attentionReference(qh.subarray(row * D, (row + 1) * D), x.subarray(0, (row + 1) * D), x.subarray(0, (row + 1) * D), { B: 1, Lq: 1, Lk: row + 1, H: 1, Hkv: 1, D });
      expect(relError(out.subarray(row * D, (row + 1) * D), ref)).toBeLessThan(1e-5);
    }
    cache.dispose();
  });
});
