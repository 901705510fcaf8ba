import { describe, expect, it } from 'vitest';
import { type DType, roundTo } from '@statespace/core';
import { getTestRuntime, randn, randu, relError } from '@statespace/core/testing';
import { type BcdtNormKind } from './bcdt-norm.js';
import { causalConv1dReference } from './causal-conv1d.js';
import { type DtScanStepHostInputs, createDtScanStepKernel, dtScanStep, dtScanStepReference } from './dt-scan-step.js';
import { packMamba1DecodeParams } from './mamba1-decode-params.js';

const rt = await getTestRuntime();

interface Case {
  batch: number;
  D: number;
  R: number;
  N: number;
  K: number;
  kind: BcdtNormKind;
  dtype: DType;
  bias: boolean;
}

/** Seeded host inputs of one case, weights rounded to their dtype. */
function hostInputs(c: Case, seed: number): DtScanStepHostInputs {
  const { batch, D, R, N, K, kind, dtype } = c;
  const W = R + 2 * N;
  const w = (data: Float32Array) => roundTo(data, dtype);
  return {
    xz: randn(batch * 2 * D, seed),
    // large enough that the norms matter, small enough that Δ stays in Mamba's range
    xdbl: randn(batch * W, seed + 1, kind === 'none' ? 0.5 : 3),
    dtWeight: w(randn(D * R, seed + 2, 0.5)),
    dtBias: w(randu(D, seed + 3, -5, -1)),
    convWeight: w(randn(D * K, seed + 4, 0.5)),
    convBias: c.bias ? w(randn(D, seed + 5)) : undefined,
    aLog: Float32Array.from(randu(D * N, seed + 6, -1, 2.5)),
    D: w(randn(D, seed + 7)),
    norms: kind === 'weighted' ? { dt: w(randu(R, seed + 8, 0.5, 1.5)), B: w(randu(N, seed + 9, 0.5, 1.5)), C: w(randu(N, seed + 10, 0.5, 1.5)) } : undefined,
    convState: randn(batch * D * (K - 1), seed + 11),
    ssmState: randn(batch * D * N, seed + 12),
  };
}

/** The packed per-channel weights of a case's host inputs, stored in its dtype. */
function packedParams(c: Case, host: DtScanStepHostInputs) {
  const { D, R, N, K, dtype } = c;
  return packMamba1DecodeParams(rt, {
    convWeight: rt.upload(host.convWeight, [D, 1, K], dtype),
    convBias: host.convBias && rt.upload(host.convBias, [D], dtype),
    dtBias: rt.upload(host.dtBias, [D], dtype),
    D: rt.upload(host.D, [D], dtype),
    aLog: rt.upload(host.aLog, [D, N]),
    norms: host.norms && { dt: rt.upload(host.norms.dt, [R], dtype), B: rt.upload(host.norms.B, [N], dtype), C: rt.upload(host.norms.C, [N], dtype) },
  });
}

