import { describe, expect, it } from 'vitest';
import { type DType, roundTo } from '../dtype.js';
import { getTestRuntime, randn, worstRowError } from '../testing.js';
import { type GluActivation, gluMatmul, gluReference } from './glu.js';
import { createMatmulKernel, matmul, matmulReference, usesTiledMatmul } from './matmul.js';
import {
  TILED_MATMUL_CONFIGS,
  TILED_MATMUL_UNROLLED,
  type TiledMatmulConfig,
  type TiledMatmulTile,
  chooseTiledMatmul,
  chooseTiledMatmulConfig,
  createSplitKReduceKernel,
  createTiledMatmulKernel,
  splitKSlice,
  tiledMatmulConfigName,
  tiledMatmulProfile,
  tiledMatmulStorageBytes,
  tiledMatmulThreads,
} from './matmul-tiled.js';

const rt = await getTestRuntime(); // poisons every new buffer with NaN
rt.fastKernels = true;


async function check(config: TiledMatmulConfig | 'basic', M: number, N: number, K: number, transposeB: boolean, dtype: DType, bias: boolean, splitK = 1): Promise<number> {
  const seed = M * 7919 + N * 31 + K;
  const x = randn(M * K, seed);
  const w = roundTo(randn(N * K, seed + 1), dtype);
  const b = randn(N, seed + 2);
  const ref = matmulReference(x, w, M, N, K, bias ? b : undefined, transposeB);
  const attrs = { transposeB, weightDtype: dtype, bias };
  const kernel = config === 'basic' ? createMatmulKernel({ M, N, K }, { ...attrs, gemv: false, tile: 'basic' }) : createTiledMatmulKernel({ M, N, K }, config, attrs);
  const y = rt.empty([M, N]); // NaN until written
  const inputs = [rt.upload(x, [M, K]), rt.upload(w, transposeB ? [N, K] : [K, N], dtype), ...(bias ? [rt.upload(b, [N])] : [])];
  if (splitK > 1 && config !== 'basic') {
    // the partials (NaN until written: a slice that skips its outputs shows) and the reduce that sums them + bias
    const part = rt.empty([splitK, M, N]);
    rt.run(createTiledMatmulKernel({ M, N, K }, config, { transposeB, weightDtype: dtype, splitK }), [inputs[0], inputs[1], part]);
    rt.run(createSplitKReduceKernel({ M, N, S: splitK }, { bias }), bias ? [part, inputs[2], y] : [part, y]);
    part.dispose();
  } else {
    rt.run(kernel, [...inputs, y]);
  }
  const out = (await rt.read(y)) as Float32Array;
  for (const t of [...inputs, y]) t.dispose();
  return worstRowError(out, ref, M, N);
}

// Awkward sizes: partial tiles in every dimension; K % 4 != 0 (scalar x), K % 8 != 0 with K % 4 == 0
// (vec4 x, scalar packed W), K % 8 == 0 (16-byte packed W); N % 4 != 0 (scalar y), N % 8 == 0 (packed W (K, N)).
const cases: { M: number; N: number; K: number; transposeB: boolean; dtype: DType; bias: boolean }[] = [
  { M: 1, N: 3, K: 5, transposeB: true, dtype: 'f32', bias: true },
  { M: 7, N: 129, K: 67, transposeB: true, dtype: 'f16', bias: false },
  { M: 130, N: 260, K: 132, transposeB: true, dtype: 'f32', bias: true },
  { M: 257, N: 129, K: 40, transposeB: true, dtype: 'bf16', bias: true },
  { M: 130, N: 264, K: 40, transposeB: false, dtype: 'f16', bias: true },
  { M: 7, N: 260, K: 132, transposeB: false, dtype: 'f32', bias: false },
  { M: 257, N: 3, K: 67, transposeB: false, dtype: 'bf16', bias: true },
  { M: 130, N: 129, K: 5, transposeB: false, dtype: 'f32', bias: false },
];

