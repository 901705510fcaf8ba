import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, relError } from '@statespace/core/testing';
import { bcdtNorm, bcdtNormReference } from './bcdt-norm.js';
import { columns, copyColumns } from './columns.js';

const rt = await getTestRuntime();

describe('bcdtNorm', () => {
  for (const [rows, R, N] of [[1, 1, 1], [7, 4, 8], [2 * 13, 48, 16], [5, 3, 131]] as const) {
    for (const kind of ['none', 'unweighted', 'weighted'] as const) {
      it(`${kind}: ${rows} rows, R=${R}, N=${N}`, async () => {
        const W = R + 2 * N;
        const x = randn(rows * W, rows + R + N, 3);
        const weights = { dt: randn(R, 1), B: randn(N, 2), C: randn(N, 3) };
        const xdbl = rt.upload(x, [rows, W]);
        const ts = bcdtNorm(rt, xdbl, {
          rank: R,
          dState: N,
          kind,
          eps: 1e-6,
          weights: kind === 'weighted' ? { dt: rt.upload(weights.dt, [R]), B: rt.upload(weights.B, [N]), C: rt.upload(weights.C, [N]) } : undefined,
        });
        const ref = bcdtNormReference(x, rows, { rank: R, dState: N, kind, eps: 1e-6, weights });
        expect(ts.shape).toEqual([rows, R]);
        expect(relError(await rt.read(ts), ref.ts)).toBeLessThan(1e-6);
        expect(relError(await rt.read(xdbl), ref.xdbl)).toBeLessThan(1e-6);
      });
    }
  }
  it('needs its weights when weighted and the right row width', () => {
    expect(() => bcdtNorm(rt, rt.zeros([3, 10]), { rank: 2, dState: 4, kind: 'weighted' })).toThrow(/needs weights/);
    expect(() => bcdtNorm(rt, rt.zeros([3, 11]), { rank: 2, dState: 4, kind: 'none' })).toThrow(/expected \[\.\.\., R \+ 2N = 10\]/);
  });
});

describe('copyColumns', () => {
  it('copies a column slice into a contiguous tensor and into columns of another', async () => {
    const src = randn(6 * 9, 4);
    const t = rt.upload(src, [2, 3, 9]);
    const got = await rt.read(copyColumns(rt, columns(t, 2, 5)));
    const want = new Float32Array(6 * 5);
    for (let r = 0; r < 6; r++) for (let j = 0; j < 5; j++) want[r * 5 + j] = src[r * 9 + 2 + j];
    expect(relError(got, want)).toBe(0);
    const dst = rt.zeros([2, 3, 7]);
    copyColumns(rt, columns(t, 2, 5), { tensor: dst, start: 1 });
    const d = await rt.read(dst);
    for (let r = 0; r < 6; r++) {
      expect(d[r * 7]).toBe(0);
      for (let j = 0; j < 5; j++) expect(d[r * 7 + 1 + j]).toBe(want[r * 5 + j]);
    }
    expect(() => columns(t, 5, 5)).toThrow(/outside the last dimension/);
  });
});