describe('dtScanStep', () => {
  const cases: Case[] = [];
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    for (const kind of ['none', 'unweighted', 'weighted'] as const) {
      cases.push(
        { batch: 1, D: 37, R: 3, N: 16, K: 4, kind, dtype, bias: true },
        { batch: 2, D: 70, R: 5, N: 24, K: 4, kind, dtype, bias: kind !== 'weighted' },
      );
    }
    cases.push({ batch: 2, D: 19, R: 1, N: 5, K: 2, kind: 'none', dtype, bias: true }, { batch: 1, D: 130, R: 33, N: 16, K: 3, kind: 'weighted', dtype, bias: true });
  }
  for (const c of cases) {
    it(`b=${c.batch} D=${c.D} R=${c.R} N=${c.N} k=${c.K} ${c.kind} ${c.dtype}${c.bias ? '' : ' no conv bias'}: y and both states`, async () => {
      const { batch, D, R, N, K, kind, dtype } = c;
      const W = R + 2 * N;
      const host = hostInputs(c, D * 13 + R * 3 + N + K);
      const params = packedParams(c, host);
      const convState = rt.upload(host.convState, [batch, D, K - 1]);
      const ssmState = rt.upload(host.ssmState, [batch, D, N]);
      const eps = 1e-5;
      const y = dtScanStep(
        rt,
        { xz: rt.upload(host.xz, [batch, 1, 2 * D]), xdbl: rt.upload(host.xdbl, [batch, 1, W]), dtWeight: rt.upload(host.dtWeight, [D, R], dtype), params, convState, ssmState },
        { kind, eps },
      );
      const ref = dtScanStepReference(host, { batch, dInner: D, dState: N, rank: R, kernelSize: K, kind, eps });
      expect(y.shape).toEqual([batch, 1, D]);
      expect(relError(await rt.readFloat(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.readFloat(ssmState), ref.ssmState)).toBeLessThan(1e-5);
      expect(Array.from(await rt.readFloat(convState))).toEqual(Array.from(ref.convState));
    });
  }

  // The conv ran in norm + in_proj's epilogue: xz's x half is silu(conv(x)); no conv state here.
  for (const c of [
    { batch: 1, D: 37, R: 3, N: 16, K: 4, kind: 'none', dtype: 'f32' },
    { batch: 2, D: 70, R: 5, N: 24, K: 3, kind: 'weighted', dtype: 'bf16' },
    { batch: 2, D: 19, R: 1, N: 5, K: 2, kind: 'unweighted', dtype: 'f16' },
  ] as const) {
    it(`convolved b=${c.batch} D=${c.D} R=${c.R} N=${c.N} k=${c.K} ${c.kind} ${c.dtype}: the same y and ssm state as the unconvolved step`, async () => {
      const { batch, D, R, N, K, kind, dtype } = c;
      const W = R + 2 * N;
      const host = hostInputs({ ...c, bias: true }, D * 5 + R + N);
      const ref = dtScanStepReference(host, { batch, dInner: D, dState: N, rank: R, kernelSize: K, kind, eps: 1e-5 });
      // what in_proj's epilogue leaves: the x half convolved, z as it was
      const x = new Float32Array(batch * D);
      for (let b = 0; b < batch; b++) x.set(host.xz.subarray(b * 2 * D, b * 2 * D + D), b * D);
      const conv = causalConv1dReference(x, host.convWeight, host.convBias, host.convState, { batch, seqlen: 1, channels: D, kernelSize: K, activation: 'silu' });
      const xzc = host.xz.slice();
      for (let b = 0; b < batch; b++) xzc.set(conv.y.subarray(b * D, (b + 1) * D), b * 2 * D);
      const params = packedParams({ ...c, bias: true }, host);
      const ssmState = rt.upload(host.ssmState, [batch, D, N]);
      const y = dtScanStep(
        rt,
        { xz: rt.upload(xzc, [batch, 1, 2 * D]), xdbl: rt.upload(host.xdbl, [batch, 1, W]), dtWeight: rt.upload(host.dtWeight, [D, R], dtype), params, kernelSize: K, ssmState },
        { kind, eps: 1e-5 },
      );
      expect(relError(await rt.readFloat(y), ref.y)).toBeLessThan(1e-5);
      expect(relError(await rt.readFloat(ssmState), ref.ssmState)).toBeLessThan(1e-5);
    });
  }

  it('convolved binds 6 storage buffers (no conv state) and needs the conv width', () => {
    const k = createDtScanStepKernel({ batch: 1, dInner: 64, rank: 4 }, { kernelSize: 4, dState: 16, kind: 'none', dtWeightDtype: 'f32', convolved: true });
    expect(k.bindings.map((b) => b.name)).toEqual(['xz', 'xdbl', 'dtw', 'params', 'ssm_state', 'y']);
    const base = { xz: rt.zeros([1, 1, 16]), xdbl: rt.zeros([1, 1, 6]), dtWeight: rt.zeros([8, 2]), params: rt.zeros([1000]), ssmState: rt.zeros([1, 8, 2]) };
    expect(() => dtScanStep(rt, base)).toThrow(/kernelSize must be an integer >= 2/);
    expect(() => dtScanStep(rt, { ...base, kernelSize: 1 })).toThrow(/kernelSize must be an integer >= 2, got 1/);
  });

  it('two tokens in a row carry both states', async () => {
    const [batch, D, R, N, K] = [2, 21, 2, 16, 4];
    const W = R + 2 * N;
    const host = {
      dtWeight: randn(D * R, 1, 0.5),
      dtBias: randu(D, 2, -5, -1),
      convWeight: randn(D * K, 3, 0.5),
      convBias: randn(D, 4),
      aLog: randu(D * N, 5, -1, 2.5),
      D: randn(D, 6),
    };
    const params = packMamba1DecodeParams(rt, {
      convWeight: rt.upload(host.convWeight, [D, K]),
      convBias: rt.upload(host.convBias, [D]),
      dtBias: rt.upload(host.dtBias, [D]),
      D: rt.upload(host.D, [D]),
      aLog: rt.upload(host.aLog, [D, N]),
    });
    let conv: Float32Array = randn(batch * D * (K - 1), 7);
    let ssm: Float32Array = randn(batch * D * N, 8);
    const convState = rt.upload(conv, [batch, D, K - 1]);
    const ssmState = rt.upload(ssm, [batch, D, N]);
    const dtWeight = rt.upload(host.dtWeight, [D, R]);
    for (let t = 0; t < 2; t++) {
      const xz = randn(batch * 2 * D, 10 + t);
      const xdbl = randn(batch * W, 20 + t, 0.5);
      const y = dtScanStep(rt, { xz: rt.upload(xz, [batch, 1, 2 * D]), xdbl: rt.upload(xdbl, [batch, 1, W]), dtWeight, params, convState, ssmState });
      const ref = dtScanStepReference({ ...host, xz, xdbl, convState: conv, ssmState: ssm }, { batch, dInner: D, dState: N, rank: R, kernelSize: K, kind: 'none' });
      expect(relError(await rt.readFloat(y), ref.y)).toBeLessThan(1e-5);
      conv = ref.convState;
      ssm = ref.ssmState;
    }
    expect(relError(await rt.readFloat(ssmState), ssm)).toBeLessThan(1e-5);
    expect(Array.from(await rt.readFloat(convState))).toEqual(Array.from(conv));
  });

  it('binds 7 storage buffers, within the 8 WebGPU guarantees', () => {
    const k = createDtScanStepKernel({ batch: 1, dInner: 1536, rank: 48 }, { kernelSize: 4, dState: 16, kind: 'weighted', dtWeightDtype: 'bf16' });
    expect(k.bindings.length).toBe(7);
    expect(k.uniforms).toMatchObject({ D: 1536, R: 48, W: 80, PS: 23, tail: 1536 * 23, zOffset: 1536, xzStride: 3072 });
  });

  it('names a misshapen input', () => {
    const params = rt.zeros([1000]);
    const base = { xz: rt.zeros([1, 1, 16]), xdbl: rt.zeros([1, 1, 6]), dtWeight: rt.zeros([8, 2]), params, convState: rt.zeros([1, 8, 3]), ssmState: rt.zeros([1, 8, 2]) };
    expect(() => dtScanStep(rt, { ...base, xdbl: rt.zeros([1, 1, 7]) })).toThrow(/xdbl has shape \[1,1,7\], expected \[batch=1, seqlen=1, R \+ 2N=6\]/);
    expect(() => dtScanStep(rt, { ...base, ssmState: rt.zeros([2, 8, 2]) })).toThrow(/ssmState has shape \[2,8,2\]/);
    expect(() => dtScanStep(rt, { ...base, params: rt.zeros([10]) })).toThrow(/params has 10 f32 elements/);
  });
});
