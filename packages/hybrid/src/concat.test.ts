import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { describe, expect, it } from 'vitest';
import { concatLastDim, concatLastDimReference } from './concat.js';

const rt = await getTestRuntime();

describe('concatLastDim', () => {
  for (const [R, A, F] of [[1, 1, 1], [7, 13, 5], [37, 64, 64], [3, 1, 257]]) {
    it(`R=${R} A=${A} F=${F}`, async () => {
      const a = randn(R * A, R + A);
      const b = randn(R * F, R + F + 1);
      const y = concatLastDim(rt, rt.upload(a, [1, R, A]), rt.upload(b, [1, R, F]));
      expect(y.shape).toEqual([1, R, A + F]);
      expect(relError(await rt.read(y), concatLastDimReference(a, b, R, A, F))).toBe(0);
    });
  }
  it('rejects mismatched leading dimensions', () => {
    expect(() => concatLastDim(rt, rt.zeros([2, 3, 4]), rt.zeros([2, 4, 4]))).toThrow(/concatLastDim: b has shape \[2,4,4\]/);
  });
});
