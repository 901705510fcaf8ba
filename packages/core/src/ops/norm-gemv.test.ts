import { describe, expect, it } from 'vitest';
import { roundTo } from '../dtype.js';
import { getTestRuntime, randn, randu, relError, maxAbsError } from '../testing.js';
import { type NormGemvKind, canNormGemv, createNormGemvKernel, eagerNormGemvFits, normGemv, normGemvReference } from './norm-gemv.js';

const rt = await getTestRuntime(); // poisons every new buffer with NaN
rt.fastKernels = true;

describe('norm + gemv fused', () => {
  // Awkward sizes: N not a multiple of the rows per workgroup, wide N (>= 2048: 8 rows of 32 lanes), M up to 8, groups.
  const shapes: { M: number; N: number; K: number; G?: number }[] = [
    { M: 1, N: 37, K: 24 },
    { M: 3, N: 2053, K: 40 },
    { M: 8, N: 13, K: 16 },
    { M: 2, N: 19, K: 48, G: 12 },
  ];
  const kinds: NormGemvKind[] = ['add_rms', 'gated_rms', 'rms_gate', 'gate'];
  for (const kind of kinds) {
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      for (const { M, N, K, G } of shapes) for (const eager of [true, false]) {
        if (kind === 'add_rms' && G) continue;
        // the general kernel (every shape the eager one does not take) rides with f32, and with the two
        // prologues whose code it does not share with the others (rms_gate and gate differ from gated_rms in one line)
        if (!eager && (dtype !== 'f32' || kind === 'rms_gate' || kind === 'gate')) continue;
        if (dtype !== 'f32' && K % 8) continue;
        // f16 and bf16 differ only in the unpack: f16 rides with add_rms, bf16 with every prologue
        if (dtype === 'f16' && kind !== 'add_rms') continue;
        it(`${eager ? 'eager' : 'general'} ${kind} ${dtype} M=${M} N=${N} K=${K}${G ? ` groups of ${G}` : ''}`, async () => {
          const seed = M * 1000 + N + K;
          const x = randn(M * K, seed);
          const branch = randn(M * K, seed + 1);
          const zStride = K + 9;
          const z = randn(M * zStride, seed + 2, 2);
          const normWeight = randn(K, seed + 3);
          const weight = roundTo(randn(N * K, seed + 4), dtype);
          const bias = randn(N, seed + 5);
          const unitOffset = kind === 'add_rms' && M === 3;
          const args = { kind, M, K, N, x, branch: kind === 'add_rms' ? branch : undefined, alpha: 0.7, z, zOffset: 5, zStride, normWeight, eps: 1e-5, unitOffset, groupSize: G, weight, bias };
          const ref = normGemvReference(args);
          const wt = rt.upload(weight, [N, K], dtype);
          expect(canNormGemv(rt, M, K, wt, G ? K / G : 1)).toBe(M <= 2);
          const sum = rt.empty([M, K]);
          const y = normGemv(rt, {
            kind,
            x: rt.upload(x, [M, K]),
            branch: kind === 'add_rms' ? rt.upload(branch, [M, K]) : undefined,
            alpha: 0.7,
            sum: kind === 'add_rms' ? sum : undefined,
            z: rt.upload(z, [M, zStride]),
            zOffset: 5,
            normWeight: kind === 'gate' ? undefined : rt.upload(normWeight, [K]),
            eps: 1e-5,
            unitOffset,
            groupSize: G,
            weight: wt,
            bias: rt.upload(bias, [N]),
            eager,
          });
          expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
          if (kind === 'add_rms') expect(maxAbsError(await rt.read(sum), ref.sum)).toBeLessThan(1e-6);
        });
      }
    }
  }
  const gelu = (v: number) => {
    // erf by Abramowitz & Stegun 7.1.26, as the kernel
    const x = v * Math.SQRT1_2;
    const t = 1 / (1 + 0.3275911 * Math.abs(x));
    const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
    return 0.5 * v * (1 + (x >= 0 ? y : -y));
  };
  const acts = { silu: (v: number) => v / (1 + Math.exp(-v)), gelu };
  for (const act of ['silu', 'gelu'] as const) {
    for (const dtype of ['f32', 'bf16'] as const) {
      for (const { M, N, K } of [{ M: 1, N: 37, K: 24 }, { M: 3, N: 2053, K: 40 }, { M: 4, N: 9, K: 64 }]) for (const eager of [true, false]) {
        if (dtype !== 'f32' && K % 8) continue;
        if (!eager && (dtype !== 'f32' || act !== 'silu' || M !== 3)) continue;
        it(`glu ${eager ? 'eager' : 'general'} ${act} ${dtype} M=${M} N=${N} K=${K}: act(x̂·Wgᵀ)·(x̂·Wuᵀ) in one pass`, async () => {
          const seed = 7 * M + N + K;
          const x = randn(M * K, seed);
          const branch = randn(M * K, seed + 1);
          const normWeight = randn(K, seed + 3);
          const gate = roundTo(randn(N * K, seed + 4), dtype);
          const up = roundTo(randn(N * K, seed + 5), dtype);
          const common = { kind: 'add_rms' as const, M, K, N, x, branch, alpha: 1, normWeight, eps: 1e-6 };
          const g = normGemvReference({ ...common, weight: gate }).y;
          const u = normGemvReference({ ...common, weight: up }).y;
          const want = g.map((v, i) => acts[act](v) * u[i]);
          const sum = rt.empty([M, K]);
          const y = normGemv(rt, {
            kind: 'add_rms', x: rt.upload(x, [M, K]), branch: rt.upload(branch, [M, K]), sum, normWeight: rt.upload(normWeight, [K]), eps: 1e-6,
            weight: rt.upload(gate, [N, K], dtype), glu: { up: rt.upload(up, [N, K], dtype), act }, eager,
          });
          expect(relError(await rt.read(y), want)).toBeLessThan(1e-5);
        });
      }
    }
  }
  // The conv epilogue (Mamba-2 decode): conv rows in the middle of N, awkward channel counts, k 2..4,
  // bias on and off, silu and none, and two tokens in a row so the rolled state is checked too.
  for (const { M, N, K, start, C, taps, bias, act, dtype, eager } of [
    { M: 1, N: 45, K: 24, start: 7, C: 29, taps: 4, bias: true, act: 'silu', dtype: 'f32', eager: true },
    { M: 1, N: 45, K: 24, start: 7, C: 29, taps: 4, bias: true, act: 'silu', dtype: 'f32', eager: false },
    { M: 2, N: 2055, K: 40, start: 1000, C: 1001, taps: 2, bias: false, act: 'none', dtype: 'f32', eager: true },
    { M: 1, N: 37, K: 32, start: 0, C: 37, taps: 3, bias: true, act: 'silu', dtype: 'bf16', eager: true },
  ] as const) {
    it(`conv epilogue ${eager ? 'eager' : 'general'} ${dtype} M=${M} N=${N} K=${K} rows ${start}..${start + C} k=${taps} ${bias ? 'bias ' : ''}${act}: conv and rolled state equal the reference over two tokens`, async () => {
      const seed = 31 * N + C + taps;
      const normWeight = randn(K, seed);
      const weight = roundTo(randn(N * K, seed + 1), dtype);
      const inBias = randn(N, seed + 2);
      const convW = randn(C * taps, seed + 3);
      const convB = bias ? randn(C, seed + 4) : undefined;
      const state = randn(M * C * (taps - 1), seed + 5);
      const gpuState = rt.upload(state, [M, C, taps - 1]);
      const conv = { weight: rt.upload(convW, [C, 1, taps]), bias: convB ? rt.upload(convB, [C]) : undefined, state: gpuState, start, activation: act };
      for (let token = 0; token < 2; token++) {
        const x = randn(M * K, seed + 10 + token);
        const want = normGemvReference({ kind: 'add_rms', M, K, N, x, normWeight, eps: 1e-5, weight, bias: inBias, conv: { weight: convW, bias: convB, state, taps, start, activation: act } });
        const y = normGemv(rt, { kind: 'add_rms', x: rt.upload(x, [M, K]), normWeight: rt.upload(normWeight, [K]), eps: 1e-5, weight: rt.upload(weight, [N, K], dtype), bias: rt.upload(inBias, [N]), conv, eager });
        const got = await rt.read(y);
        expect(relError(got, want.y)).toBeLessThan(1e-5);
        // rows outside the conv are the plain product: a conv applied to them would move them far
        expect(Math.abs(got[start + C - 1] - want.y[start + C - 1])).toBeLessThan(1e-4 * Math.max(1, Math.abs(want.y[start + C - 1])));
        expect(maxAbsError(await rt.read(gpuState), state)).toBeLessThan(1e-5);
      }
    });
  }
  // Stacked weights (q, k, v of one input): row counts that are multiples of the rows per workgroup
  // (4 below N = 2048, 8 above), the last weight ragged, two and three weights, f32 and packed.
  for (const { M, rows, K, dtype, eager } of [
    { M: 1, rows: [24, 8, 8], K: 32, dtype: 'f32', eager: true },
    { M: 1, rows: [24, 8, 8], K: 32, dtype: 'f32', eager: false },
    { M: 2, rows: [1536, 512, 509], K: 40, dtype: 'f32', eager: true },
    { M: 1, rows: [12, 7], K: 48, dtype: 'bf16', eager: true },
  ] as const) {
    it(`stack (${eager ? 'eager' : 'general'}) of ${rows.length} ${dtype} weights (${rows.join(' + ')}) x K=${K}, M=${M}: one dispatch, the outputs side by side`, async () => {
      const seed = rows.reduce((a, b) => a + b, 0) + K;
      const x = randn(M * K, seed);
      const branch = randn(M * K, seed + 1);
      const normWeight = randn(K, seed + 2);
      const ws = rows.map((n, i) => roundTo(randn(n * K, seed + 3 + i), dtype));
      const N = rows.reduce((a, b) => a + b, 0);
      const all = new Float32Array(N * K);
      let at = 0;
      for (const w of ws) { all.set(w, at); at += w.length; }
      const ref = normGemvReference({ kind: 'add_rms', M, K, N, x, branch, normWeight, eps: 1e-5, weight: all });
      const sum = rt.empty([M, K]);
      const [first, ...rest] = ws.map((w, i) => rt.upload(w, [rows[i], K], dtype));
      const d0 = rt.dispatchCount;
      const y = normGemv(rt, { kind: 'add_rms', x: rt.upload(x, [M, K]), branch: rt.upload(branch, [M, K]), sum, normWeight: rt.upload(normWeight, [K]), eps: 1e-5, weight: first, stack: rest, eager });
      expect(rt.dispatchCount - d0).toBe(1);
      expect(y.shape).toEqual([M, N]);
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
      expect(maxAbsError(await rt.read(sum), ref.sum)).toBeLessThan(1e-6);
    });
  }
  // combine: flash decoding's pass 2 in o_proj's prologue. Awkward heads and head dims, one to eight
  // chunks, a chunk that saw no key (m = -3e38, l = 0, O = 0, as pass 1 writes it), bias on and off.
  for (const { M, H, D, C, N, bias } of [
    { M: 1, H: 3, D: 20, C: 1, N: 37, bias: true },
    { M: 2, H: 5, D: 28, C: 3, N: 2053, bias: false },
    { M: 1, H: 4, D: 16, C: 8, N: 13, bias: true },
  ]) for (const eager of C === 3 ? [true, false] : [true]) {
    it(`combine (${eager ? 'eager' : 'general'}) M=${M} heads ${H} x ${D}, ${C} chunks, N=${N}${bias ? ' +b' : ''}: o_proj of the combined partials`, async () => {
      const seed = 17 * N + C + H;
      const po = randn(M * H * C * D, seed);
      const pml = new Float32Array(M * H * C * 2);
      const ms = randn(M * H * C, seed + 1, 3);
      const ls = randu(M * H * C, seed + 2, 0.5, 40);
      for (let i = 0; i < M * H * C; i++) [pml[2 * i], pml[2 * i + 1]] = [ms[i], ls[i]];
      if (C > 1) {
        // the last chunk of row 0, head 0 saw no key
        pml[2 * (C - 1)] = -3e38;
        pml[2 * (C - 1) + 1] = 0;
        po.fill(0, (C - 1) * D, C * D);
      }
      const K = H * D;
      const weight = randn(N * K, seed + 3);
      const b = randn(N, seed + 4);
      const ref = normGemvReference({ kind: 'combine', M, K, N, x: po, z: pml, weight, bias: bias ? b : undefined, combine: { heads: H, headDim: D, chunks: C } });
      const y = normGemv(rt, {
        kind: 'combine', x: rt.upload(po, [M, H, C, D]), z: rt.upload(pml, [M, H, C, 2]), combine: { heads: H, headDim: D, chunks: C },
        weight: rt.upload(weight, [N, K]), bias: bias ? rt.upload(b, [N]) : undefined, eager,
      });
      expect(y.shape).toEqual([M, 1, N]);
      expect(relError(await rt.read(y), ref.y)).toBeLessThan(1e-5);
    });
  }
  it('refuses stacked weights that would straddle a workgroup, or of another K or dtype', () => {
    const x = rt.upload(randn(16, 2), [1, 16]);
    const nw = rt.upload(randn(16, 3), [16]);
    const w = (n: number, k = 16, dtype: 'f32' | 'bf16' = 'f32') => rt.upload(randn(n * k, n), [n, k], dtype);
    expect(() => normGemv(rt, { kind: 'add_rms', x, normWeight: nw, weight: w(6), stack: [w(4)] })).toThrow(/not a multiple/);
    expect(() => normGemv(rt, { kind: 'add_rms', x, normWeight: nw, weight: w(8), stack: [w(4, 24)] })).toThrow(/must be \(rows, K=16\)/);
    expect(() => normGemv(rt, { kind: 'add_rms', x, normWeight: nw, weight: w(8), stack: [w(4, 16, 'bf16')] })).toThrow(/like W/);
  });
  it('the conv epilogue refuses a state of the wrong shape and rows past N', () => {
    const w = rt.upload(randn(6 * 16, 1), [6, 16]);
    const x = rt.upload(randn(16, 2), [1, 16]);
    const nw = rt.upload(randn(16, 3), [16]);
    const cw = rt.upload(randn(4 * 4, 4), [4, 4]);
    expect(() => normGemv(rt, { kind: 'add_rms', x, normWeight: nw, weight: w, conv: { weight: cw, state: rt.zeros([2, 4, 3]), start: 0, activation: 'silu' } })).toThrow(/conv state/);
    expect(() => normGemv(rt, { kind: 'add_rms', x, normWeight: nw, weight: w, conv: { weight: cw, state: rt.zeros([1, 4, 3]), start: 3, activation: 'silu' } })).toThrow(/exceed N=6/);
  });
  it('is off on software adapters unless asked for', () => {
    const w = rt.upload(randn(6 * 16, 1), [6, 16]);
    rt.fastKernels = false;
    expect(canNormGemv(rt, 1, 16, w)).toBe(false);
    rt.fastKernels = true;
    expect(canNormGemv(rt, 1, 16, w)).toBe(true);
  });
  it('refuses what does not fit: K not a multiple of the word, M over 8, too many groups', () => {
    const w = rt.upload(randn(6 * 10, 1), [6, 10]);
    expect(canNormGemv(rt, 1, 10, w)).toBe(false);
    const w2 = rt.upload(randn(6 * 16, 1), [6, 16]);
    expect(canNormGemv(rt, 9, 16, w2)).toBe(false);
    expect(canNormGemv(rt, 2, 16, w2, 8)).toBe(false);
    expect(canNormGemv(rt, 2, 16, w2, 4)).toBe(true);
    expect(canNormGemv(rt, 3, 16, w2)).toBe(false); // batch 3+ takes the unfused kernels
  });
  it('keeps runtime sizes out of the general kernel\'s cache key; the eager one compiles M, K and G in', () => {
    const attrs = { kind: 'gated_rms', weightDtype: 'f32', normDtype: 'f32', capacity: 1024 } as const;
    const a = createNormGemvKernel({ M: 1, N: 100, K: 64, G: 64 }, { ...attrs, eager: false });
    const b = createNormGemvKernel({ M: 2, N: 200, K: 128, G: 32 }, { ...attrs, eager: false });
    expect(a.cacheKey).toBe(b.cacheKey);
    expect(b.uniforms.NG).toBe(4);
    const c = createNormGemvKernel({ M: 1, N: 100, K: 64, G: 64 }, attrs);
    const d = createNormGemvKernel({ M: 1, N: 300, K: 64, G: 64 }, attrs);
    expect(c.cacheKey).toBe(d.cacheKey); // N stays a uniform
    expect(c.cacheKey).not.toBe(createNormGemvKernel({ M: 1, N: 100, K: 64, G: 32 }, attrs).cacheKey);
    expect(eagerNormGemvFits({ M: 1, N: 3352, K: 768, G: 768 }, attrs)).toBe(true);
    expect(eagerNormGemvFits({ M: 2, N: 3352, K: 4096, G: 4096 }, attrs)).toBe(false); // 8 input words per thread
    expect(eagerNormGemvFits({ M: 1, N: 3352, K: 768, G: 6 }, attrs)).toBe(false); // groups not of whole vec4s
    expect(() => createNormGemvKernel({ M: 2, N: 100, K: 4096, G: 4096 }, { ...attrs, capacity: 8192, eager: true })).toThrow(/eager variant does not take/);
  });
});
