import { describe, expect, it } from 'vitest';
import { type DType, roundTo } from '../dtype.js';
import { getTestRuntime, randn, worstRowError } from '../testing.js';
import { matmulReference, usesTiledMatmul } from './matmul.js';
import { chooseStackedMatmul, stackedMatmul } from './matmul-stacked.js';
import { TILED_MATMUL_CONFIGS, TILED_MATMUL_UNROLLED, chooseTiledMatmul, type TiledMatmulConfig, createSplitKReduceKernel, createTiledMatmulKernel, splitKSlice, stackedMatmulUniforms } from './matmul-tiled.js';

const rt = await getTestRuntime(); // poisons every new buffer with NaN
rt.fastKernels = true;

/** Worst row error of each output of a stacked product (kernel + optional stacked reduce) against matmulReference per weight. */
async function checkStack(config: TiledMatmulConfig, M: number, Ns: number[], K: number, dtype: DType, splitK = 1): Promise<number[]> {
  const seed = M * 7919 + Ns[0] * 31 + K;
  const x = randn(M * K, seed);
  const ws = Ns.map((n, i) => roundTo(randn(n * K, seed + 1 + i, 0.3), dtype));
  const N = Ns.reduce((a, b) => a + b, 0);
  const xT = rt.upload(x, [M, K]);
  const wT = ws.map((w, i) => rt.upload(w, [Ns[i], K], dtype));
  const ys = Ns.map((n) => rt.empty([M, n])); // NaN until written
  const kernel = createTiledMatmulKernel({ M, N, K }, config, { weightDtype: dtype, stack: Ns, splitK });
  if (splitK > 1) {
    const part = rt.empty([splitK, M, N]); // NaN until written: a slice that skips its outputs shows
    rt.run(kernel, [xT, ...wT, part]);
    rt.run(createSplitKReduceKernel({ M, N, S: splitK }, { stack: Ns }), [part, ...ys]);
    part.dispose();
  } else {
    rt.run(kernel, [xT, ...wT, ...ys]);
  }
  const errs: number[] = [];
  for (let i = 0; i < Ns.length; i++) {
    const out = (await rt.read(ys[i])) as Float32Array;
    errs.push(worstRowError(out, matmulReference(x, ws[i], M, Ns[i], K), M, Ns[i]));
  }
  for (const t of [xT, ...wT, ...ys]) t.dispose();
  return errs;
}

