import { describe, expect, it } from 'vitest';
import { type DType, matmulReference, roundTo } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { columns } from './columns.js';
import { convXProj, convXProjReference, createConvXProjKernel } from './conv-x-proj.js';
import { decodeParamStride, packMamba1DecodeParams } from './mamba1-decode-params.js';

const rt = await getTestRuntime();

describe('packMamba1DecodeParams', () => {
  it('lays out conv taps, conv bias, dt bias, D, A_log per channel and the norm weights after them, f16 and bf16 widened', async () => {
    const [D, N, R, K] = [13, 5, 3, 4];
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const convW = roundTo(randn(D * K, 1), dtype);
      const convB = roundTo(randn(D, 2), dtype);
      const dtB = roundTo(randn(D, 3), dtype);
      const skip = roundTo(randn(D, 4), dtype);
      const aLog = randn(D * N, 5);
      const norms = { dt: roundTo(randn(R, 6), dtype), B: roundTo(randn(N, 7), dtype), C: roundTo(randn(N, 8), dtype) };
      const params = packMamba1DecodeParams(rt, {
        convWeight: rt.upload(convW, [D, 1, K], dtype),
        convBias: rt.upload(convB, [D], dtype),
        dtBias: rt.upload(dtB, [D], dtype),
        D: rt.upload(skip, [D], dtype),
        aLog: rt.upload(aLog, [D, N]),
        norms: { dt: rt.upload(norms.dt, [R], dtype), B: rt.upload(norms.B, [N], dtype), C: rt.upload(norms.C, [N], dtype) },
      });
      const PS = decodeParamStride(K, N);
      const expected = new Float32Array(D * PS + R + 2 * N);
      for (let c = 0; c < D; c++) {
        expected.set(convW.subarray(c * K, (c + 1) * K), c * PS);
        expected[c * PS + K] = convB[c];
        expected[c * PS + K + 1] = dtB[c];
        expected[c * PS + K + 2] = skip[c];
        expected.set(aLog.subarray(c * N, (c + 1) * N), c * PS + K + 3);
      }
      expected.set(norms.dt, D * PS);
      expected.set(norms.B, D * PS + R);
      expected.set(norms.C, D * PS + R + N);
      expect(Array.from(await rt.readFloat(params))).toEqual(Array.from(expected));
      params.dispose();
    }
  });

  it('leaves the conv bias 0 without one', async () => {
    const [D, N, K] = [3, 2, 2];
    const params = packMamba1DecodeParams(rt, { convWeight: rt.upload(randn(D * K, 1), [D, K]), dtBias: rt.zeros([D]), D: rt.zeros([D]), aLog: rt.zeros([D, N]) });
    const got = await rt.readFloat(params);
    for (let c = 0; c < D; c++) expect(got[c * decodeParamStride(K, N) + K]).toBe(0);
  });
});

interface Case {
  batch: number;
  D: number;
  R: number;
  N: number;
  K: number;
  dtype: DType;
  bias: boolean;
}

