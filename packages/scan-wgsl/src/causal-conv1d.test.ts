import { describe, expect, it } from 'vitest';
import { roundTo } from '@statespace/core';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { causalConv1d, causalConv1dReference, createCausalConv1dKernel } from './causal-conv1d.js';
import { columns } from './columns.js';

const rt = await getTestRuntime();

describe('causalConv1d', () => {
  const cases: [batch: number, seqlen: number, channels: number, k: number][] = [
    [1, 1, 1, 4],
    [1, 2, 5, 4],
    [2, 3, 67, 4],
    [1, 7, 130, 4],
    [2, 37, 19, 4],
    [2, 13, 33, 2],
    [1, 9, 7, 1],
    [2, 5, 11, 7],
    [1, 300, 3, 3],
  ];
  for (const [batch, L, C, K] of cases) {
    for (const path of ['parallel', 'sequential'] as const) {
      it(`b=${batch} L=${L} c=${C} k=${K} ${path}, nonzero state, bias, silu`, async () => {
        const seed = batch * 1000 + L * 10 + C + K;
        const x = randn(batch * L * C, seed);
        const w = randn(C * K, seed + 1, 0.5);
        const bias = randn(C, seed + 2);
        const s0 = randn(batch * C * (K - 1), seed + 3);
        const state = rt.upload(s0, [batch, C, K - 1]);
        const y = causalConv1d(rt, rt.upload(x, [batch, L, C]), rt.upload(w, [C, 1, K]), rt.upload(bias, [C]), state, { activation: 'silu', path });
        const ref = causalConv1dReference(x, w, bias, s0, { batch, seqlen: L, channels: C, kernelSize: K, activation: 'silu' });
        expect(y.shape).toEqual([batch, L, C]);
        expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
        if (K > 1) expect(relError(await rt.read(state), ref.state)).toBeLessThan(1e-6);
      });
    }
  }

  it('no bias, no activation, (c, k) weight in f16 and bf16', async () => {
    const [batch, L, C, K] = [2, 11, 21, 4];
    const x = randn(batch * L * C, 5);
    const s0 = randn(batch * C * (K - 1), 6);
    for (const dtype of ['f16', 'bf16'] as const) {
      const w = randn(C * K, 7);
      const state = rt.upload(s0, [batch, C, K - 1]);
      const y = causalConv1d(rt, rt.upload(x, [batch, L, C]), rt.upload(w, [C, K], dtype), undefined, state);
      const ref = causalConv1dReference(x, roundTo(w, dtype), undefined, s0, { batch, seqlen: L, channels: C, kernelSize: K });
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.read(state), ref.state)).toBe(0);
    }
  });

  it('reads x as a column slice of a wider tensor', async () => {
    const [batch, L, C, K] = [2, 17, 9, 4];
    const wide = randn(batch * L * 2 * C, 8);
    const x = new Float32Array(batch * L * C);
    for (let r = 0; r < batch * L; r++) for (let c = 0; c < C; c++) x[r * C + c] = wide[r * 2 * C + C + c];
    const w = randn(C * K, 9);
    const bias = randn(C, 10);
    for (const path of ['parallel', 'sequential'] as const) {
      const state = rt.zeros([batch, C, K - 1]);
      const y = causalConv1d(rt, columns(rt.upload(wide, [batch, L, 2 * C]), C, C), rt.upload(w, [C, 1, K]), rt.upload(bias, [C]), state, { activation: 'silu', path });
      const ref = causalConv1dReference(x, w, bias, new Float32Array(batch * C * (K - 1)), { batch, seqlen: L, channels: C, kernelSize: K, activation: 'silu' });
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.read(state), ref.state)).toBe(0);
    }
  });

  it('prefill then token-by-token decode equals one call over the whole sequence (including prompts shorter than k-1)', async () => {
    const [batch, C, K] = [2, 13, 5];
    for (const prompt of [1, 2, 3, 12]) {
      const total = prompt + 6;
      const x = randn(batch * total * C, 11 + prompt);
      const w = randn(C * K, 12);
      const bias = randn(C, 13);
      const ref = causalConv1dReference(x, w, bias, new Float32Array(batch * C * (K - 1)), { batch, seqlen: total, channels: C, kernelSize: K, activation: 'silu' });
      const wt = rt.upload(w, [C, 1, K]);
      const bt = rt.upload(bias, [C]);
      const state = rt.zeros([batch, C, K - 1]);
      const slice = (t0: number, t1: number) => {
        const out = new Float32Array(batch * (t1 - t0) * C);
        for (let b = 0; b < batch; b++) out.set(x.subarray((b * total + t0) * C, (b * total + t1) * C), b * (t1 - t0) * C);
        return out;
      };
      const got = new Float32Array(batch * total * C);
      const put = (y: Float32Array, t0: number, t1: number) => {
        for (let b = 0; b < batch; b++) got.set(y.subarray(b * (t1 - t0) * C, (b + 1) * (t1 - t0) * C), (b * total + t0) * C);
      };
      put(await rt.readFloat(causalConv1d(rt, rt.upload(slice(0, prompt), [batch, prompt, C]), wt, bt, state, { activation: 'silu', path: 'parallel' })), 0, prompt);
      for (let t = prompt; t < total; t++) {
        put(await rt.readFloat(causalConv1d(rt, rt.upload(slice(t, t + 1), [batch, 1, C]), wt, bt, state, { activation: 'silu' })), t, t + 1);
      }
      expect(relError(got, ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.read(state), ref.state)).toBe(0);
    }
  });

  it('rejects mismatched shapes with the expected shape in the message', () => {
    const x = rt.upload(randn(2 * 3 * 4, 1), [2, 3, 4]);
    const w = rt.upload(randn(4 * 4, 2), [4, 1, 4]);
    expect(() => causalConv1d(rt, x, rt.upload(randn(12, 3), [3, 4]), undefined, rt.zeros([2, 4, 3]))).toThrow(/weight has shape \[3,4\], expected \[channels=4, 1, k\]/);
    expect(() => causalConv1d(rt, x, w, undefined, rt.zeros([2, 4, 4]))).toThrow(/state has shape \[2,4,4\], expected \[batch=2, channels=4, k-1=3\]/);
    expect(() => causalConv1d(rt, x, w, rt.zeros([5]), rt.zeros([2, 4, 3]))).toThrow(/bias has shape \[5\]/);
  });

  it('kernel descriptors cache by dtype, width and mode, never by sizes', () => {
    const a = createCausalConv1dKernel({ batch: 1, seqlen: 10, channels: 7 }, { mode: 'parallel', kernelSize: 4 });
    const b = createCausalConv1dKernel({ batch: 3, seqlen: 99, channels: 70 }, { mode: 'parallel', kernelSize: 4 });
    expect(a.cacheKey).toBe(b.cacheKey);
    expect(a.wgsl).toBe(b.wgsl);
  });
});