describe('createTiledMatmulKernel stack: 2 or 3 weights of one x in one dispatch', () => {
  const cheap = TILED_MATMUL_CONFIGS['32x64'];
  // Every load and store path on the cheapest tile (SwiftShader compiles each variant in about a second):
  // Ni not multiples of the tile or of 4 (scalar y) and a weight narrower than a tile (5), whole tiles (64);
  // K % 4 != 0 (scalar x and W), K % 8 == 0 (16-byte packed W), K % 16 == 0 (q8 words); M = 1, partial M tiles.
  const cases = [
    { M: 7, Ns: [37, 5, 64], K: 40, dtype: 'f32', S: 1 },
    { M: 130, Ns: [64, 36], K: 67, dtype: 'f16', S: 1 },
    { M: 1, Ns: [5, 37, 64], K: 5, dtype: 'bf16', S: 1 },
    { M: 33, Ns: [64, 36, 48], K: 48, dtype: 'q8', S: 1 },
    { M: 130, Ns: [64, 36, 40], K: 132, dtype: 'f32', S: 4 }, // slices of 48: 48, 48, 36 and an empty fourth
    { M: 7, Ns: [37, 5, 64], K: 5, dtype: 'bf16', S: 2 }, // scalar partials; K = 5 in slices of 16: the second is empty
    { M: 20, Ns: [37, 64], K: 32, dtype: 'q8', S: 2 }, // q8 words, 2 weights, slices of 16
  ] as const;
  it(`32x64: ${cases.map((c) => `${c.M}x[${c.Ns.join(',')}]x${c.K} ${c.dtype}${c.S > 1 ? ` in ${c.S}` : ''}`).join(', ')}`, async () => {
    expect(splitKSlice(132, 4, 16)).toBe(48);
    expect(splitKSlice(5, 2, 16)).toBe(16);
    for (const c of cases) {
      const errs = await checkStack(cheap, c.M, [...c.Ns], c.K, c.dtype, c.S);
      errs.forEach((e, i) => expect(e, `${JSON.stringify(c)}: y${i}`).toBeLessThan(1e-5));
    }
  });

  it('a larger tile (64x64): 3 weights, a ragged last tile of each', async () => {
    const errs = await checkStack(TILED_MATMUL_CONFIGS['64x64'], 130, [130, 64, 70], 40, 'f32');
    errs.forEach((e, i) => expect(e, `y${i}`).toBeLessThan(1e-5));
  });

  it('dispatch: the weights\' N-tiles one after another; sizes are uniforms; bindings within 8 per stage', () => {
    const c = TILED_MATMUL_CONFIGS['128x128'];
    const k = createTiledMatmulKernel({ M: 512, N: 1536, K: 1024 }, c, { stack: [1024, 256, 256], weightDtype: 'bf16' });
    expect(k.name).toBe('matmul_tiled_stack');
    expect(k.dispatch).toEqual([4, 12, 1]);
    expect(k.uniforms).toEqual({ M: 512, N: 1536, K: 1024, KS: 0, N0: 1024, N1: 256, N2: 256, T1: 8, T2: 10 });
    expect(k.bindings.map((b) => b.name)).toEqual(['x', 'w', 'w1', 'w2', 'y0', 'y1', 'y2']);
    const b = createTiledMatmulKernel({ M: 300, N: 2000, K: 2048 }, c, { stack: [1000, 600, 400], weightDtype: 'bf16' });
    expect(b.cacheKey).toBe(k.cacheKey);
    expect(b.dispatch).toEqual([3, 8 + 5 + 4, 1]);
    const s = createTiledMatmulKernel({ M: 512, N: 1536, K: 1024 }, c, { stack: [1024, 512], splitK: 4 });
    expect(s.dispatch).toEqual([4, 12, 4]);
    expect(s.uniforms).toMatchObject({ KS: 256, N0: 1024, N1: 512, N2: 0, T1: 8, T2: 12 });
    expect(s.bindings.map((b) => b.name)).toEqual(['x', 'w', 'w1', 'y']);
    expect(stackedMatmulUniforms(7, 40, [37, 5, 64], 64)).toEqual({ M: 7, N: 106, K: 40, KS: 0, N0: 37, N1: 5, N2: 64, T1: 1, T2: 2 });
    const r = createSplitKReduceKernel({ M: 512, N: 1536, S: 4 }, { stack: [1024, 256, 256] });
    expect(r.bindings.map((b) => b.name)).toEqual(['part', 'y0', 'y1', 'y2']);
    expect(r.uniforms).toEqual({ MN: (512 * 1536) / 4, N: 1536, S: 4, N0: 1024, N1: 256, N2: 256 });
    expect(r.cacheKey).not.toBe(createSplitKReduceKernel({ M: 512, N: 1536, S: 4 }).cacheKey);
  });

  it('rejects what it cannot stack: a bias, glu, W (K, N), widths that do not sum to N, one or four weights', () => {
    const c = TILED_MATMUL_CONFIGS['32x64'];
    const shape = { M: 8, N: 16, K: 8 };
    expect(() => createTiledMatmulKernel(shape, c, { stack: [8, 8], bias: true })).toThrow(/stack needs/);
    expect(() => createTiledMatmulKernel(shape, { ...c, threadN: 8 }, { stack: [8, 8], glu: 'silu' })).toThrow(/stack needs/);
    expect(() => createTiledMatmulKernel(shape, c, { stack: [8, 8], transposeB: false })).toThrow(/stack needs/);
    expect(() => createTiledMatmulKernel(shape, c, { stack: [8, 7] })).toThrow(/does not sum/);
    expect(() => createTiledMatmulKernel(shape, c, { stack: [16] })).toThrow(/2 to 3/);
    expect(() => createTiledMatmulKernel(shape, c, { stack: [4, 4, 4, 4] })).toThrow(/2 to 3/);
    expect(() => createSplitKReduceKernel({ M: 8, N: 16, S: 2 }, { stack: [8, 8], bias: true })).toThrow(/no bias/);
    expect(() => createSplitKReduceKernel({ M: 8, N: 16, S: 2 }, { stack: [8, 9] })).toThrow(/does not sum/);
  });
});