describe('convXProj', () => {
  const cases: Case[] = [];
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    cases.push(
      { batch: 1, D: 37, R: 3, N: 16, K: 4, dtype, bias: true }, // D odd: the scalar loop
      { batch: 2, D: 68, R: 5, N: 24, K: 4, dtype, bias: true }, // D % 4 == 0, not % 8: vec4 for f32, scalar for 16-bit
      { batch: 1, D: 136, R: 7, N: 24, K: 4, dtype, bias: false }, // D % 8 == 0, not % 64
      { batch: 2, D: 200, R: 9, N: 16, K: 3, dtype, bias: true }, // W = 41 rows: a partial row block
      { batch: 2, D: 520, R: 33, N: 16, K: 2, dtype, bias: true }, // more than one column step per lane
    );
  }
  cases.push(
    { batch: 2, D: 256, R: 7, N: 16, K: 4, dtype: 'q8', bias: true }, // q8: 16-weight words, W = 39 rows (a partial row block)
    { batch: 1, D: 40, R: 3, N: 16, K: 3, dtype: 'q8', bias: false }, // q8, D % 16 != 0: element loads
  );
  for (const c of cases) {
    it(`b=${c.batch} D=${c.D} R=${c.R} N=${c.N} k=${c.K} ${c.dtype}${c.bias ? '' : ' no bias'}: silu(conv) · x_projᵀ, conv state untouched`, async () => {
      const { batch, D, R, N, K, dtype } = c;
      const W = R + 2 * N;
      const seed = D * 7 + R + N + K;
      const xz = randn(batch * 2 * D, seed);
      const convW = roundTo(randn(D * K, seed + 1, 0.5), dtype);
      const convB = c.bias ? roundTo(randn(D, seed + 2), dtype) : undefined;
      const s0 = randn(batch * D * (K - 1), seed + 3);
      const xProj = roundTo(randn(W * D, seed + 4, 0.2), dtype);
      const params = packMamba1DecodeParams(rt, {
        convWeight: rt.upload(convW, [D, 1, K], dtype),
        convBias: convB && rt.upload(convB, [D], dtype),
        dtBias: rt.upload(randn(D, seed + 5), [D]),
        D: rt.upload(randn(D, seed + 6), [D]),
        aLog: rt.upload(randu(D * N, seed + 7), [D, N]),
      });
      const xzT = rt.upload(xz, [batch, 1, 2 * D]);
      const state = rt.upload(s0, [batch, D, K - 1]);
      const xdbl = convXProj(rt, { x: columns(xzT, 0, D), params, convState: state, weight: rt.upload(xProj, [W, D], dtype), dState: N });
      const x = new Float32Array(batch * D);
      for (let b = 0; b < batch; b++) x.set(xz.subarray(b * 2 * D, b * 2 * D + D), b * D);
      const ref = convXProjReference(x, convW, convB, s0, xProj, { batch, dInner: D, kernelSize: K, rows: W });
      expect(xdbl.shape).toEqual([batch, 1, W]);
      expect(relError(await rt.readFloat(xdbl), ref)).toBeLessThan(1e-5);
      expect(Array.from(await rt.readFloat(state))).toEqual(Array.from(s0));
    });
  }

  // x convolved already (the conv ran in norm + in_proj's epilogue): x_proj alone on the strided x half
  const convolvedCases = [
    { batch: 1, D: 37, W: 35, dtype: 'f32' }, // D odd: the scalar loop; W odd: a partial row block
    { batch: 2, D: 68, W: 41, dtype: 'f32' },
    { batch: 2, D: 136, W: 80, dtype: 'bf16' },
    { batch: 1, D: 520, W: 1, dtype: 'f16' }, // one row: one workgroup per sequence, half of it idle
    { batch: 2, D: 256, W: 39, dtype: 'q8' },
  ] as const;
  for (const c of convolvedCases) {
    it(`convolved b=${c.batch} D=${c.D} W=${c.W} ${c.dtype}: x_proj of the x half only, 3 bindings`, async () => {
      const { batch, D, W, dtype } = c;
      const xz = randn(batch * 2 * D, D + W);
      const xProj = roundTo(randn(W * D, D + W + 1, 0.2), dtype);
      const xzT = rt.upload(xz, [batch, 1, 2 * D]);
      const before = rt.dispatchCount;
      const xdbl = convXProj(rt, { x: columns(xzT, 0, D), weight: rt.upload(xProj, [W, D], dtype), dState: 16, convolved: true });
      expect(rt.dispatchCount - before).toBe(1);
      const x = new Float32Array(batch * D);
      for (let b = 0; b < batch; b++) x.set(xz.subarray(b * 2 * D, b * 2 * D + D), b * D);
      expect(xdbl.shape).toEqual([batch, 1, W]);
      expect(relError(await rt.readFloat(xdbl), matmulReference(x, xProj, batch, W, D))).toBeLessThan(1e-5);
    });
  }

  it('convolved binds no params or conv state; unconvolved needs both', () => {
    const shape = { batch: 1, dInner: 64, rows: 9, xStride: 128, xOffset: 0, paramStride: 0 };
    const k = createConvXProjKernel(shape, { kernelSize: 2, weightDtype: 'f32', vec4: true, convolved: true });
    expect(k.bindings.map((b) => b.name)).toEqual(['xz', 'w', 'xdbl']);
    expect(k.dispatch[0]).toBe(5); // 2 rows per workgroup
    const xz = rt.zeros([1, 1, 16]);
    expect(() => convXProj(rt, { x: columns(xz, 0, 8), weight: rt.zeros([6, 8]), dState: 2 })).toThrow(/convState and params are needed/);
  });

  it('reads W in 16-byte words only where D allows it', () => {
    const shape = { batch: 1, dInner: 68, rows: 9, xStride: 136, xOffset: 0, paramStride: 23 };
    expect(createConvXProjKernel(shape, { kernelSize: 4, weightDtype: 'f32', vec4: true }).wgsl).toContain('array<vec4<f32>>');
    expect(createConvXProjKernel(shape, { kernelSize: 4, weightDtype: 'bf16', vec4: true }).wgsl).toContain('array<vec4<u32>>');
    expect(createConvXProjKernel(shape, { kernelSize: 4, weightDtype: 'f16', vec4: false }).wgsl).toContain('fn loadW');
    expect(createConvXProjKernel({ ...shape, dInner: 256 }, { kernelSize: 4, weightDtype: 'q8', vec4: true }).wgsl).toContain('loadW16((r0 + r) * 256u + c)');
  });

  it('names a misshapen input', () => {
    const params = rt.zeros([8 * decodeParamStride(4, 2)]);
    const xz = rt.zeros([1, 1, 16]);
    expect(() => convXProj(rt, { x: columns(xz, 0, 8), params, convState: rt.zeros([1, 7, 3]), weight: rt.zeros([6, 8]), dState: 2 })).toThrow(/convState has shape \[1,7,3\]/);
    expect(() => convXProj(rt, { x: columns(xz, 0, 8), params, convState: rt.zeros([1, 8, 3]), weight: rt.zeros([6, 9]), dState: 2 })).toThrow(/weight has shape \[6,9\]/);
  });
});
