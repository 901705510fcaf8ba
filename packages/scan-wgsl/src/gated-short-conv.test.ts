import { describe, expect, it } from 'vitest';
import { StatespaceError, roundTo } from '@statespace/core';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { createGatedShortConvKernel, gatedShortConv, gatedShortConvReference } from './gated-short-conv.js';

const rt = await getTestRuntime(); // output buffers poisoned (NaN) before each run

describe('gatedShortConv (LFM2)', () => {
  const cases: [batch: number, seqlen: number, channels: number, k: number][] = [
    [1, 1, 1, 3],
    [1, 2, 5, 3],
    [2, 3, 67, 3],
    [1, 7, 130, 4],
    [2, 37, 19, 3],
    [2, 13, 33, 2],
    [1, 9, 7, 1],
    [1, 300, 3, 5],
  ];
  for (const [batch, L, C, K] of cases) {
    for (const path of ['parallel', 'sequential'] as const) {
      it(`b=${batch} L=${L} c=${C} k=${K} ${path}, nonzero state, bias`, async () => {
        const seed = batch * 1000 + L * 10 + C + K;
        const bcx = randn(batch * L * 3 * C, seed);
        const w = randn(C * K, seed + 1, 0.5);
        const bias = randn(C, seed + 2);
        const s0 = randn(batch * C * (K - 1), seed + 3);
        const state = rt.upload(s0, [batch, C, K - 1]);
        const y = gatedShortConv(rt, rt.upload(bcx, [batch, L, 3 * C]), rt.upload(w, [C, 1, K]), rt.upload(bias, [C]), state, { path });
        const ref = gatedShortConvReference(bcx, w, bias, s0, { batch, seqlen: L, channels: C, kernelSize: K });
        expect(y.shape).toEqual([batch, L, C]);
        expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
        if (K > 1) expect(relError(await rt.read(state), ref.state)).toBeLessThan(1e-6);
      });
    }
  }

  it('no bias, (c, k) weight in f16 and bf16', async () => {
    const [batch, L, C, K] = [2, 11, 21, 3];
    const bcx = randn(batch * L * 3 * C, 5);
    const s0 = randn(batch * C * (K - 1), 6);
    for (const dtype of ['f16', 'bf16'] as const) {
      const w = randn(C * K, 7);
      const state = rt.upload(s0, [batch, C, K - 1]);
      const y = gatedShortConv(rt, rt.upload(bcx, [batch, L, 3 * C]), rt.upload(w, [C, K], dtype), undefined, state);
      const ref = gatedShortConvReference(bcx, roundTo(w, dtype), undefined, s0, { batch, seqlen: L, channels: C, kernelSize: K });
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.read(state), ref.state)).toBe(0);
    }
  });

  it('a prompt then token-by-token equals one call over everything', async () => {
    const [C, K, L] = [29, 3, 10];
    const bcx = randn(L * 3 * C, 11);
    const w = randn(C * K, 12);
    const whole = gatedShortConvReference(bcx, w, undefined, new Float32Array(C * (K - 1)), { batch: 1, seqlen: L, channels: C, kernelSize: K });
    const state = rt.zeros([1, C, K - 1]);
    const wt = rt.upload(w, [C, K]);
    const got = new Float32Array(L * C);
    const first = gatedShortConv(rt, rt.upload(bcx.subarray(0, 1 * 3 * C), [1, 1, 3 * C]), wt, undefined, state); // a one-token prompt
    got.set((await rt.read(first)) as Float32Array, 0);
    for (let t = 1; t < L; t++) {
      const y = gatedShortConv(rt, rt.upload(bcx.subarray(t * 3 * C, (t + 1) * 3 * C), [1, 1, 3 * C]), wt, undefined, state);
      got.set((await rt.read(y)) as Float32Array, t * C);
    }
    expect(relError(got, whole.y)).toBeLessThan(1e-5);
    expect(relError((await rt.read(state)) as Float32Array, whole.state)).toBeLessThan(1e-6);
  });

  it('names the input and the expected shape on bad input', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return StatespaceError.is(e) ? `${e.code}: ${e.message}` : 'other';
      }
      return 'none';
    };
    const state = rt.zeros([1, 4, 2]);
    expect(code(() => gatedShortConv(rt, rt.zeros([1, 3, 13]), rt.zeros([4, 1, 3]), undefined, state))).toMatch(/^SHAPE_MISMATCH: gatedShortConv: bcx/);
    expect(code(() => gatedShortConv(rt, rt.zeros([1, 3, 12]), rt.zeros([5, 1, 3]), undefined, state))).toMatch(/^SHAPE_MISMATCH: gatedShortConv: weight/);
    expect(code(() => gatedShortConv(rt, rt.zeros([1, 3, 12]), rt.zeros([4, 1, 4]), undefined, state))).toMatch(/^SHAPE_MISMATCH: gatedShortConv: state .*k-1=3/);
  });

  it('the kernel factory needs no GPU and labels its modes', () => {
    for (const mode of ['parallel', 'state', 'sequential'] as const) {
      const k = createGatedShortConvKernel({ batch: 1, seqlen: 5, channels: 8 }, { mode, kernelSize: 3 });
      expect(k.name).toBe(`gated_short_conv_${mode}`);
      expect(k.wgsl).toContain('fn main');
    }
  });
});
