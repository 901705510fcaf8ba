import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { StatespaceError } from '@statespace/core';
import { moeAccumulate, moeGroupedRouting, moeGroupedRoutingReference, moeRouting, moeRoutingReference } from './moe.js';

const rt = await getTestRuntime();

describe('moe routing', () => {
  for (const [T, E, k] of [[1, 2, 1], [7, 4, 2], [65, 16, 3], [3, 5, 5]]) {
    for (const renorm of [false, true]) {
      it(`T=${T} E=${E} k=${k} renormalize=${renorm}`, async () => {
        const logits = randn(T * E, T * E + k);
        const w = moeRouting(rt, rt.upload(logits, [T, E]), k, { renormalize: renorm });
        expect(relError(await rt.read(w), moeRoutingReference(logits, E, k, renorm))).toBeLessThan(1e-5);
      });
    }
  }
  it('accumulates weighted expert outputs', async () => {
    const T = 9;
    const E = 3;
    const D = 70;
    const w = randn(T * E, 1);
    const h = randn(T * D, 2);
    const y0 = randn(T * D, 3);
    const y = rt.upload(y0, [T, D]);
    moeAccumulate(rt, rt.upload(w, [T, E]), 2, rt.upload(h, [T, D]), y);
    const ref = Float32Array.from(y0, (v, i) => v + w[Math.floor(i / D) * E + 2] * h[i]);
    expect(relError(await rt.read(y), ref)).toBeLessThan(1e-6);
  });
});

describe('grouped sigmoid routing (Nemotron-H, DeepSeek-V3)', () => {
  // [T, E, G, topkGroup, k]: awkward token counts, groups of 2..8 experts, k reaching every kept expert
  const cases = [[1, 2, 1, 1, 1], [7, 16, 4, 2, 3], [65, 12, 3, 1, 4], [33, 64, 8, 4, 6], [130, 10, 5, 5, 10]] as const;
  for (const [T, E, G, topkGroup, k] of cases) {
    for (const renormalize of [false, true]) {
      it(`T=${T} E=${E} G=${G} topkGroup=${topkGroup} k=${k} renormalize=${renormalize}`, async () => {
        const logits = randn(T * E, T + E + k).map((v) => 2 * v);
        const bias = randn(E, G + 7).map((v) => 0.1 * v);
        const options = { k, nGroup: G, topkGroup, renormalize, scale: 2.5 };
        const w = moeGroupedRouting(rt, rt.upload(logits, [T, E]), rt.upload(bias, [E]), options); // poisoned output buffer
        const ref = moeGroupedRoutingReference(logits, bias, E, options);
        const got = (await rt.read(w)) as Float32Array;
        expect(relError(got, ref)).toBeLessThan(1e-5);
        // exactly k experts per token, all inside topkGroup groups
        for (let t = 0; t < T; t++) {
          const chosen = [...got.subarray(t * E, (t + 1) * E)].flatMap((v, e) => (v !== 0 ? [e] : []));
          expect(chosen).toHaveLength(k);
          expect(new Set(chosen.map((e) => Math.floor(e / (E / G)))).size).toBeLessThanOrEqual(topkGroup);
        }
        if (renormalize) expect(got.subarray(0, E).reduce((a, v) => a + v, 0)).toBeCloseTo(2.5, 5);
      });
    }
  }
  it('the correction bias changes the choice, not the weights', () => {
    // scores 0.5 everywhere but expert 3 slightly above: a bias of +1 on expert 0 wins the single slot, weighted by its plain score
    const logits = new Float32Array([0, 0, 0, 0.1]);
    const w = moeGroupedRoutingReference(logits, new Float32Array([1, 0, 0, 0]), 4, { k: 1, nGroup: 1, topkGroup: 1, renormalize: false, scale: 1 });
    expect(Array.from(w)).toEqual([0.5, 0, 0, 0]);
  });
  it('refuses groups that do not divide the experts and k beyond the kept groups', () => {
    const logits = rt.upload(new Float32Array(12), [1, 12]);
    const bias = rt.upload(new Float32Array(12), [12]);
    const codes = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return StatespaceError.is(e) ? e.code : 'other';
      }
      return 'none';
    };
    expect(codes(() => moeGroupedRouting(rt, logits, bias, { k: 2, nGroup: 5, topkGroup: 1, renormalize: true, scale: 1 }))).toBe('INVALID_ARGUMENT');
    expect(codes(() => moeGroupedRouting(rt, logits, bias, { k: 5, nGroup: 3, topkGroup: 1, renormalize: true, scale: 1 }))).toBe('INVALID_ARGUMENT');
    expect(codes(() => moeGroupedRouting(rt, logits, rt.upload(new Float32Array(11), [11]), { k: 1, nGroup: 1, topkGroup: 1, renormalize: true, scale: 1 }))).toBe('INVALID_ARGUMENT');
  });
});
