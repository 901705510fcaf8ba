import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { rmsNormGated, rmsNormGatedReference } from './rms-norm-gated.js';
import { splitProjections, splitProjectionsReference } from './split-projections.js';

const rt = await getTestRuntime();

describe('splitProjections', () => {
  for (const heads of [
    { numKeyHeads: 2, numValueHeads: 6, headKDim: 5, headVDim: 3 },
    { numKeyHeads: 3, numValueHeads: 3, headKDim: 4, headVDim: 7 },
  ]) {
    it(`regroups qkvz/ba and computes the gates (Hk=${heads.numKeyHeads}, Hv=${heads.numValueHeads})`, async () => {
      const { numKeyHeads: Hk, numValueHeads: Hv, headKDim: dk, headVDim: dv } = heads;
      const B = 2;
      const L = 13;
      const N = B * L;
      const P = 2 * Hk * dk + 2 * Hv * dv;
      const qkvz = randn(N * P, 1);
      const ba = randn(N * 2 * Hv, 2, 3);
      const aLog = randn(Hv, 3);
      const dtBias = randn(Hv, 4);
      ba[0] = 30; // beyond softplus' threshold
      const ref = splitProjectionsReference(qkvz, ba, aLog, dtBias, N, heads);
      const out = splitProjections(rt, rt.upload(qkvz, [B, L, P]), rt.upload(ba, [B, L, 2 * Hv]), rt.upload(aLog, [Hv]), rt.upload(dtBias, [Hv]), heads);
      expect(out.qkv.shape).toEqual([B, L, 2 * Hk * dk + Hv * dv]);
      expect(Array.from(await rt.readFloat(out.qkv))).toEqual(Array.from(ref.qkv));
      expect(Array.from(await rt.readFloat(out.z))).toEqual(Array.from(ref.z));
      expect(relError(await rt.readFloat(out.g), ref.g)).toBeLessThan(1e-5);
      expect(relError(await rt.readFloat(out.beta), ref.beta)).toBeLessThan(1e-5);
    });
  }

  it('follows fix_query_key_value_ordering on a hand-made example (Hk=1, Hv=2, dk=1, dv=1)', async () => {
    // one token: group 0 = [q, k, v0, v1, z0, z1]; ba = [b0, b1, a0, a1]
    const heads = { numKeyHeads: 1, numValueHeads: 2, headKDim: 1, headVDim: 1 };
    const out = splitProjections(
      rt,
      rt.upload(new Float32Array([1, 2, 3, 4, 5, 6]), [1, 1, 6]),
      rt.upload(new Float32Array([0, 100, 0, 0]), [1, 1, 4]),
      rt.upload(new Float32Array([0, Math.log(2)]), [2]),
      rt.upload(new Float32Array([0, 0]), [2]),
      heads,
    );
    expect(Array.from(await rt.readFloat(out.qkv))).toEqual([1, 2, 3, 4]);
    expect(Array.from(await rt.readFloat(out.z))).toEqual([5, 6]);
    const beta = await rt.readFloat(out.beta);
    expect(beta[0]).toBeCloseTo(0.5, 6);
    expect(beta[1]).toBeCloseTo(1, 6);
    const g = await rt.readFloat(out.g);
    expect(g[0]).toBeCloseTo(-Math.log(2), 6);
    expect(g[1]).toBeCloseTo(-2 * Math.log(2), 6);
  });
});

describe('rmsNormGated', () => {
  for (const [rows, G, groups] of [
    [1, 16, 1],
    [37, 16, 4],
    [5, 129, 2],
  ]) {
    it(`normalises before the gate: ${rows} rows of ${groups} groups of ${G}`, async () => {
      const n = rows * groups * G;
      const x = randn(n, 10 + G);
      const z = randn(n, 11 + G);
      const w = randn(G, 12 + G);
      const y = rmsNormGated(rt, rt.upload(x, [rows, groups * G]), rt.upload(z, [rows, groups * G]), rt.upload(w, [G]), 1e-6);
      expect(relError(await rt.readFloat(y), rmsNormGatedReference(x, z, w, 1e-6))).toBeLessThan(1e-5);
    });
  }

  it('differs from gating before the norm (the Mamba-2 form)', () => {
    const x = new Float32Array([1, 2, 3, 4]);
    const z = new Float32Array([0, 1, -1, 2]);
    const w = new Float32Array([1, 1, 1, 1]);
    const after = rmsNormGatedReference(x, z, w, 1e-6);
    // hand value: x / rms(x) * silu(z) for element 1
    const rms = Math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-6);
    expect(after[1]).toBeCloseTo((2 / rms) * (1 / (1 + Math.exp(-1))), 6);
    expect(after[0]).toBe(0);
  });
});
