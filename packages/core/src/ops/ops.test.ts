import { describe, expect, it } from 'vitest';
import { getTestRuntime, randn, randu, relError, maxAbsError } from '../testing.js';
import { roundTo } from '../dtype.js';
import { matmul, matmulReference } from './matmul.js';
import { gatedRmsNorm, layerNorm, normReference, rmsNorm } from './norm.js';
import { binary, binaryReference, unary, unaryReference, type BinaryOp, type UnaryOp } from './elementwise.js';
import { embedding, embeddingReference } from './embedding.js';
import { softmax, softmaxReference } from './softmax.js';
import { argmax, topK, topKReference } from './top-k.js';
import { glu, gluReference } from './glu.js';
import { addRmsNorm } from './add-rms-norm.js';

const rt = await getTestRuntime();

describe('matmul', () => {
  const cases: [number, number, number][] = [
    [1, 1, 1],
    [1, 37, 19],
    [3, 65, 130],
    [5, 17, 33],
    [70, 129, 47],
    [64, 64, 64],
    [130, 3, 200],
    // K a multiple of 4 and 8: the vec4 gemv (narrow and wide N, M up to 8 and a second pass; M ≤ 2 the eager variant)
    [1, 37, 24],
    [2, 4100, 72],
    [3, 4100, 64],
    [8, 19, 40],
    [11, 13, 16],
  ];
  for (const [M, N, K] of cases) {
    for (const transposeB of [true, false]) {
      it(`f32 M=${M} N=${N} K=${K} ${transposeB ? 'x·Wᵀ' : 'x·W'} with bias, every kernel variant`, async () => {
        const x = randn(M * K, 1 + M);
        const w = randn(N * K, 2 + N);
        const b = randn(N, 3 + K);
        const ref = matmulReference(x, w, M, N, K, b, transposeB);
        for (const variant of [{ simple: true }, { gemv: true }, { gemv: false }]) {
          const y = matmul(rt, rt.upload(x, [M, K]), rt.upload(w, transposeB ? [N, K] : [K, N]), { bias: rt.upload(b, [N]), transposeB, ...variant });
          expect(y.shape).toEqual([M, N]);
          expect(relError(await rt.read(y), ref), JSON.stringify(variant)).toBeLessThan(1e-5);
        }
      });
    }
  }
  for (const dtype of ['f16', 'bf16'] as const) {
    for (const [M, N, K] of [[1, 33, 65], [2, 7, 9], [67, 70, 31], [1, 33, 64], [5, 4097, 16], [9, 6, 40]] as [number, number, number][]) {
      it(`${dtype} weights M=${M} N=${N} K=${K}`, async () => {
        const x = randn(M * K, 4);
        const w = randn(N * K, 5);
        const ref = matmulReference(x, roundTo(w, dtype), M, N, K);
        for (const variant of [{ simple: true }, { gemv: true }, { gemv: false }]) {
          const y = matmul(rt, rt.upload(x, [M, K]), rt.upload(w, [N, K], dtype), variant);
          expect(relError(await rt.read(y), ref), JSON.stringify(variant)).toBeLessThan(1e-5);
        }
      });
    }
  }
  it('forced tiled and gemv paths agree for M=4', async () => {
    const x = rt.upload(randn(4 * 50, 6), [4, 50]);
    const w = rt.upload(randn(33 * 50, 7), [33, 50]);
    const a = await rt.read(matmul(rt, x, w, { gemv: true }));
    const b = await rt.read(matmul(rt, x, w, { gemv: false }));
    expect(relError(a, b)).toBeLessThan(1e-6);
  });
  it('rejects a weight whose K does not match', () => {
    expect(() => matmul(rt, rt.upload(randn(6, 1), [2, 3]), rt.upload(randn(8, 1), [2, 4]))).toThrow(/W has shape \[2,4\], expected \[N, K=3\]/);
  });
});