describe('stackedMatmul', () => {
  it('one dispatch (two with split-K) with a forced tile into (..., Ni) outputs; null where the tiled product would not run', async () => {
    const [M, K] = [7, 40];
    const Ns = [37, 5, 64];
    const x = randn(M * K, 11);
    const ws = Ns.map((n, i) => randn(n * K, 12 + i, 0.3));
    const xT = rt.upload(x, [1, M, K]);
    const wT = ws.map((w, i) => rt.upload(w, [Ns[i], K]));
    const config = TILED_MATMUL_CONFIGS['32x64']; // the kernel of the first case above (compiled already)
    for (const [splitK, dispatches] of [[undefined, 1], [4, 2]] as const) {
      const d0 = rt.dispatchCount;
      const ys = stackedMatmul(rt, xT, wT, { config, splitK })!;
      expect(rt.dispatchCount - d0).toBe(dispatches);
      expect(ys.map((y) => y.shape)).toEqual(Ns.map((n) => [1, M, n]));
      for (let i = 0; i < Ns.length; i++) {
        expect(worstRowError((await rt.read(ys[i])) as Float32Array, matmulReference(x, ws[i], M, Ns[i], K), M, Ns[i]), `y${i} split ${splitK}`).toBeLessThan(1e-5);
        ys[i].dispose();
      }
    }
    // decode rows, a software adapter without a forced tile, unlike dtypes or K, a 1-D weight
    expect(stackedMatmul(rt, rt.upload(randn(K, 4), [1, 1, K]), wT)).toBeNull();
    const auto = stackedMatmul(rt, xT, wT);
    expect(auto === null).toBe(!usesTiledMatmul(rt, M));
    auto?.forEach((y) => y.dispose());
    const bf = rt.upload(ws[1], [Ns[1], K], 'bf16');
    const shortK = rt.upload(ws[1].subarray(0, Ns[1] * (K - 1)), [Ns[1], K - 1]);
    const flat = rt.upload(ws[1], [Ns[1] * K]);
    for (const odd of [bf, shortK, flat]) expect(stackedMatmul(rt, xT, [wT[0], odd], { config })).toBeNull();
    expect(() => stackedMatmul(rt, xT, [wT[0]], { config })).toThrow(/2 to 3 weights/);
    expect(() => stackedMatmul(rt, xT, wT, { config, splitK: 0 })).toThrow(/positive integer/);
    for (const t of [xT, ...wT, bf, shortK, flat]) t.dispose();
  });
});

describe('chooseStackedMatmul', () => {
  const nvidia = { info: { adapterInfo: { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200' }, isSoftware: false }, limits: { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 } };
  const other = { ...nvidia, info: { ...nvidia.info, adapterInfo: { vendor: 'amd', architecture: 'rdna-3', device: '', description: 'Radeon' } } };
  it('short prompts on NVIDIA: 64x64, in 2 K-slices while there are fewer than 256 tiles; else the plain rule', () => {
    const U = TILED_MATMUL_UNROLLED;
    expect(chooseStackedMatmul({ M: 512, N: 1536, K: 1024 }, nvidia)).toEqual({ config: U['64x64'], splitK: 2 }); // llama-350m q/k/v: 192 tiles
    expect(chooseStackedMatmul({ M: 512, N: 1280, K: 768 }, nvidia)).toEqual({ config: U['64x64'], splitK: 2 }); // granite-hybrid-350m: 160
    expect(chooseStackedMatmul({ M: 1024, N: 1536, K: 1024 }, nvidia)).toEqual({ config: U['64x64'], splitK: 1 }); // 384 tiles
    expect(chooseStackedMatmul({ M: 512, N: 1536, K: 128 }, nvidia)).toEqual({ config: U['64x64'], splitK: 1 }); // K too short to split
    for (const shape of [{ M: 4096, N: 1536, K: 1024 }, { M: 2048, N: 1536, K: 1024 }]) expect(chooseStackedMatmul(shape, nvidia)).toEqual(chooseTiledMatmul(shape, nvidia));
    const shape = { M: 512, N: 1536, K: 1024 };
    expect(chooseStackedMatmul(shape, other)).toEqual(chooseTiledMatmul(shape, other));
    const small = { ...nvidia, limits: { maxComputeWorkgroupStorageSize: 8192, maxComputeInvocationsPerWorkgroup: 256 } };
    expect(chooseStackedMatmul(shape, small)).toEqual(chooseTiledMatmul(shape, small)); // 64x64 does not fit
  });
});