// SwiftShader compiles a blocking in ~1-7 s (the unrolled multiply), so every layout path runs on the
// cheapest table tile, and each larger tile runs the layouts that reach its own load rounds and unrolls.
const perTile: Record<TiledMatmulTile, number[]> = {
  '32x64': [0, 1, 2, 3, 4, 5, 6, 7],
  '64x64': [2, 6],
  '128x64': [3],
  '64x128': [4],
  '128x128': [2],
};

describe('register-blocked tiled matmul', () => {
  for (const tile of Object.keys(TILED_MATMUL_CONFIGS) as TiledMatmulTile[]) {
    const mine = perTile[tile].map((i) => cases[i]);
    it(`${tile} and its unrolled twin: agree with matmulReference on ${mine.map((c) => `${c.M}x${c.N}x${c.K} ${c.transposeB ? 'nk' : 'kn'} ${c.dtype}${c.bias ? '+b' : ''}`).join(', ')}`, async () => {
      for (const c of mine) {
        const err = await check(TILED_MATMUL_CONFIGS[tile], c.M, c.N, c.K, c.transposeB, c.dtype, c.bias);
        expect(err, `${tile} ${JSON.stringify(c)}`).toBeLessThan(1e-5);
      }
      // The unrolled twin (what GPUs run) on the tile's first layout. SwiftShader compiles the unrolled
      // 128-row tiles in ~10 s each, so there only the smaller tiles run it (the same generator); a GPU runs all.
      if (!rt.info.isSoftware || tile === '64x128' || tile === '64x64' || tile === '32x64') {
        const c = mine[0];
        expect(await check(TILED_MATMUL_UNROLLED[tile], c.M, c.N, c.K, c.transposeB, c.dtype, c.bias), `${tile} unrolled`).toBeLessThan(1e-5);
      }
    });
  }

  it('a custom blocking (tileK 8, 4×8 per thread, packed loads fewer than threads), its unrolled multiply and the basic 64×64 kernel agree too', async () => {
    const custom = { tileM: 64, tileN: 32, tileK: 8, threadM: 4, threadN: 8 };
    expect(await check(custom, 33, 40, 24, true, 'bf16', true)).toBeLessThan(1e-5);
    expect(await check('basic', 70, 37, 67, true, 'f16', true)).toBeLessThan(1e-5);
    // the K-tile multiply as straight-line code: partial K-tile (K = 20 of tileK 8), scalar x
    expect(await check({ ...custom, unrollK: true }, 33, 40, 21, true, 'f32', false)).toBeLessThan(1e-5);
  });

  it('split-K: K in slices of whole K-tiles (a short last slice, an empty one), partial products summed with the bias', async () => {
    const cfg = TILED_MATMUL_CONFIGS['32x64'];
    // K = 132 in 4 slices of 48: 48, 48, 36 and an empty fourth slice (it must still write zeros)
    expect(splitKSlice(132, 4, 16)).toBe(48);
    expect(await check(cfg, 130, 260, 132, true, 'f32', true, 4)).toBeLessThan(1e-5);
    // scalar y (N % 4 != 0), scalar packed W (K % 8 != 0), 3 slices of 112 over K = 300
    expect(await check(cfg, 7, 129, 300, true, 'f16', true, 3)).toBeLessThan(1e-5);
    // W (K, N) in bf16, no bias, 5 slices (the last 168 of K = 1000)
    expect(await check(cfg, 70, 64, 1000, false, 'bf16', false, 5)).toBeLessThan(1e-5);
    // q8 rows read 16 per word, 2 slices
    expect(await check(cfg, 33, 96, 512, true, 'q8', false, 2)).toBeLessThan(1e-5);
    // the unrolled multiply that GPUs run, with split-K
    expect(await check(TILED_MATMUL_UNROLLED['32x64'], 65, 72, 520, true, 'f32', true, 3)).toBeLessThan(1e-5);
    const k = createTiledMatmulKernel({ M: 512, N: 256, K: 1024 }, cfg, { splitK: 4 });
    expect(k.dispatch).toEqual([16, 4, 4]);
    expect(k.uniforms).toEqual({ M: 512, N: 256, K: 1024, KS: 256 });
    expect(k.cacheKey).not.toBe(createTiledMatmulKernel({ M: 512, N: 256, K: 1024 }, cfg).cacheKey);
    expect(() => createTiledMatmulKernel({ M: 8, N: 8, K: 8 }, cfg, { splitK: 2, bias: true })).toThrow(/createSplitKReduceKernel/);
    expect(() => createTiledMatmulKernel({ M: 8, N: 8, K: 8 }, cfg, { splitK: 1.5 })).toThrow(/positive integer/);
  });

  it('matmul() with split-K: its partials and the reduce with the bias, into a poisoned output', async () => {
    for (const [M, N, K, S, dtype, transposeB] of [
      [37, 70, 300, 3, 'f16', true],
      [5, 64, 520, 2, 'f32', false], // decode-sized M: split-K forces the tiled kernel
    ] as const) {
      const seed = M * 31 + K;
      const x = randn(M * K, seed);
      const w = roundTo(randn(N * K, seed + 1), dtype);
      const b = randn(N, seed + 2);
      const xs = rt.upload(x, [M, K]);
      const ws = rt.upload(w, transposeB ? [N, K] : [K, N], dtype);
      const bs = rt.upload(b, [N]);
      const out = rt.empty([M, N]); // NaN until written
      const d0 = rt.dispatchCount;
      matmul(rt, xs, ws, { bias: bs, transposeB, splitK: S, out });
      expect(rt.dispatchCount - d0, 'the tiled kernel and the reduce').toBe(2);
      const y = (await rt.read(out)) as Float32Array;
      expect(worstRowError(y, matmulReference(x, w, M, N, K, b, transposeB), M, N), `${M}x${N}x${K} in ${S}`).toBeLessThan(1e-5);
      for (const t of [xs, ws, bs, out]) t.dispose();
    }
    expect(() => matmul(rt, rt.zeros([2, 8]), rt.zeros([4, 8]), { splitK: 0 })).toThrow(/splitK must be a positive integer/);
  });

  it('dispatch and cache key follow the config; sizes are uniforms', () => {
    const c = TILED_MATMUL_CONFIGS['128x128'];
    const a = createTiledMatmulKernel({ M: 4096, N: 1000, K: 1024 }, c);
    const b = createTiledMatmulKernel({ M: 300, N: 2000, K: 2048 }, c);
    expect(a.dispatch).toEqual([32, 8, 1]);
    expect(b.dispatch).toEqual([3, 16, 1]);
    expect(a.workgroupSize).toEqual([16, 16, 1]);
    expect(a.cacheKey).toBe(b.cacheKey);
    expect(a.wgsl).toBe(b.wgsl);
    expect(b.uniforms).toEqual({ M: 300, N: 2000, K: 2048 });
    expect(createTiledMatmulKernel({ M: 4096, N: 1000, K: 1022 }, c).cacheKey).not.toBe(a.cacheKey); // scalar loads of x
  });

  it('rejects a blocking it cannot run and a non-float weight', () => {
    expect(() => createTiledMatmulKernel({ M: 8, N: 8, K: 8 }, { tileM: 64, tileN: 64, tileK: 12, threadM: 4, threadN: 4 })).toThrow(/tileK a multiple of 8/);
    expect(() => createTiledMatmulKernel({ M: 8, N: 8, K: 8 }, { tileM: 64, tileN: 64, tileK: 16, threadM: 6, threadN: 4 })).toThrow(/not a valid blocking/);
    expect(() => createTiledMatmulKernel({ M: 8, N: 8, K: 8 }, TILED_MATMUL_CONFIGS['64x64'], { weightDtype: 'i32' })).toThrow(/f32, f16, bf16 or q8/);
  });

  it('the config table: big tiles for big products on NVIDIA, smaller ones to fill the GPU, limits respected', () => {
    const nvidia = { info: { adapterInfo: { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200' }, isSoftware: false }, limits: { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 } };
    expect(tiledMatmulProfile(nvidia.info).name).toBe('nvidia');
    expect(chooseTiledMatmulConfig({ M: 4096, N: 2816 }, nvidia)).toBe(TILED_MATMUL_UNROLLED['128x128']);
    expect(chooseTiledMatmulConfig({ M: 512, N: 50280 }, nvidia)).toBe(TILED_MATMUL_UNROLLED['128x128']);
    expect(chooseTiledMatmulConfig({ M: 4096, N: 768 }, nvidia)).toBe(TILED_MATMUL_UNROLLED['64x128']); // 192 of 128x128 are too few
    expect(chooseTiledMatmulConfig({ M: 4096, N: 256 }, nvidia)).toBe(TILED_MATMUL_UNROLLED['64x64']); // 128 of 64x128 would leave SMs idle
    expect(chooseTiledMatmulConfig({ M: 16, N: 256 }, nvidia)).toBe(TILED_MATMUL_UNROLLED['32x64']);
    // split-K where no tile alone gives 200 workgroups: the first split tile that reaches 128 with 2, 4 or 8 slices of >= 8 K-tiles
    const U = TILED_MATMUL_UNROLLED;
    expect(chooseTiledMatmul({ M: 512, N: 1024, K: 2816 }, nvidia)).toEqual({ config: U['128x128'], splitK: 4 });
    expect(chooseTiledMatmul({ M: 512, N: 256, K: 1024 }, nvidia)).toEqual({ config: U['64x128'], splitK: 8 }); // 8 tiles of 128x128: too few even in 8 slices
    expect(chooseTiledMatmul({ M: 512, N: 3072, K: 768 }, nvidia)).toEqual({ config: U['64x64'], splitK: 1 }); // 384 tiles of 64x64
    expect(chooseTiledMatmul({ M: 512, N: 768, K: 768 }, nvidia)).toEqual({ config: U['64x128'], splitK: 4 }); // 24 of 128x128 x 4 is too few; K = 768 allows 4, not 8
    expect(chooseTiledMatmul({ M: 512, N: 1536, K: 48 }, nvidia)).toEqual({ config: U['32x64'], splitK: 1 }); // K too short to split: the most tiles
    expect(chooseTiledMatmul({ M: 4096, N: 2816, K: 1024 }, nvidia)).toEqual({ config: U['128x128'], splitK: 1 });
    expect(chooseTiledMatmul({ M: 512, N: 1024 }, nvidia)).toEqual({ config: U['32x64'], splitK: 1 }); // K unknown: no split
    if (rt.info.isSoftware) expect(chooseTiledMatmul({ M: 16, N: 64, K: 4096 }, rt)).toEqual({ config: TILED_MATMUL_CONFIGS['32x64'], splitK: 1 });
    const small = { ...nvidia, limits: { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 } };
    expect(chooseTiledMatmulConfig({ M: 4096, N: 2816 }, small)).toBe(TILED_MATMUL_UNROLLED['64x64']); // 16 KiB of workgroup memory
    expect(TILED_MATMUL_UNROLLED['64x128']).toEqual({ ...TILED_MATMUL_CONFIGS['64x128'], unrollK: true });
    expect(createTiledMatmulKernel({ M: 64, N: 64, K: 64 }, TILED_MATMUL_UNROLLED['64x64']).cacheKey).not.toBe(createTiledMatmulKernel({ M: 64, N: 64, K: 64 }, TILED_MATMUL_CONFIGS['64x64']).cacheKey);
    if (rt.info.isSoftware) {
      expect(tiledMatmulProfile(rt.info).name).toBe('software');
      expect(chooseTiledMatmulConfig({ M: 4096, N: 2816 }, rt)).toBe(TILED_MATMUL_CONFIGS['32x64']); // the loop, not the unrolled twin
    }
    expect(tiledMatmulProfile().name).toBe('default');
    for (const c of Object.values(TILED_MATMUL_CONFIGS)) {
      expect(tiledMatmulStorageBytes(c)).toBeLessThanOrEqual(32768);
      expect(tiledMatmulThreads(c)).toBeLessThanOrEqual(256);
    }
  });
});

describe('createTiledMatmulKernel glu: act(x·Wgᵀ) · (x·Wuᵀ) in one product', () => {
  const widened = (c: TiledMatmulConfig): TiledMatmulConfig => (c.threadN === 4 ? { ...c, threadN: 8 } : c);
  async function checkGlu(config: TiledMatmulConfig, M: number, I: number, K: number, dtype: DType, act: GluActivation, fused: boolean): Promise<number> {
    const seed = M * 31 + I * 7 + K;
    const x = randn(M * K, seed);
    // one (2I, K) weight with the gate rows first, or two (I, K) weights, each rounded to its dtype as stored
    const wgu = fused ? roundTo(randn(2 * I * K, seed + 1, 0.3), dtype) : new Float32Array([...roundTo(randn(I * K, seed + 1, 0.3), dtype), ...roundTo(randn(I * K, seed + 2, 0.3), dtype)]);
    const a = matmulReference(x, wgu, M, 2 * I, K); // (M, 2I): gate then up
    const ref = gluReference(a, I, act);
    const xT = rt.upload(x, [M, K]);
    const weights = fused
      ? [rt.upload(wgu, [2 * I, K], dtype)]
      : [rt.upload(wgu.subarray(0, I * K), [I, K], dtype), rt.upload(wgu.subarray(I * K), [I, K], dtype)];
    const y = rt.empty([M, I]); // NaN until written
    const kernel = createTiledMatmulKernel({ M, N: I, K }, config, { weightDtype: dtype, glu: act });
    rt.run({ ...kernel, uniforms: { ...kernel.uniforms, upRows: fused ? I : 0 } }, [xT, weights[0], weights[weights.length - 1], y]);
    const out = (await rt.read(y)) as Float32Array;
    for (const t of [xT, ...weights, y]) t.dispose();
    return worstRowError(out, ref, M, I);
  }

  // Every load and store path on the cheapest tile (SwiftShader compiles each variant in seconds): I % 4 != 0
  // (scalar y); K % 4 != 0 (scalar x and W); K % 8 != 0 with K % 4 == 0 (16-bit W scalar); K % 16 == 0 (q8
  // words); partial tiles in M and in the features; separate and fused weights; the three activations.
  const paths = [
    { M: 1, I: 3, K: 5, dtype: 'f32', act: 'silu', fused: true },
    { M: 7, I: 37, K: 40, dtype: 'f32', act: 'gelu', fused: false },
    { M: 130, I: 129, K: 40, dtype: 'bf16', act: 'gelu_tanh', fused: true },
    { M: 33, I: 64, K: 36, dtype: 'f16', act: 'silu', fused: false },
    { M: 33, I: 70, K: 48, dtype: 'q8', act: 'silu', fused: true },
    { M: 9, I: 20, K: 40, dtype: 'q8', act: 'gelu', fused: false },
  ] as const;
  // Each larger tile takes one path on SwiftShader (all of them on a GPU).
  const tiles: [TiledMatmulTile, number[]][] = [
    ['32x64', [0, 1, 2, 3, 4, 5]],
    ['64x64', [3]],
    ['128x128', [0]],
    ['128x64', [1]],
    ['64x128', [2]],
  ];
  for (const [name, mine] of tiles) {
    const config = widened(TILED_MATMUL_CONFIGS[name]);
    it(`${tiledMatmulConfigName(config)}: ${mine.map((i) => `${paths[i].M}x${paths[i].I}x${paths[i].K} ${paths[i].dtype} ${paths[i].act}${paths[i].fused ? ' fused' : ''}`).join(', ')}`, async () => {
      for (const i of rt.info.isSoftware ? mine : paths.map((_, j) => j)) {
        const { M, I, K, dtype, act, fused } = paths[i];
        expect(await checkGlu(config, M, I, K, dtype, act, fused), JSON.stringify(paths[i])).toBeLessThan(1e-5);
      }
    });
  }

  it('the unrolled tile gives the same products', async () => {
    expect(await checkGlu(widened(TILED_MATMUL_UNROLLED['32x64']), 70, 100, 72, 'f32', 'silu', false)).toBeLessThan(1e-5);
  });

  it('rejects what the epilogue cannot pair: 4 columns per thread, split-K, a bias, W (K, N)', () => {
    const shape = { M: 8, N: 8, K: 8 };
    expect(() => createTiledMatmulKernel(shape, TILED_MATMUL_CONFIGS['64x64'], { glu: 'silu' })).toThrow(/glu needs .* threadN a multiple of 8/);
    expect(() => createTiledMatmulKernel(shape, TILED_MATMUL_CONFIGS['128x128'], { glu: 'silu', splitK: 2 })).toThrow(/INVALID_ARGUMENT|glu needs/);
    expect(() => createTiledMatmulKernel(shape, TILED_MATMUL_CONFIGS['128x128'], { glu: 'silu', bias: true })).toThrow(/glu needs/);
    expect(() => createTiledMatmulKernel(shape, TILED_MATMUL_CONFIGS['128x128'], { glu: 'silu', transposeB: false })).toThrow(/glu needs/);
  });

  it('dispatches one workgroup column per tileN / 2 features', () => {
    const k = createTiledMatmulKernel({ M: 512, N: 2816, K: 1024 }, TILED_MATMUL_CONFIGS['64x128'], { glu: 'silu' });
    expect(k.dispatch).toEqual([8, 44, 1]);
    expect(k.bindings.map((b) => b.name)).toEqual(['x', 'w', 'w2', 'y']);
  });
});

describe('gluMatmul', () => {
  it('one dispatch with a forced tile, separate or fused weights; null where the tiled product would not run', async () => {
    const [M, I, K] = [19, 24, 32];
    const x = randn(M * K, 1);
    const wg = randn(I * K, 2, 0.3);
    const wu = randn(I * K, 3, 0.3);
    const ref = gluReference(matmulReference(x, new Float32Array([...wg, ...wu]), M, 2 * I, K), I, 'silu');
    const xT = rt.upload(x, [1, M, K]);
    const gate = rt.upload(wg, [I, K]);
    const up = rt.upload(wu, [I, K]);
    const gateUp = rt.upload(new Float32Array([...wg, ...wu]), [2 * I, K]);
    const config = TILED_MATMUL_CONFIGS['32x64']; // 4 columns per thread: widened to 8
    for (const weights of [{ gate, up }, { gateUp }]) {
      const d0 = rt.dispatchCount;
      const y = gluMatmul(rt, xT, weights, 'silu', { config })!;
      expect(rt.dispatchCount - d0).toBe(1);
      expect(y.shape).toEqual([1, M, I]);
      expect(worstRowError((await rt.read(y)) as Float32Array, ref, M, I)).toBeLessThan(1e-5);
      y.dispose();
    }
    // what matmul would run as a gemv (decode rows), a software adapter without a forced tile, unlike dtypes
    expect(gluMatmul(rt, rt.upload(randn(K, 4), [1, 1, K]), { gate, up }, 'silu')).toBeNull();
    const auto = gluMatmul(rt, xT, { gate, up }, 'silu');
    expect(auto === null).toBe(!usesTiledMatmul(rt, M));
    auto?.dispose();
    expect(gluMatmul(rt, xT, { gate, up: rt.upload(wu, [I, K], 'bf16') }, 'silu', { config })).toBeNull();
    expect(gluMatmul(rt, xT, { gate, up: rt.upload(wu.subarray(0, (I - 1) * K), [I - 1, K]) }, 'silu', { config })).toBeNull();
  });
});
