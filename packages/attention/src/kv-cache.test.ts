import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { attentionReference, type AttentionOptions } from './flash-attention.js';
import { createDecodeCombineKernel, fitsFreshDecode, gqaLayout } from './flash-decoding.js';
import { KVCacheState } from './kv-cache.js';
import { ropeReference } from './rope.js';

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
    const full = cache.kvRuns().filter((r) => r.k.shape[1] >= cacheOpts.pageSize * cacheOpts.maxRunPages).map((r) => r.k);
    cache.append(rt.upload(slice(K, pos, n, Hkv), [B, n, Hkv, D]), rt.upload(slice(V, pos, n, Hkv), [B, n, Hkv, D]));
    // full runs stay where they are (a shorter last run may have moved into a larger one)
    expect(cache.kvRuns().slice(0, full.length).map((r) => r.k)).toEqual(full);
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
    const { cache, worst } = await run(2, 4, 2, 32, [37, 1, 1, 1, 30, 1, 1, 64, 1, 1], {}, { pageSize: 16, maxRunPages: 2 });
    expect(worst).toBeLessThan(1e-5);
    // 3 pages for the prompt, then runs of 2 and 4 pages
    expect(cache.runCount).toBe(3);
    expect(cache.capacity).toBe(144);
    expect(cache.pages).toBe(cache.capacity / 16);
  });
  it('decode from an empty cache, one token at a time, with a sliding window', async () => {
    const { worst, cache } = await run(1, 2, 1, 16, Array(40).fill(1), { slidingWindow: 9 });
    expect(worst).toBeLessThan(1e-5);
    // one run, moved (its tokens copied) at 16 and 32 tokens: 1, 2, then 4 pages hold 64 tokens
    expect(cache.capacity).toBe(64);
    expect(cache.runCount).toBe(1);
  });
  it('batch 2: a short last run moved into larger ones keeps both sequences\' tokens (1, 2, 4, then 8 pages)', async () => {
    const { cache, worst } = await run(2, 4, 2, 24, [5, 1, 1, 1, 1, 20, 1, 3, 1], {}, { pageSize: 8, maxRunPages: 8 });
    expect(worst).toBeLessThan(1e-5);
    expect(cache.runCount).toBe(1);
    expect(cache.capacity).toBe(64);
  });
  it('chunked prefill with soft-cap, head_dim 64, window spanning runs', async () => {
    const { worst } = await run(2, 3, 3, 64, [5, 50, 17, 2], { softcap: 4, slidingWindow: 40 });
    expect(worst).toBeLessThan(1e-5);
  });
  it('decode over three runs of several 256-key chunks (pass 1 two runs per dispatch, then one; GQA 3:1 and 4:1 heads per workgroup), window and soft-cap, head_dim 20 and 64', async () => {
    const { worst, cache } = await run(1, 6, 2, 20, [300, 1, 500, 1, 1, 300, 1], { slidingWindow: 700, softcap: 3 }, { pageSize: 256, maxRunPages: 2 });
    expect(worst).toBeLessThan(1e-5);
    expect(cache.runCount).toBe(3);
    // GQA 4:1 (one workgroup serves 4 query heads), head_dim 64, two runs; and 1:1 (no sharing)
    const gqa4 = await run(2, 8, 2, 64, [130, 1, 100, 1], { softcap: 5, slidingWindow: 150 }, { pageSize: 64, maxRunPages: 2 });
    expect(gqa4.worst).toBeLessThan(1e-5);
    expect(gqa4.cache.runCount).toBe(2);
    const unwindowed = await run(2, 4, 4, 20, [600, 1, 500, 1, 1], {}, { pageSize: 256, maxRunPages: 3 });
    expect(unwindowed.worst).toBeLessThan(1e-5);
    expect(unwindowed.cache.runCount).toBe(2);
  });
  it('a long prompt gets one run; decode and a second chunk grow it (moved into twice its pages) up to maxRunPages', async () => {
    const { worst, cache } = await run(1, 2, 2, 16, [300, 1, 1, 250], {}, { pageSize: 256, maxRunPages: 32 });
    expect(worst).toBeLessThan(1e-5);
    // 300 tokens: one run of 2 pages; 552 tokens: that run moved into one of 4 pages
    expect(cache.runCount).toBe(1);
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

describe('ring KV cache (sliding window)', () => {
  const B = 2, H = 4, Hkv = 2, D = 16, W = 13;
  const shape = { batch: B, numKeyValueHeads: Hkv, headDim: D };
  // 25 tokens of prompt (longer than W and than one ring piece), decode, a 17-token chunk, decode: 5.4 windows
  const chunks = [25, ...Array(10).fill(1), 17, ...Array(18).fill(1)];
  const total = chunks.reduce((a, b) => a + b, 0);
  const K = randn(B * total * Hkv * D, 21);
  const V = randn(B * total * Hkv * D, 22);
  const Q = randn(B * total * H * D, 23);
  const slice = (src: Float32Array, a: number, n: number, heads: number) => {
    const out = new Float32Array(B * n * heads * D);
    for (let b = 0; b < B; b++) out.set(src.subarray((b * total + a) * heads * D, (b * total + a + n) * heads * D), b * n * heads * D);
    return out;
  };
  const feed = (cache: KVCacheState, pos: number, n: number) =>
    cache.appendAndAttend(rt.upload(slice(Q, pos, n, H), [B, n, H, D]), rt.upload(slice(K, pos, n, Hkv), [B, n, Hkv, D]), rt.upload(slice(V, pos, n, Hkv), [B, n, Hkv, D]), {}, { slidingWindow: W, softcap: 5 });

  it('prefill and decode equal the growing cache over 5 windows, in memory bounded by the window', async () => {
    const ring = new KVCacheState(rt, shape, { pageSize: 8, window: W });
    const grow = new KVCacheState(rt, shape, { pageSize: 8 });
    // C = ceil(12/8)*8 + 8 = 24 tokens per run, 12 tokens per piece
    expect(ring.maxAppend).toBe(12);
    let pos = 0;
    let worst = 0;
    let worstRef = 0;
    const kv: number[] = [];
    for (const n of chunks) {
      const a = await rt.read(feed(ring, pos, n));
      const b = await rt.read(feed(grow, pos, n));
      worst = Math.max(worst, relError(a, b));
      pos += n;
      const ref = attentionReference(slice(Q, pos - n, n, H), slice(K, 0, pos, Hkv), slice(V, 0, pos, Hkv), { B, Lq: n, Lk: pos, H, Hkv, D }, { slidingWindow: W, softcap: 5 });
      worstRef = Math.max(worstRef, relError(a, ref));
      kv.push(ring.memory().kv);
    }
    expect(worst).toBeLessThan(1e-5);
    expect(worstRef).toBeLessThan(1e-5);
    expect(ring.length).toBe(total);
    expect(ring.runCount).toBe(2);
    expect(new Set(kv)).toEqual(new Set([2 * 2 * 24 * B * Hkv * D * 4]));
    expect(grow.memory().kv).toBeGreaterThan(ring.memory().kv);
    ring.dispose();
    grow.dispose();
  });

  it('clone, copyFrom, save/load continue identically; truncate past overwritten tokens is refused', async () => {
    const ring = new KVCacheState(rt, shape, { pageSize: 8, window: W });
    let pos = 0;
    for (const n of [25, 12, 12, 1]) {
      feed(ring, pos, n).dispose();
      pos += n;
    }
    // runs [0,24) and [24,48); the first reused at 48 when token 48 came
    expect(() => ring.truncate(47)).toThrow(expect.objectContaining({ code: 'KV_OVERWRITTEN' }));
    const copy = ring.clone();
    const mark = ring.clone();
    const bytes = await ring.save();
    const restored = new KVCacheState(rt, shape, { pageSize: 4, window: W });
    restored.load(bytes);
    expect(restored.length).toBe(pos);
    const want = await rt.read(feed(ring, pos, 3));
    expect(relError(await rt.read(feed(copy, pos, 3)), want)).toBeLessThan(1e-6);
    expect(relError(await rt.read(feed(restored, pos, 3)), want)).toBeLessThan(1e-6);
    // back to the mark, and the same tokens again
    for (let i = 0; i < 30; i++) feed(ring, pos + 3 + (i % 5), 1).dispose();
    ring.copyFrom(mark);
    expect(ring.length).toBe(pos);
    expect(relError(await rt.read(feed(ring, pos, 3)), want)).toBeLessThan(1e-6);
    ring.truncate(pos + 1);
    // (B, 3, H, D) rows 1..2 of each sequence: the two queries after the truncation point
    const tail = new Float32Array(B * 2 * H * D);
    for (let b = 0; b < B; b++) tail.set(want.subarray((b * 3 + 1) * H * D, (b * 3 + 3) * H * D), b * 2 * H * D);
    expect(relError(await rt.read(feed(ring, pos + 1, 2)), tail)).toBeLessThan(1e-6);
    // a growing cache's bytes load into a ring; a ring's (only the window kept) do not load into a growing cache
    const grow = new KVCacheState(rt, shape, { pageSize: 8 });
    feed(grow, 0, 30).dispose();
    const ring2 = new KVCacheState(rt, shape, { pageSize: 8, window: W });
    ring2.load(await grow.save());
    expect(relError(await rt.read(feed(ring2, 30, 2)), await rt.read(feed(grow, 30, 2)))).toBeLessThan(1e-6);
    expect(() => new KVCacheState(rt, shape, { pageSize: 8 }).load(bytes)).toThrow(expect.objectContaining({ code: 'STATE_MISMATCH' }));
    expect(() => ring2.attend(rt.upload(randn(B * H * D, 1), [B, 1, H, D]), { slidingWindow: 7 })).toThrow(/cannot attend with slidingWindow 7/);
    for (const c of [ring, copy, mark, restored, grow, ring2]) c.dispose();
  });
});

describe('the decode token straight into flash decoding (rope and the cache write inside pass 1)', () => {
  /**
   * Prefills `prompt` tokens, then feeds `steps` decode tokens as unrotated stacked q/k/v rows through
   * attendDecodeTokenPacked; each step's combined output is checked against RoPE + attention on the CPU over
   * every token so far, and at the end every cache row the kernel wrote against the rotated keys and the values.
   */
  async function fresh(c: { B: number; H: number; Hkv: number; D: number; R: number; prompt: number; steps: number; opts: AttentionOptions; cache: { pageSize: number; maxRunPages: number; window?: number } }) {
    const { B, H, Hkv, D, R, prompt, steps, opts } = c;
    const total = prompt + steps;
    const cache = new KVCacheState(rt, { batch: B, numKeyValueHeads: Hkv, headDim: D }, c.cache);
    const K = randn(B * total * Hkv * D, 11); // rotated keys (the prompt's as given, the decode tokens' filled in below)
    const V = randn(B * total * Hkv * D, 12);
    const take = (src: Float32Array, a: number, n: number, heads: number) => {
      const out = new Float32Array(B * n * heads * D);
      for (let b = 0; b < B; b++) out.set(src.subarray((b * total + a) * heads * D, (b * total + a + n) * heads * D), b * n * heads * D);
      return out;
    };
    if (prompt > 0) cache.append(rt.upload(take(K, 0, prompt, Hkv), [B, prompt, Hkv, D]), rt.upload(take(V, 0, prompt, Hkv), [B, prompt, Hkv, D]));
    const tableData = randn(total * Math.max(R, 2), 13); // any cos/sin values: the kernel applies the table as given
    const table = R > 0 ? rt.upload(tableData, [total, R]) : null;
    const W = (H + 2 * Hkv) * D;
    let worst = 0;
    const slots = new Set<number>(); // partial slots per step: chunks times the pass's splits
    for (let s = 0; s < steps; s++) {
      const p = prompt + s;
      const qkv = randn(B * W, 100 + s);
      const row = R > 0 ? tableData.subarray(p * R, (p + 1) * R) : null;
      const part = (off: number, heads: number) => {
        const out = new Float32Array(B * heads * D);
        for (let b = 0; b < B; b++) out.set(qkv.subarray(b * W + off, b * W + off + heads * D), b * heads * D);
        return out;
      };
      const qRot = ropeReference(part(0, H), { B, L: 1, H, D }, row, R);
      const kRot = ropeReference(part(H * D, Hkv), { B, L: 1, H: Hkv, D }, row, R);
      const vNew = part((H + Hkv) * D, Hkv);
      for (let b = 0; b < B; b++) {
        K.set(kRot.subarray(b * Hkv * D, (b + 1) * Hkv * D), (b * total + p) * Hkv * D);
        V.set(vNew.subarray(b * Hkv * D, (b + 1) * Hkv * D), (b * total + p) * Hkv * D);
      }
      const parts = cache.attendDecodeTokenPacked(rt.upload(qkv, [B, 1, W]), H, { rope: table ? { table, position: p } : undefined }, opts);
      slots.add(parts.chunks);
      const o = rt.empty([B, 1, H, D]);
      rt.run(createDecodeCombineKernel({ B, H, D, N: parts.chunks }), [parts.po, parts.pml, o]);
      const ref = attentionReference(qRot, take(K, 0, p + 1, Hkv), take(V, 0, p + 1, Hkv), { B, Lq: 1, Lk: p + 1, H, Hkv, D }, opts);
      worst = Math.max(worst, relError(await rt.read(o), ref));
    }
    expect(cache.length).toBe(total);
    // the rows the kernel wrote (the ring holds only the last window's worth)
    let rowErr = 0;
    for (const r of cache.kvRuns()) {
      const [k, v] = [await rt.read(r.k), await rt.read(r.v)];
      const T = r.k.shape[1];
      for (let t = Math.max(r.start, prompt); t < r.start + r.length; t++) {
        for (let b = 0; b < B; b++) {
          const at = ((b * T + t - r.start) * Hkv) * D;
          const want = (b * total + t) * Hkv * D;
          rowErr = Math.max(rowErr, relError(k.subarray(at, at + Hkv * D), K.subarray(want, want + Hkv * D)), relError(v.subarray(at, at + Hkv * D), V.subarray(want, want + Hkv * D)));
        }
      }
    }
    return { worst, rowErr, cache, slots: [...slots] };
  }

  it('GQA 4:1, head_dim 64, full rotary, batch 2, over many page runs (pair and single pass-1 dispatches)', async () => {
    const { worst, rowErr, cache } = await fresh({ B: 2, H: 8, Hkv: 2, D: 64, R: 64, prompt: 37, steps: 30, opts: {}, cache: { pageSize: 8, maxRunPages: 2 } });
    expect(worst).toBeLessThan(1e-5);
    expect(rowErr).toBeLessThan(1e-6);
    expect(cache.runCount).toBeGreaterThan(2);
  });
  it('GQA 3:1, head_dim 128 (two load batches), partial rotary 32, soft-cap and window, across a 256-key chunk boundary', async () => {
    const { worst, rowErr } = await fresh({ B: 1, H: 6, Hkv: 2, D: 128, R: 32, prompt: 250, steps: 10, opts: { softcap: 3, slidingWindow: 100 }, cache: { pageSize: 256, maxRunPages: 4 } });
    expect(worst).toBeLessThan(1e-5);
    expect(rowErr).toBeLessThan(1e-6);
  });
  it('GQA 4:1, head_dim 32: chunks split in 4 (64 threads) up to 1,024 keys, in 2 (128 threads) past it, not past 2,048', async () => {
    const four = await fresh({ B: 1, H: 8, Hkv: 2, D: 32, R: 16, prompt: 1019, steps: 8, opts: {}, cache: { pageSize: 256, maxRunPages: 8 } });
    expect(four.worst).toBeLessThan(1e-5);
    expect(four.rowErr).toBeLessThan(1e-6);
    // 4 chunks x 4 splits up to 1,024 keys, 5 chunks x 2 splits past it
    expect(four.slots).toEqual([16, 10]);
    const one = await fresh({ B: 1, H: 6, Hkv: 2, D: 32, R: 32, prompt: 2302, steps: 3, opts: { softcap: 4 }, cache: { pageSize: 256, maxRunPages: 16 } });
    expect(one.worst).toBeLessThan(1e-5);
    expect(one.rowErr).toBeLessThan(1e-6);
    expect(one.slots).toEqual([9, 10]); // 9 and 10 chunks, no split (256 threads, the P·V sums one head per round)
    expect(gqaLayout(10, 3, 32)).toEqual({ splits: 1, threads: 256, headsPerRound: 1 });
    expect(gqaLayout(2, 4, 32)).toEqual({ splits: 4, threads: 64, headsPerRound: 4 });
  });
  it('GQA 2:1, head_dim 24, no rotary, a sliding-window ring from an empty cache', async () => {
    const { worst, rowErr } = await fresh({ B: 1, H: 4, Hkv: 2, D: 24, R: 0, prompt: 0, steps: 40, opts: { slidingWindow: 9 }, cache: { pageSize: 16, maxRunPages: 4, window: 9 } });
    expect(worst).toBeLessThan(1e-5);
    expect(rowErr).toBeLessThan(1e-6);
  });
  it('refuses what the fused pass does not take', () => {
    expect(fitsFreshDecode(rt, { H: 8, Hkv: 8, D: 64, R: 64 })).toBe(false); // no GQA sharing
    expect(fitsFreshDecode(rt, { H: 8, Hkv: 2, D: 64, R: 36 })).toBe(false); // rotary dim not a multiple of 8
    expect(fitsFreshDecode(rt, { H: 8, Hkv: 2, D: 64, R: 64 })).toBe(rt.limits.maxStorageBuffersPerShaderStage >= 8);
    const cache = new KVCacheState(rt, { batch: 1, numKeyValueHeads: 2, headDim: 64 });
    expect(() => cache.attendDecodeTokenPacked(rt.zeros([1, 1, 10]), 8, {})).toThrow(/expected \[batch=1, 1, 768\]/);
  });
});