describe('norms', () => {
  for (const [M, D] of [[1, 1], [3, 64], [5, 257], [2, 1000]] as [number, number][]) {
    it(`rmsNorm M=${M} D=${D}`, async () => {
      const x = randn(M * D, 10 + D);
      const w = randn(D, 11);
      const y = rmsNorm(rt, rt.upload(x, [M, D]), rt.upload(w, [D]), 1e-5);
      expect(relError(await rt.read(y), normReference('rms', x, w, D, 1e-5))).toBeLessThan(1e-5);
    });
    it(`layerNorm M=${M} D=${D}`, async () => {
      const x = randn(M * D, 12 + D, 3);
      const w = randn(D, 13);
      const b = randn(D, 14);
      const y = layerNorm(rt, rt.upload(x, [M, D]), rt.upload(w, [D]), rt.upload(b, [D]), 1e-5);
      const ref = normReference('layer', x, w, D, 1e-5, { b });
      expect(relError(await rt.read(y), ref)).toBeLessThan(1e-5);
    });
  }
  it('rmsNorm with unit offset and f16 weight', async () => {
    const x = randn(3 * 70, 15);
    const w = randn(70, 16, 0.1);
    const y = rmsNorm(rt, rt.upload(x, [3, 70]), rt.upload(w, [70], 'f16'), 1e-6, { unitOffset: true });
    expect(relError(await rt.read(y), normReference('rms', x, roundTo(w, 'f16'), 70, 1e-6, { unitOffset: true }))).toBeLessThan(1e-5);
  });
  for (const [M, D, G] of [[1, 16, 16], [3, 96, 32], [7, 300, 75]] as [number, number, number][]) {
    it(`gatedRmsNorm M=${M} D=${D} G=${G}`, async () => {
      const x = randn(M * D, 17);
      const z = randn(M * D, 18);
      const w = randn(D, 19);
      const y = gatedRmsNorm(rt, rt.upload(x, [M, D]), rt.upload(z, [M, D]), rt.upload(w, [D]), 1e-5, { groupSize: G });
      expect(relError(await rt.read(y), normReference('rms_gated', x, w, D, 1e-5, { z, G }))).toBeLessThan(1e-5);
    });
  }
  it('gatedRmsNorm reads z in place from a wider tensor (zOffset, zStride), around NaN columns', async () => {
    const [M, D, G, off, stride] = [5, 96, 32, 7, 96 + 13];
    const x = randn(M * D, 20);
    const wide = new Float32Array(off + (M - 1) * stride + D + 3).fill(Number.NaN); // every column outside z is NaN
    const z = randn(M * D, 21);
    for (let m = 0; m < M; m++) wide.set(z.subarray(m * D, (m + 1) * D), off + m * stride);
    const w = randn(D, 22);
    const zt = rt.upload(wide, [wide.length]);
    const y = gatedRmsNorm(rt, rt.upload(x, [M, D]), zt, rt.upload(w, [D]), 1e-5, { groupSize: G, zOffset: off, zStride: stride });
    expect(relError(await rt.read(y), normReference('rms_gated', x, w, D, 1e-5, { z, G }))).toBeLessThan(1e-5);
    // A block that runs past the end of z, or a stride narrower than a row, is refused with a code.
    expect(() => gatedRmsNorm(rt, rt.upload(x, [M, D]), zt, rt.upload(w, [D]), 1e-5, { zOffset: off + 4, zStride: stride })).toThrow(expect.objectContaining({ code: 'SHAPE_MISMATCH' }));
    expect(() => gatedRmsNorm(rt, rt.upload(x, [M, D]), zt, rt.upload(w, [D]), 1e-5, { zOffset: 0, zStride: D - 1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('elementwise', () => {
  const unaryOps: UnaryOp[] = ['silu', 'gelu', 'gelu_tanh', 'softplus', 'relu', 'relu2', 'exp', 'neg', 'sigmoid', 'scale'];
  for (const op of unaryOps) {
    it(`${op} on 1, 255 and 70001 elements`, async () => {
      for (const n of [1, 255, 70001]) {
        const x = randn(n, n, 4);
        const y = unary(rt, rt.upload(x, [n]), op, { alpha: 0.37 });
        const ref = Float32Array.from(x, (v) => unaryReference(op, v, 0.37));
        expect(relError(await rt.read(y), ref)).toBeLessThan(1e-5);
      }
    });
  }
  const binaryOps: BinaryOp[] = ['add', 'mul', 'sub', 'silu_mul'];
  for (const op of binaryOps) {
    it(`${op} with full and row-broadcast b`, async () => {
      for (const [n, m] of [[1, 1], [300, 300], [777, 7]]) {
        const a = randn(n, 20);
        const b = randn(m, 21);
        const y = binary(rt, rt.upload(a, [n]), rt.upload(b, [m]), op);
        const ref = Float32Array.from(a, (v, i) => binaryReference(op, v, b[i % m]));
        expect(relError(await rt.read(y), ref)).toBeLessThan(1e-5);
      }
    });
  }
  it('rejects a b that does not broadcast', () => {
    expect(() => binary(rt, rt.upload(randn(10, 1), [10]), rt.upload(randn(3, 1), [3]), 'add')).toThrow(/does not broadcast/);
  });
});

describe('embedding', () => {
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    it(`gathers rows from a ${dtype} table`, async () => {
      const V = 37;
      const D = 19;
      const table = randn(V * D, 22);
      const ids = Int32Array.from({ length: 11 }, (_, i) => (i * 7) % V);
      const y = embedding(rt, rt.upload(ids, [11]), rt.upload(table, [V, D], dtype), { scale: 2 });
      expect(y.shape).toEqual([11, D]);
      expect(relError(await rt.read(y), embeddingReference(ids, roundTo(table, dtype), D, 2))).toBeLessThan(1e-6);
    });
  }
  it('turns an out-of-range id into NaN rows, not another row', async () => {
    const y = embedding(rt, rt.upload(new Int32Array([1, 99]), [2]), rt.upload(randn(8, 1), [4, 2]));
    const out = await rt.read(y);
    expect(Number.isNaN(out[2]) && Number.isNaN(out[3])).toBe(true);
    expect(Number.isFinite(out[0])).toBe(true);
  });
});

describe('softmax, argmax, top-k', () => {
  for (const [M, D] of [[1, 1], [2, 5], [3, 333], [1, 5000]] as [number, number][]) {
    it(`softmax M=${M} D=${D}`, async () => {
      const x = randn(M * D, 30 + D, 5);
      const y = softmax(rt, rt.upload(x, [M, D]), { temperature: 0.7 });
      expect(relError(await rt.read(y), softmaxReference(x, D, 0.7))).toBeLessThan(1e-5);
    });
    it(`argmax and top-k M=${M} D=${D}`, async () => {
      const x = randn(M * D, 40 + D);
      const k = Math.min(D, 7);
      const ref = topKReference(x, D, k);
      const { values, indices } = topK(rt, rt.upload(x, [M, D]), k);
      expect(Array.from(await rt.read(indices))).toEqual(Array.from(ref.indices));
      expect(maxAbsError(await rt.read(values), ref.values)).toBe(0);
      const am = await rt.read(argmax(rt, rt.upload(x, [M, D])));
      expect(Array.from(am)).toEqual(Array.from({ length: M }, (_, r) => ref.indices[r * k]));
    });
  }
  it('breaks ties toward the lower index and skips NaN', async () => {
    const x = new Float32Array([1, 3, NaN, 3, 2, 3]);
    const { indices } = topK(rt, rt.upload(x, [1, 6]), 4);
    expect(Array.from(await rt.read(indices))).toEqual([1, 3, 5, 4]);
  });
  it('argmax over rows longer than one round of loads, into a poisoned output', async () => {
    // rounds of 16 x 256 elements: D below, at and past one and two rounds, a vocabulary-sized row, 3 rows (row offsets not multiples of 4)
    for (const D of [4095, 4096, 4097, 8192, 8193, 50_281]) {
      const M = 3;
      const x = randn(M * D, D);
      x[D - 1] = 9; // row 0: the maximum is the last element
      x[D + 3] = 9; // row 1: a tie between an early element and one in a later round ...
      x[D + 3 + 256 * Math.floor((D - 4) / 256)] = 9; // the same thread, a later slot
      x[2 * D + 5] = Number.NaN; // row 2: NaN is never chosen, +Infinity is
      x[2 * D + D - 2] = Number.POSITIVE_INFINITY;
      const out = rt.upload(new Int32Array(M).fill(-7), [M]);
      argmax(rt, rt.upload(x, [M, D]), { out });
      const ref = topKReference(x, D, 1).indices;
      expect(Array.from(await rt.read(out))).toEqual(Array.from(ref));
      expect(Array.from(ref)).toEqual([D - 1, 3, D - 2]);
    }
  });
  it('argmax of an all-NaN row is -1, and of an all -Infinity row its first index', async () => {
    const x = new Float32Array(2 * 9000).fill(Number.NaN);
    x.fill(Number.NEGATIVE_INFINITY, 9000);
    const out = rt.upload(new Int32Array(2).fill(5), [2]);
    argmax(rt, rt.upload(x, [2, 9000]), { out });
    expect(Array.from(await rt.read(out))).toEqual([-1, 0]);
  });
  it('top-k over a large uniform row', async () => {
    const x = randu(50_000, 9);
    const ref = topKReference(x, 50_000, 40);
    const { indices } = topK(rt, rt.upload(x, [1, 50_000]), 40);
    expect(Array.from(await rt.read(indices))).toEqual(Array.from(ref.indices));
  });
});

describe('glu', () => {
  for (const act of ['silu', 'gelu', 'gelu_tanh'] as const) {
    it(`${act} over fused gate/up, awkward sizes`, async () => {
      for (const [T, I] of [[1, 1], [3, 37], [70, 5]]) {
        const a = randn(T * 2 * I, T + I);
        const y = glu(rt, rt.upload(a, [T, 2 * I]), act);
        expect(y.shape).toEqual([T, I]);
        expect(relError(await rt.read(y), gluReference(a, I, act))).toBeLessThan(1e-5);
      }
    });
  }
});

describe('addRmsNorm', () => {
  for (const [M, D, alpha, unit] of [[1, 1, 1, false], [3, 64, 0.22, false], [5, 257, 1, true], [2, 1000, 2.5, false]] as [number, number, number, boolean][]) {
    it(`M=${M} D=${D} alpha=${alpha}${unit ? ' (1 + w)' : ''} equals add then rmsNorm`, async () => {
      const h = randn(M * D, 50 + D);
      const b = randn(M * D, 51 + D);
      const w = randn(D, 52);
      const { sum, normed } = addRmsNorm(rt, rt.upload(h, [M, D]), rt.upload(b, [M, D]), rt.upload(w, [D]), 1e-5, { alpha, unitOffset: unit });
      const s = Float32Array.from(h, (v, i) => v + alpha * b[i]);
      expect(relError(await rt.read(sum), s)).toBeLessThan(1e-6);
      expect(relError(await rt.read(normed), normReference('rms', s, w, D, 1e-5, { unitOffset: unit }))).toBeLessThan(1e-5);
    });
  }
});
