import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { moeAccumulate, moeRouting, moeRoutingReference } from './moe.js';

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
