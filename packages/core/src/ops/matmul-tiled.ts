/**
 * A register-blocked matmul for prefill: y = x · Wᵀ + b (W stored (N, K), `transposeB`) or
 * y = x · W + b (W stored (K, N)), W in f32 or f16/bf16 packed two per u32 word, computed in f32.
 *
 * Shape glossary (the project glossary, packages/core/README.md):
 *   M  rows of x (tokens)        K  input features        N  output features
 *   S  K slices of a split-K product (kernel-local)       KS input features per slice
 *
 * The classic SGEMM blocking (Volkov & Demmel 2008, "Benchmarking GPUs to tune dense linear
 * algebra"; the same scheme as CUTLASS's SIMT kernels): a workgroup computes a (tileM, tileN)
 * block of y; each of its (tileN / threadN) × (tileM / threadM) threads keeps a
 * (threadM, threadN) block of accumulators in registers. K advances in steps of tileK: the
 * (tileM, tileK) slice of x and the (tileK, tileN) slice of W are staged in workgroup memory,
 * both stored k-major so that the inner loop reads vec4s of 4 consecutive rows (x) and 4
 * consecutive columns (W) and does 16 FMAs per pair of reads.
 *
 * Double buffering: two workgroup tiles, and the next tile's global loads held in registers. While
 * the threads multiply out tile t from one buffer, tile t + 1's loads are in flight (issued before
 * the multiply, so their latency hides behind it); they go into the other buffer at the top of the
 * next step; one barrier per K-step.
 *
 * Global loads are 16 bytes (4 f32 or 8 packed 16-bit weights) where the row stride allows it
 * (K % 4 for x; K % 4 or % 8 for W (N, K); N % 4 or % 8 for W (K, N)), else scalar. q8 weights
 * (dtype.ts) are read 16 per 16-byte word plus their group's scale for W (N, K) with K % 16 == 0
 * and tileK % 16 == 0, else element by element. Every load is guarded, so any M, N, K works; y
 * is written as vec4s when N % 4 == 0.
 *
 * Split-K (`splitK` S > 1, for products with too few tiles to fill the GPU): dispatch z takes K-slice z of KS
 * features (whole K-tiles) and writes its partial product to slice z of a (S, M, N) buffer; a second kernel
 * ({@link createSplitKReduceKernel}) sums the slices in order and adds the bias: CUTLASS's "parallel" split-K
 * (the serial kind, with a semaphore between workgroups, has no safe form in WGSL, and there are no float atomics).
 *
 * Stacked products (`stack`: an attention layer's q, k and v of one x): 2 or 3 weights in one dispatch, the
 * N-tiles of W0, then W1, then W2 one after another, so each workgroup reads one weight and writes one output
 * (with split-K, its columns of one (S, M, N0 + N1 + N2) partial buffer, routed by a stacked reduce).
 */
import { type DType, wgslLoadFloat, wgslLoadQ8x16, wgslStorageType } from '../dtype.js';
import { StatespaceError } from '../errors.js';
import type { DeviceInfo } from '../device.js';
import { type BindingDecl, type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import { wgslActivations } from './elementwise.js';
import type { GluActivation } from './glu.js';

/** The blocking of one {@link createTiledMatmulKernel} variant. */
export interface TiledMatmulConfig {
  /** Rows of y (and of x) per workgroup. */
  readonly tileM: number;
  /** Columns of y (output features) per workgroup. */
  readonly tileN: number;
  /** Input features per step through workgroup memory (a multiple of 8). */
  readonly tileK: number;
  /** Rows of y per thread (a multiple of 4). */
  readonly threadM: number;
  /** Columns of y per thread (a multiple of 4). */
  readonly threadN: number;
  /** The multiply over a K-tile as straight-line code (tileK copies) instead of a loop. */
  readonly unrollK?: boolean;
}

/** Names of the built-in tile variants (`tileM`x`tileN`). */
export type TiledMatmulTile = '128x128' | '128x64' | '64x128' | '64x64' | '32x64';

/**
 * The built-in tile variants. 128x128 is the big-GEMM tile (256 threads, 8×8 outputs each,
 * 64 FMAs per 4 vec4 reads of workgroup memory); the smaller ones keep a 132-SM GPU full when
 * M or N is small (N = 256 k/v projections, short prompts).
 *
 * @example
 * ```ts
 * const k = createTiledMatmulKernel({ M: 4096, N: 1024, K: 1024 }, TILED_MATMUL_CONFIGS['128x128']);
 * ```
 */
export const TILED_MATMUL_CONFIGS: Readonly<Record<TiledMatmulTile, TiledMatmulConfig>> = {
  '128x128': { tileM: 128, tileN: 128, tileK: 16, threadM: 8, threadN: 8 }, // 256 threads, 32 KiB
  '128x64': { tileM: 128, tileN: 64, tileK: 16, threadM: 8, threadN: 8 }, // 128 threads, 24 KiB
  '64x128': { tileM: 64, tileN: 128, tileK: 16, threadM: 8, threadN: 8 }, // 128 threads, 24 KiB
  '64x64': { tileM: 64, tileN: 64, tileK: 16, threadM: 8, threadN: 4 }, // 128 threads, 16 KiB
  '32x64': { tileM: 32, tileN: 64, tileK: 16, threadM: 4, threadN: 4 }, // 128 threads, 12 KiB
};

/**
 * Which tiles an adapter family prefers, largest first, and how many workgroups a product needs
 * before the largest tile that reaches that count is taken (a GPU with S cores and r resident
 * workgroups per core wants at least ~S·r of them; below that, smaller tiles fill it better).
 */
export interface TiledMatmulProfile {
  /** Short name (printed by the benchmark). */
  readonly name: string;
  /** Matched against `vendor architecture description` of the adapter, lower case; undefined matches every adapter. */
  readonly match?: RegExp;
  /** Only for software adapters. */
  readonly software?: boolean;
  /** Tile variants in order of preference. */
  readonly tiles: readonly TiledMatmulTile[];
  /** Fewest workgroups a product should have with the chosen tile. */
  readonly minWorkgroups: number;
  /**
   * Run the tiles with their K-tile multiply unrolled ({@link TiledMatmulConfig.unrollK}): 15-25% faster on
   * the H200 (`bench/results/h200-matmul-variants.log`); software adapters keep the loop (SwiftShader
   * compiles straight-line code slowly).
   */
  readonly unrollK?: boolean;
  /**
   * Split-K ({@link TiledMatmulAttrs.splitK}) for products that no tile of `tiles` gives `minWorkgroups`:
   * the first of these tiles that reaches `workgroups` with a power of two of slices, at most `maxSlices`, of at
   * least 8 K-tiles each. Undefined: no split-K.
   */
  readonly splitK?: { readonly tiles: readonly TiledMatmulTile[]; readonly workgroups: number; readonly maxSlices: number };
}

/**
 * The config table, first match wins; the last entry is the default for unknown adapters.
 * NVIDIA: H200 (132 SMs, 2 resident 256-thread workgroups of the 128x128 tile per SM); the order and the
 * 200-workgroup threshold follow `bench/results/h200-matmul-variants.log` (the 128-thread 64x128 tile
 * next, then 64x64); products that none of them fills split K (`bench/results/h200-matmul-splitk.log`: 2, 4
 * or 8 slices beat 3 or 6, and a split 128x128 beats 32x64 alone, which runs at 17-22 TFLOP/s on every shape).
 * The default is conservative: no 32 KiB tile unless the adapter allows it (checked at choice).
 *
 * @example
 * ```ts
 * const profile = tiledMatmulProfile(runtime.info); // e.g. { name: 'nvidia', ... }
 * ```
 */
export const TILED_MATMUL_PROFILES: readonly TiledMatmulProfile[] = [
  { name: 'software', software: true, tiles: ['32x64'], minWorkgroups: 1 },
  {
    name: 'nvidia',
    match: /nvidia/,
    tiles: ['128x128', '64x128', '64x64'],
    minWorkgroups: 200,
    unrollK: true,
    splitK: { tiles: ['128x128', '64x128', '64x64', '32x64'], workgroups: 128, maxSlices: 8 },
  },
  { name: 'default', tiles: ['128x64', '64x64', '32x64'], minWorkgroups: 128, unrollK: true, splitK: { tiles: ['128x64', '64x64', '32x64'], workgroups: 64, maxSlices: 4 } },
];

/** What {@link chooseTiledMatmulConfig} reads of an adapter; a `Runtime` has both fields. */
export interface TiledMatmulTarget {
  readonly info?: Pick<DeviceInfo, 'adapterInfo' | 'isSoftware'>;
  readonly limits?: { readonly maxComputeWorkgroupStorageSize: number; readonly maxComputeInvocationsPerWorkgroup: number };
}

/** WebGPU's default limits, assumed when no adapter is given. */
const DEFAULT_LIMITS = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 } as const;

const profileMemo = new WeakMap<object, TiledMatmulProfile>();

/**
 * The {@link TILED_MATMUL_PROFILES} entry of an adapter (the default one for none).
 *
 * @example
 * ```ts
 * tiledMatmulProfile(rt.info).name; // 'nvidia' on an H200, 'software' on SwiftShader
 * ```
 */
export function tiledMatmulProfile(info?: Pick<DeviceInfo, 'adapterInfo' | 'isSoftware'>): TiledMatmulProfile {
  const fallback = TILED_MATMUL_PROFILES[TILED_MATMUL_PROFILES.length - 1];
  if (!info) return fallback;
  let p = profileMemo.get(info);
  if (!p) {
    const a = info.adapterInfo;
    const text = `${a.vendor} ${a.architecture} ${a.description}`.toLowerCase();
    p = TILED_MATMUL_PROFILES.find((e) => (e.software === undefined || e.software === info.isSoftware) && (!e.match || e.match.test(text))) ?? fallback;
    profileMemo.set(info, p);
  }
  return p;
}

/**
 * Bytes of workgroup memory a config needs (two K-tiles of x and of W, f32).
 *
 * @example
 * ```ts
 * tiledMatmulStorageBytes(TILED_MATMUL_CONFIGS['128x128']); // 32768
 * ```
 */
export function tiledMatmulStorageBytes(config: TiledMatmulConfig): number {
  return 2 * (config.tileM + config.tileN) * config.tileK * 4;
}

/**
 * Threads per workgroup of a config.
 *
 * @example
 * ```ts
 * tiledMatmulThreads(TILED_MATMUL_CONFIGS['128x128']); // 256
 * ```
 */
export function tiledMatmulThreads(config: TiledMatmulConfig): number {
  return (config.tileM / config.threadM) * (config.tileN / config.threadN);
}

/**
 * Picks the tile of a product on an adapter: the first tile of the adapter's profile that fits its
 * limits and still gives `minWorkgroups` workgroups, else the fitting tile with the most workgroups;
 * from {@link TILED_MATMUL_UNROLLED} when the profile unrolls, else from {@link TILED_MATMUL_CONFIGS}.
 * (Without K there is no split-K: {@link chooseTiledMatmul} picks both.)
 *
 * @example
 * ```ts
 * chooseTiledMatmulConfig({ M: 4096, N: 2816 }, rt); // 128x128 (unrolled) on an NVIDIA GPU
 * chooseTiledMatmulConfig({ M: 4096, N: 256 }, rt);  // a smaller tile: 64 of 128x128 would leave SMs idle
 * ```
 */
export function chooseTiledMatmulConfig(shape: { M: number; N: number }, target: TiledMatmulTarget = {}): TiledMatmulConfig {
  return chooseTiledMatmul(shape, target).config;
}

/** A tile and the number of K slices it runs with (1: no split-K). */
export interface TiledMatmulChoice {
  readonly config: TiledMatmulConfig;
  readonly splitK: number;
}

/** Fewest K-tiles a split-K slice gets (its loads' pipeline needs a few steps to fill). */
const MIN_SLICE_TILES = 8;

/**
 * Picks the tile and the split-K of a product on an adapter. The first tile of the profile's `tiles` that fits
 * the limits and gives `minWorkgroups` runs alone. Else, where K is known and the profile splits, the first of
 * its split tiles that reaches the split's workgroup count with 2, 4 or 8 slices (at most `maxSlices`) of at
 * least 8 K-tiles each (short prompts: at 512 tokens llama-350m's down projection has 32 tiles of 128x128,
 * which in 4 slices run at 29.9 TFLOP/s on the H200, against 18.5 for the 256 tiles of 32x64 alone,
 * `bench/results/h200-matmul-splitk.log`). Else the fitting tile with the most workgroups, unsplit.
 *
 * @example
 * ```ts
 * chooseTiledMatmul({ M: 512, N: 1024, K: 2816 }, rt); // { config: 128x128 (unrolled), splitK: 4 } on an NVIDIA GPU
 * chooseTiledMatmul({ M: 4096, N: 2816, K: 1024 }, rt); // { config: 128x128 (unrolled), splitK: 1 }
 * ```
 */
export function chooseTiledMatmul(shape: { M: number; N: number; K?: number }, target: TiledMatmulTarget = {}): TiledMatmulChoice {
  const profile = tiledMatmulProfile(target.info);
  const limits = target.limits ?? DEFAULT_LIMITS;
  const table = profile.unrollK ? TILED_MATMUL_UNROLLED : TILED_MATMUL_CONFIGS;
  const fits = (name: TiledMatmulTile) => {
    const c = TILED_MATMUL_CONFIGS[name];
    return tiledMatmulStorageBytes(c) <= limits.maxComputeWorkgroupStorageSize && tiledMatmulThreads(c) <= limits.maxComputeInvocationsPerWorkgroup;
  };
  const count = (name: TiledMatmulTile) => Math.ceil(shape.M / TILED_MATMUL_CONFIGS[name].tileM) * Math.ceil(shape.N / TILED_MATMUL_CONFIGS[name].tileN);
  for (const name of profile.tiles) if (fits(name) && count(name) >= profile.minWorkgroups) return { config: table[name], splitK: 1 };
  const split = profile.splitK;
  if (split && shape.K !== undefined) {
    for (const name of split.tiles) {
      if (!fits(name)) continue;
      const c = count(name);
      const most = Math.min(split.maxSlices, Math.floor(shape.K / (MIN_SLICE_TILES * TILED_MATMUL_CONFIGS[name].tileK)));
      for (let S = 2; S <= most; S *= 2) if (c * S >= split.workgroups) return { config: table[name], splitK: S };
    }
  }
  let best: TiledMatmulTile = '32x64';
  let bestCount = -1;
  for (const name of new Set([...profile.tiles, ...(split?.tiles ?? [])])) {
    // ties: the later, smaller tile pads less
    if (fits(name) && count(name) >= bestCount) [best, bestCount] = [name, count(name)];
  }
  return { config: table[best], splitK: 1 };
}

/**
 * The built-in tiles with the K-tile multiply unrolled (what {@link chooseTiledMatmulConfig} returns for a
 * profile with `unrollK`).
 *
 * @example
 * ```ts
 * tiledMatmulConfigName(TILED_MATMUL_UNROLLED['64x128']); // '64x128x16/8x8u'
 * ```
 */
export const TILED_MATMUL_UNROLLED: Readonly<Record<TiledMatmulTile, TiledMatmulConfig>> = Object.fromEntries(
  Object.entries(TILED_MATMUL_CONFIGS).map(([name, c]) => [name, { ...c, unrollK: true }]),
) as Record<TiledMatmulTile, TiledMatmulConfig>;

/**
 * Short name of a config, `tileM`x`tileN`x`tileK` `threadM`x`threadN` (cache keys, benchmark tables).
 *
 * @example
 * ```ts
 * tiledMatmulConfigName(TILED_MATMUL_CONFIGS['64x64']); // '64x64x16/8x4'
 * ```
 */
export function tiledMatmulConfigName(c: TiledMatmulConfig): string {
  return `${c.tileM}x${c.tileN}x${c.tileK}/${c.threadM}x${c.threadN}${c.unrollK ? 'u' : ''}`;
}

function validateConfig(c: TiledMatmulConfig): void {
  const ok =
    [c.tileM, c.tileN, c.tileK, c.threadM, c.threadN].every((v) => Number.isInteger(v) && v > 0) &&
    c.threadM % 4 === 0 &&
    c.threadN % 4 === 0 &&
    c.tileK % 8 === 0 &&
    c.tileM % c.threadM === 0 &&
    c.tileN % c.threadN === 0;
  if (!ok) {
    throw new StatespaceError(
      'INVALID_ARGUMENT',
      `createTiledMatmulKernel: config ${JSON.stringify(c)} is not a valid blocking (threadM, threadN multiples of 4; tileK a multiple of 8; tileM, tileN multiples of threadM, threadN)`,
    );
  }
}

const layout = { M: 'u32', N: 'u32', K: 'u32' } as const satisfies UniformLayout;
// split-K: KS input features per slice (a multiple of tileK)
const splitLayout = { M: 'u32', N: 'u32', K: 'u32', KS: 'u32' } as const satisfies UniformLayout;
// glu: the up rows start at row upRows of w2
const gluLayout = { M: 'u32', N: 'u32', K: 'u32', upRows: 'u32' } as const satisfies UniformLayout;
// stack: N = N0 + N1 + N2 (the partials' row with split-K); weight i's N-tiles start at tile Ti (T0 = 0); KS as in splitLayout
const stackLayout = { M: 'u32', N: 'u32', K: 'u32', KS: 'u32', N0: 'u32', N1: 'u32', N2: 'u32', T1: 'u32', T2: 'u32' } as const satisfies UniformLayout;

/** Most weights of a {@link TiledMatmulAttrs.stack} (x, 3 weights and 3 outputs: 7 of WebGPU's 8 storage buffers per stage). */
export const MAX_STACKED_WEIGHTS = 3;

/** Attributes of a {@link createTiledMatmulKernel}. */
export interface TiledMatmulAttrs {
  /** W is stored (N, K) as in `nn.Linear` (default true); else (K, N). */
  transposeB?: boolean;
  /** Storage type of W ('f32', 'f16', 'bf16' (packed two per u32) or 'q8'). */
  weightDtype?: DType;
  /** A bias of length N is added (not with `splitK` > 1: {@link createSplitKReduceKernel} adds it). */
  bias?: boolean;
  /**
   * Split K into this many slices, one workgroup layer (dispatch z) each, written as partial products
   * (S, M, N) that {@link createSplitKReduceKernel} sums (default 1: y itself). For products with too few
   * tiles to fill the GPU (short prompts: M = 512 gives q/o 128 tiles of 64x64 on 132 SMs).
   */
  splitK?: number;
  /**
   * A gated MLP's first half in one product: y (M, N) = act(x · Wgᵀ) · (x · Wuᵀ), N the intermediate
   * features, with the gate rows in `w` and the up rows in `w2` from row `upRows` (0 for separate weights,
   * N when both halves are one (2N, K) weight bound twice). Each workgroup takes tileN / 2 features: the first
   * half of its W tile from the gate, the second from the up rows, so that a thread's column groups h and
   * h + H/2 are the gate and up of the same features and the epilogue multiplies them in registers.
   * Needs W (N, K), threadN / 4 even, no bias, no split-K.
   */
  glu?: GluActivation;
  /**
   * Several products of one x in one dispatch: the output features N0, N1 (, N2) of 2 or 3 weights W0, W1, W2
   * (each (Ni, K), one dtype), bound as w, w1, (w2), with outputs y0, y1, (y2) (each (M, Ni)); `shape.N` is
   * their sum. Weight i takes ⌈Ni / tileN⌉ N-tiles of the dispatch (from tile Ti, a uniform), so every
   * workgroup reads and writes one weight (the choice is uniform per workgroup) and each weight's last tile is
   * guarded on its own Ni. The Ni are uniforms ({@link stackedMatmulUniforms}); only whether all are multiples
   * of 4 (vec4 stores) is compiled in. With split-K the kernel writes one partial (S, M, N) buffer, weight i in
   * columns N0 + … + N(i−1) of each row, that {@link createSplitKReduceKernel} with the same `stack` routes to
   * y0, y1, y2. Needs W (N, K), no bias, no glu (q/k/v projections: `stackedMatmul`).
   */
  stack?: readonly number[];
}

/**
 * The uniforms of a stacked {@link createTiledMatmulKernel} ({@link TiledMatmulAttrs.stack}) for M rows,
 * K features and output features `Ns` with tile width `tileN` and split-K slice KS (0: unsplit).
 *
 * @example
 * ```ts
 * stackedMatmulUniforms(512, 1024, [1024, 256, 256], 64); // { M: 512, N: 1536, K: 1024, KS: 0, N0: 1024, N1: 256, N2: 256, T1: 16, T2: 20 }
 * ```
 */
export function stackedMatmulUniforms(M: number, K: number, Ns: readonly number[], tileN: number, KS = 0): Record<keyof typeof stackLayout, number> {
  const [N0, N1, N2 = 0] = Ns;
  const T1 = Math.ceil(N0 / tileN);
  const T2 = T1 + Math.ceil(N1 / tileN);
  return { M, N: N0 + N1 + N2, K, KS, N0, N1, N2, T1, T2 };
}

/** `count` loads spread over `threads` threads: lines of code, guarded when they do not divide evenly. */
function perThread(count: number, threads: number, body: (r: number) => string): string {
  const rounds = Math.ceil(count / threads);
  const exact = count % threads === 0;
  return Array.from({ length: rounds }, (_, r) => {
    const guard = !exact && r === rounds - 1 ? `if (li + ${r * threads}u < ${count}u) ` : '';
    return `  ${guard}{ let idx = li + ${r * threads}u; ${body(r)} }`;
  }).join('\n');
}

/**
 * Builds the register-blocked matmul for x (M, K) and W ((N, K) or (K, N)) with one tile config.
 * Bindings: x, w, (bias), y. Dispatch: (⌈M / tileM⌉, ⌈N / tileN⌉, 1); M tiles vary fastest so that
 * consecutive workgroups share W's column block (the lm_head streams W once).
 *
 * @example
 * ```ts
 * const kernel = createTiledMatmulKernel({ M: 4096, N: 1024, K: 1024 }, TILED_MATMUL_CONFIGS['128x128'], { weightDtype: 'bf16' });
 * runtime.run(kernel, [x, w, y]);
 * ```
 */
export function createTiledMatmulKernel(shape: { M: number; N: number; K: number }, config: TiledMatmulConfig, attrs: TiledMatmulAttrs = {}): KernelDescriptor {
  validateConfig(config);
  const transposeB = attrs.transposeB ?? true;
  const wDtype = attrs.weightDtype ?? 'f32';
  const bias = attrs.bias ?? false;
  if (wDtype !== 'f32' && wDtype !== 'f16' && wDtype !== 'bf16' && wDtype !== 'q8') {
    throw new StatespaceError('DTYPE_MISMATCH', `createTiledMatmulKernel: W must be f32, f16, bf16 or q8, got ${wDtype}`);
  }
  const S = attrs.splitK ?? 1;
  if (!Number.isInteger(S) || S < 1) throw new StatespaceError('INVALID_ARGUMENT', `createTiledMatmulKernel: splitK must be a positive integer, got ${S}`);
  if (S > 1 && bias) throw new StatespaceError('INVALID_ARGUMENT', 'createTiledMatmulKernel: with splitK > 1 the bias belongs to createSplitKReduceKernel');
  const split = S > 1;
  const glu = attrs.glu;
  const stack = attrs.stack;
  const W = stack?.length ?? 1; // weights bound
  if (stack) {
    if (W < 2 || W > MAX_STACKED_WEIGHTS || !stack.every((n) => Number.isInteger(n) && n > 0)) {
      throw new StatespaceError('INVALID_ARGUMENT', `createTiledMatmulKernel: stack takes 2 to ${MAX_STACKED_WEIGHTS} positive output widths, got [${stack.join(',')}]`);
    }
    if (bias || glu || !transposeB) {
      throw new StatespaceError('INVALID_ARGUMENT', `createTiledMatmulKernel: stack needs W (N, K), no bias and no glu (got bias ${bias}, glu ${glu}, transposeB ${transposeB})`);
    }
    if (stack.reduce((a, b) => a + b, 0) !== shape.N) {
      throw new StatespaceError('SHAPE_MISMATCH', `createTiledMatmulKernel: stack [${stack.join(',')}] does not sum to N=${shape.N}`);
    }
  }
  if (glu && (split || bias || !transposeB || (config.threadN / 4) % 2 !== 0)) {
    throw new StatespaceError('INVALID_ARGUMENT', `createTiledMatmulKernel: glu needs W (N, K), threadN a multiple of 8, no bias and no split-K (got threadN ${config.threadN}, splitK ${S}, bias ${bias}, transposeB ${transposeB})`);
  }
  const q8 = wDtype === 'q8';
  const packed = wDtype !== 'f32' && !q8;
  const perWord = q8 ? 16 : packed ? 8 : 4; // weights per 16-byte load
  const vecX = shape.K % 4 === 0;
  // q8 words hold 16 consecutive elements of a row of W (N, K) only; W (K, N) in q8 is read element by element
  const vecW = q8 ? transposeB && shape.K % 16 === 0 && config.tileK % 16 === 0 : (transposeB ? shape.K : shape.N) % perWord === 0;
  const vecY = stack ? stack.every((n) => n % 4 === 0) : shape.N % 4 === 0;
  const { tileM: BM, tileN: BN, tileK: BK, threadM: TM, threadN: TN } = config;
  const TX = BN / TN;
  const TY = BM / TM;
  const T = TX * TY;
  const wType = vecW ? (packed || q8 ? 'vec4<u32>' : 'vec4<f32>') : wgslStorageType(wDtype);
  const yType = vecY ? 'vec4<f32>' : 'f32';
  const bindings: BindingDecl[] = [
    { name: 'x', type: vecX ? 'vec4<f32>' : 'f32', access: 'read' }, // (M, K) (as (M, K/4) vec4s when K % 4 == 0)
    { name: 'w', type: wType, access: 'read' }, // (N, K) or (K, N), f32, packed pairs or q8 blocks; the gate rows with glu; W0 with stack
    ...(glu ? [{ name: 'w2', type: wType, access: 'read' } as const] : []), // the up rows (from upRows) with glu
    ...(stack ? stack.slice(1).map((_, i) => ({ name: `w${i + 1}`, type: wType, access: 'read' }) as const) : []), // W1, W2 (Ni, K) with stack
    ...(bias ? [{ name: 'bias', type: 'f32', access: 'read' } as const] : []), // (N)
    ...(stack && !split
      ? stack.map((_, i) => ({ name: `y${i}`, type: yType, access: 'read_write' }) as const) // (M, Ni) with stack
      : [{ name: 'y', type: yType, access: 'read_write' } as const]), // (M, N), or (S, M, N) partials with splitK
  ];
  const cacheKey = `${tiledMatmulConfigName(config)}|${transposeB ? 'nk' : 'kn'}|${wDtype}|${bias ? 'b' : ''}|${vecX ? 'vx' : 'sx'}${vecW ? 'vw' : 'sw'}${vecY ? 'vy' : 'sy'}${split ? '|sk' : ''}${glu ? `|glu-${glu}` : ''}${stack ? `|stack${W}` : ''}`;
  const uniformLayout = stack ? stackLayout : split ? splitLayout : glu ? gluLayout : layout;
  const HALF = BN / 2;
  // Where weight rows come from: the buffer and its load functions (scalar, q8 word).
  type Src = { buf: string; fn: string; q: string };
  const srcW: Src = { buf: 'w', fn: 'loadW', q: 'loadW16' };
  const srcUp: Src = { buf: 'w2', fn: 'loadU', q: 'loadU16' };
  const srcStack = (i: number): Src => (i === 0 ? srcW : { buf: `w${i}`, fn: `loadW${i}`, q: `loadW${i}_16` });
  // stack: the workgroup's weight `sel` (uniform per workgroup) picks one of W branches
  const pick = (body: (i: number) => string) =>
    Array.from({ length: W }, (_, i) => (i === W - 1 ? `{ ${body(i)} }` : `if (sel == ${i}u) { ${body(i)} }`)).join(' else ');
  // output features of the workgroup's weight (the guard of its last tile)
  const NL = stack ? 'nw' : 'u.N';
  // A row of W (N, K) for the tile's local row `nn`: gn in the plain product; with glu, feature f of the
  // gate (first half of the tile) or of the up rows (second half); with stack, row gn of the workgroup's
  // weight. `load(row, src)` assigns the registers.
  const rowLoad = (nn: string, gkOk: string, load: (row: string, src: Src) => string) =>
    glu
      ? `let nn = ${nn}; let f = n0 + nn % ${HALF}u; if (f < u.N && ${gkOk}) { if (nn < ${HALF}u) { ${load('f', srcW)} } else { ${load('(f + u.upRows)', srcUp)} } }`
      : stack
        ? `let gn = n0 + ${nn}; if (gn < nw && ${gkOk}) { ${pick((i) => load('gn', srcStack(i)))} }`
        : `let gn = n0 + ${nn}; if (gn < u.N && ${gkOk}) { ${load('gn', srcW)} }`;
  const wgsl = memoWgsl('matmul_tiled_rb', cacheKey, () => {
    const BM4 = BM / 4;
    const BN4 = BN / 4;
    const G = TM / 4; // vec4 groups of rows per thread
    const H = TN / 4; // vec4 groups of columns per thread
    const unpack = wDtype === 'f16' ? 'unpack2x16float(p)' : 'vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u))';
    const comp = ['x', 'y', 'z', 'w'];
    const decls: string[] = [];
    const loads: string[] = [];
    const stores: string[] = [];
    // x tile: (tileM, tileK) of x, stored k-major: As[buf][k][m / 4][m % 4].
    if (vecX) {
      const count = (BM * BK) / 4;
      for (let r = 0; r < Math.ceil(count / T); r++) decls.push(`var px${r} = vec4<f32>(0.0);`);
      loads.push(perThread(count, T, (r) => `let gm = m0 + idx / ${BK / 4}u; let gk = k0 + 4u * (idx % ${BK / 4}u);
    px${r} = vec4<f32>(0.0); if (gm < u.M && gk < u.K) { px${r} = x[(gm * u.K + gk) / 4u]; }`));
      stores.push(perThread(count, T, (r) => `let mm = idx / ${BK / 4}u; let s = ab + 4u * (idx % ${BK / 4}u) * ${BM4}u + mm / 4u; let c = mm % 4u;
    ${comp.map((q, i) => `As[s + ${i * BM4}u][c] = px${r}.${q};`).join(' ')}`));
    } else {
      const count = BM * BK;
      for (let r = 0; r < Math.ceil(count / T); r++) decls.push(`var px${r} = 0.0;`);
      loads.push(perThread(count, T, (r) => `let gm = m0 + idx / ${BK}u; let gk = k0 + idx % ${BK}u;
    px${r} = 0.0; if (gm < u.M && gk < u.K) { px${r} = x[gm * u.K + gk]; }`));
      stores.push(perThread(count, T, (r) => `let mm = idx / ${BK}u; As[ab + (idx % ${BK}u) * ${BM4}u + mm / 4u][mm % 4u] = px${r};`));
    }
    // W tile: (tileK, tileN) of W (or of Wᵀ), stored k-major: Bs[buf][k][n / 4][n % 4].
    if (q8 && vecW) {
      // rows of W (N, K): each load is 16 consecutive k of one n, dequantised (16 floats in registers)
      const count = (BN * BK) / 16;
      const kq = BK / 16;
      // the raw word and scale wait in registers (the loads stay in flight); they are dequantised at the store
      for (let r = 0; r < Math.ceil(count / T); r++) decls.push(`var pw${r} = vec4<u32>(0u); var ps${r} = 0.0;`);
      loads.push(perThread(count, T, (r) => `let gk = k0 + 16u * (idx % ${kq}u);
    pw${r} = vec4<u32>(0u); ps${r} = 0.0; ${rowLoad(`idx / ${kq}u`, 'gk < u.K', (row, src) => `let e = ${row} * u.K + gk; pw${r} = ${src.q}Word(e); ps${r} = ${src.q}Scale(e);`)}`));
      stores.push(perThread(count, T, (r) => `let nn = idx / ${kq}u; let s = bb + 16u * (idx % ${kq}u) * ${BN4}u + nn / 4u; let c = nn % 4u; let q = loadW16Dequant(pw${r}, ps${r});
    ${Array.from({ length: 16 }, (_, i) => `Bs[s + ${i * BN4}u][c] = q[${i >> 2}].${comp[i & 3]};`).join(' ')}`));
    } else if (transposeB && vecW) {
      // rows of W (N, K): each load is 4 (f32) or 8 (packed) consecutive k of one n
      const count = (BN * BK) / perWord;
      const kq = BK / perWord;
      for (let r = 0; r < Math.ceil(count / T); r++) decls.push(`var pw${r} = vec4<${packed ? 'u32' : 'f32'}>(${packed ? '0u' : '0.0'});`);
      loads.push(perThread(count, T, (r) => `let gk = k0 + ${perWord}u * (idx % ${kq}u);
    pw${r} = vec4<${packed ? 'u32' : 'f32'}>(${packed ? '0u' : '0.0'}); ${rowLoad(`idx / ${kq}u`, 'gk < u.K', (row, src) => `pw${r} = ${src.buf}[(${row} * u.K + gk) / ${perWord}u];`)}`));
      stores.push(perThread(count, T, (r) => {
        const vals = packed
          ? comp.flatMap((q) => [`un(pw${r}.${q}).x`, `un(pw${r}.${q}).y`])
          : comp.map((q) => `pw${r}.${q}`);
        return `let nn = idx / ${kq}u; let s = bb + ${perWord}u * (idx % ${kq}u) * ${BN4}u + nn / 4u; let c = nn % 4u;
    ${vals.map((v, i) => `Bs[s + ${i * BN4}u][c] = ${v};`).join(' ')}`;
      }));
    } else if (transposeB) {
      const count = BN * BK;
      for (let r = 0; r < Math.ceil(count / T); r++) decls.push(`var pw${r} = 0.0;`);
      loads.push(perThread(count, T, (r) => `let gk = k0 + idx % ${BK}u;
    pw${r} = 0.0; ${rowLoad(`idx / ${BK}u`, 'gk < u.K', (row, src) => `pw${r} = ${src.fn}(${row} * u.K + gk);`)}`));
      stores.push(perThread(count, T, (r) => `let nn = idx / ${BK}u; Bs[bb + (idx % ${BK}u) * ${BN4}u + nn / 4u][nn % 4u] = pw${r};`));
    } else if (vecW) {
      // rows of W (K, N): each load is 4 (f32) or 8 (packed) consecutive n of one k, stored as 1 or 2 vec4s
      const count = (BK * BN) / perWord;
      const nq = BN / perWord;
      for (let r = 0; r < Math.ceil(count / T); r++) decls.push(`var pw${r} = vec4<${packed ? 'u32' : 'f32'}>(${packed ? '0u' : '0.0'});`);
      loads.push(perThread(count, T, (r) => `let gk = k0 + idx / ${nq}u; let gn = n0 + ${perWord}u * (idx % ${nq}u);
    pw${r} = vec4<${packed ? 'u32' : 'f32'}>(${packed ? '0u' : '0.0'}); if (gk < u.K && gn < u.N) { pw${r} = w[(gk * u.N + gn) / ${perWord}u]; }`));
      stores.push(perThread(count, T, (r) => {
        const s = `bb + (idx / ${nq}u) * ${BN4}u + ${perWord / 4}u * (idx % ${nq}u)`;
        return packed
          ? `let s = ${s}; Bs[s] = vec4<f32>(un(pw${r}.x), un(pw${r}.y)); Bs[s + 1u] = vec4<f32>(un(pw${r}.z), un(pw${r}.w));`
          : `Bs[${s}] = pw${r};`;
      }));
    } else {
      const count = BK * BN;
      for (let r = 0; r < Math.ceil(count / T); r++) decls.push(`var pw${r} = 0.0;`);
      loads.push(perThread(count, T, (r) => `let gk = k0 + idx / ${BN}u; let gn = n0 + idx % ${BN}u;
    pw${r} = 0.0; if (gk < u.K && gn < u.N) { pw${r} = loadW(gk * u.N + gn); }`));
      stores.push(perThread(count, T, (r) => `let nn = idx % ${BN}u; Bs[bb + (idx / ${BN}u) * ${BN4}u + nn / 4u][nn % 4u] = pw${r};`));
    }
    // Thread (tx, ty) owns rows 4·(g·TY + ty) + c and columns 4·(h·TX + tx) + j: its vec4 reads of a
    // k-row are TY (TX) apart, so a warp's reads of Bs are consecutive 16-byte words.
    const acc = (g: number, c: number, h: number) => `acc${g * 4 + c}_${h}`;
    const accDecls: string[] = [];
    const fmas: string[] = [];
    for (let g = 0; g < G; g++) for (let c = 0; c < 4; c++) for (let h = 0; h < H; h++) accDecls.push(`var ${acc(g, c, h)} = vec4<f32>(0.0);`);
    for (let g = 0; g < G; g++) fmas.push(`let a${g} = As[ak + ${g * TY}u];`);
    for (let h = 0; h < H; h++) fmas.push(`let b${h} = Bs[bk + ${h * TX}u];`);
    for (let g = 0; g < G; g++) for (let c = 0; c < 4; c++) for (let h = 0; h < H; h++) fmas.push(`${acc(g, c, h)} = fma(b${h}, vec4<f32>(a${g}.${comp[c]}), ${acc(g, c, h)});`);
    const writes: string[] = [];
    for (let g = 0; g < G; g++) {
      for (let c = 0; c < 4; c++) {
        const row: string[] = [];
        if (glu) {
          // column groups h (gate) and h + H/2 (up) hold the same features n0 + 4·(h·TX + tx) + j
          for (let h = 0; h < H / 2; h++) {
            const v = `act4(${acc(g, c, h)}) * ${acc(g, c, h + H / 2)}`;
            row.push(vecY
              ? `{ let n = n0 + ${4 * h * TX}u + 4u * tx; if (n < u.N) { y[(m * u.N + n) / 4u] = ${v}; } }`
              : `{ let n = n0 + ${4 * h * TX}u + 4u * tx; let v = ${v}; ${comp.map((q, j) => `if (n + ${j}u < u.N) { y[m * u.N + n + ${j}u] = v.${q}; }`).join(' ')} }`);
          }
          writes.push(`  { let m = m0 + ${4 * g * TY + c}u + 4u * ty; if (m < u.M) {\n    ${row.join('\n    ')}\n  } }`);
          continue;
        }
        // y: the output; its element (m, n) at `at(n)` (stack: y_sel (M, N_sel), or column co + n of the partials)
        const store = (yb: string, at: (n: string) => string) => {
          const out: string[] = [];
          for (let h = 0; h < H; h++) {
            const a = acc(g, c, h);
            if (vecY) {
              const b = bias ? ` + vec4<f32>(bias[n], bias[n + 1u], bias[n + 2u], bias[n + 3u])` : '';
              out.push(`{ let n = n0 + ${4 * h * TX}u + 4u * tx; if (n < ${NL}) { ${yb}[(${at('n')}) / 4u] = ${a}${b}; } }`);
            } else {
              out.push(`{ let n = n0 + ${4 * h * TX}u + 4u * tx; ${comp.map((q, j) => `if (n + ${j}u < ${NL}) { ${yb}[${at(`n + ${j}u`)}] = ${a}.${q}${bias ? ` + bias[n + ${j}u]` : ''}; }`).join(' ')} }`);
            }
          }
          return out.join('\n    ');
        };
        if (stack && !split) row.push(pick((i) => store(`y${i}`, (n) => `m * nw + ${n}`)));
        else if (stack) row.push(store('y', (n) => `yo + m * u.N + co + ${n}`));
        else row.push(store('y', (n) => `yo + m * u.N + ${n}`));
        writes.push(`  { let m = m0 + ${4 * g * TY + c}u + 4u * ty; if (m < u.M) {\n    ${row.join('\n    ')}\n  } }`);
      }
    }
    const act = glu ? `${wgslActivations()}
fn act4(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(${glu}_(v.x), ${glu}_(v.y), ${glu}_(v.z), ${glu}_(v.w)); }` : '';
    return `${wgslBindings(uniformLayout, bindings)}
${act}
${!vecW ? wgslLoadFloat('loadW', 'w', wDtype) : ''}
${!vecW && glu ? wgslLoadFloat('loadU', 'w2', wDtype) : ''}
${!vecW && stack ? stack.slice(1).map((_, i) => wgslLoadFloat(`loadW${i + 1}`, `w${i + 1}`, wDtype)).join('\n') : ''}
${q8 && vecW ? wgslLoadQ8x16('loadW16', 'w') : ''}
${q8 && vecW && glu ? wgslLoadQ8x16('loadU16', 'w2') : ''}
${q8 && vecW && stack ? stack.slice(1).map((_, i) => wgslLoadQ8x16(`loadW${i + 1}_16`, `w${i + 1}`)).join('\n') : ''}
${packed && vecW ? `fn un(p: u32) -> vec2<f32> { return ${unpack}; }` : ''}
const BK = ${BK}u;
var<workgroup> As: array<vec4<f32>, ${2 * BK * BM4}>; // two (tileK, tileM) tiles of x, k-major
var<workgroup> Bs: array<vec4<f32>, ${2 * BK * BN4}>; // two (tileK, tileN) tiles of W, k-major
@compute @workgroup_size(${TX}, ${TY}, 1)
fn main(${WGSL_BUILTINS}) {
  let tx = lid.x;
  let ty = lid.y;
  let m0 = wid.x * ${BM}u;
  ${stack
    ? `// the workgroup's weight: N-tiles [0, T1) are W0's, [T1, T2) W1's${W > 2 ? ', [T2, ..) W2\'s' : ''}
  let sel = ${W > 2 ? 'select(select(0u, 1u, wid.y >= u.T1), 2u, wid.y >= u.T2)' : 'select(0u, 1u, wid.y >= u.T1)'};
  let n0 = (wid.y - select(select(0u, u.T1, sel == 1u), u.T2, sel == 2u)) * ${BN}u; // the tile's first row of its weight
  let nw = select(select(u.N0, u.N1, sel == 1u), u.N2, sel == 2u); // that weight's rows (output features)
  let co = select(select(0u, u.N0, sel == 1u), u.N0 + u.N1, sel == 2u); // its first column of the partials`
    : `let n0 = wid.y * ${glu ? HALF : BN}u;${glu ? ' // the first of the tile\'s tileN / 2 features' : ''}`}
  ${split
    ? `// slice wid.z of K: [kb, kb + KS) (KS a multiple of BK, so no K-tile crosses into the next slice)
  let kb = wid.z * u.KS;
  let steps = select(0u, (min(u.K, kb + u.KS) - kb + BK - 1u) / BK, kb < u.K);
  let yo = wid.z * u.M * u.N; // this slice's partial product`
    : `let kb = 0u;
  let steps = (u.K + BK - 1u) / BK;
  let yo = 0u;`}
  ${decls.join('\n  ')}
  ${accDecls.join('\n  ')}
  var k0 = kb;
${loads.join('\n')}
  for (var t = 0u; t < steps; t++) {
    // Tile t goes into buffer t % 2, last read by the multiply of tile t − 2, which every thread
    // finished before the barrier of step t − 1: one barrier per step suffices.
    let cur = t & 1u;
    {
      let ab = cur * ${BK * BM4}u;
      let bb = cur * ${BK * BN4}u;
${stores.join('\n')}
    }
    workgroupBarrier();
    if (t + 1u < steps) {
      k0 = kb + (t + 1u) * BK; // tile t + 1's global loads are in flight during tile t's multiply
${loads.join('\n')}
    }
    let ar = cur * ${BK * BM4}u + ty;
    let br = cur * ${BK * BN4}u + tx;
    ${config.unrollK
      ? Array.from({ length: BK }, (_, k) => `{
      let ak = ar + ${k * BM4}u;
      let bk = br + ${k * BN4}u;
      ${fmas.join('\n      ')}
    }`).join('\n    ')
      : `for (var k = 0u; k < BK; k++) {
      let ak = ar + k * ${BM4}u;
      let bk = br + k * ${BN4}u;
      ${fmas.join('\n      ')}
    }`}
  }
${writes.join('\n')}
}`;
  });
  if (stack) {
    const uniforms = stackedMatmulUniforms(shape.M, shape.K, stack, BN, split ? splitKSlice(shape.K, S, BK) : 0);
    const tiles = W > 2 ? uniforms.T2 + Math.ceil(uniforms.N2 / BN) : uniforms.T2;
    return { name: 'matmul_tiled_stack', cacheKey, wgsl, workgroupSize: [TX, TY, 1], dispatch: [Math.ceil(shape.M / BM), tiles, S], bindings, uniformLayout, uniforms };
  }
  return {
    name: 'matmul_tiled_rb',
    cacheKey,
    wgsl,
    workgroupSize: [TX, TY, 1],
    dispatch: [Math.ceil(shape.M / BM), Math.ceil(shape.N / (glu ? HALF : BN)), S],
    bindings,
    uniformLayout,
    uniforms: split ? { M: shape.M, N: shape.N, K: shape.K, KS: splitKSlice(shape.K, S, BK) } : glu ? { M: shape.M, N: shape.N, K: shape.K, upRows: 0 } : { M: shape.M, N: shape.N, K: shape.K },
  };
}

/**
 * Input features per slice of a split-K product: ⌈K / S⌉ rounded up to whole K-tiles.
 *
 * @example
 * ```ts
 * splitKSlice(1024, 4, 16); // 256
 * splitKSlice(1000, 3, 16); // 336 (the last slice gets 328)
 * ```
 */
export function splitKSlice(K: number, S: number, tileK: number): number {
  return Math.ceil(Math.ceil(K / S) / tileK) * tileK;
}

const reduceLayout = { MN: 'u32', N: 'u32', S: 'u32' } as const satisfies UniformLayout;
// stack: N = N0 + N1 + N2 columns of the partials, routed to y0 (the first N0), y1 (the next N1) and y2
const stackReduceLayout = { MN: 'u32', N: 'u32', S: 'u32', N0: 'u32', N1: 'u32', N2: 'u32' } as const satisfies UniformLayout;

/**
 * Sums the S partial products of a split-K {@link createTiledMatmulKernel} (part (S, M, N)) into
 * y (M, N), plus the bias. One thread per output (per 4 outputs when N % 4 == 0), the S partials
 * read in order, so the sum is deterministic.
 * Bindings: part, (bias), y. With `stack` (the output widths N0, N1 (, N2) of a stacked product,
 * {@link TiledMatmulAttrs.stack}): part, y0, y1, (y2), each output routed by its column of part (no bias).
 *
 * @example
 * ```ts
 * runtime.run(createTiledMatmulKernel({ M, N, K }, config, { splitK: 4 }), [x, w, part]); // part: (4, M, N)
 * runtime.run(createSplitKReduceKernel({ M, N, S: 4 }, { bias: true }), [part, b, y]);
 * runtime.run(createSplitKReduceKernel({ M, N: N0 + N1, S: 4 }, { stack: [N0, N1] }), [part2, y0, y1]);
 * ```
 */
export function createSplitKReduceKernel(shape: { M: number; N: number; S: number }, attrs: { bias?: boolean; stack?: readonly number[] } = {}): KernelDescriptor {
  const bias = attrs.bias ?? false;
  const stack = attrs.stack;
  if (stack) {
    if (stack.length < 2 || stack.length > MAX_STACKED_WEIGHTS || !stack.every((n) => Number.isInteger(n) && n > 0) || bias) {
      throw new StatespaceError('INVALID_ARGUMENT', `createSplitKReduceKernel: stack takes 2 to ${MAX_STACKED_WEIGHTS} positive output widths and no bias, got [${stack.join(',')}]${bias ? ' with a bias' : ''}`);
    }
    if (stack.reduce((x, y) => x + y, 0) !== shape.N) {
      throw new StatespaceError('SHAPE_MISMATCH', `createSplitKReduceKernel: stack [${stack.join(',')}] does not sum to N=${shape.N}`);
    }
  }
  const vec = stack ? stack.every((n) => n % 4 === 0) : shape.N % 4 === 0;
  const w = vec ? 4 : 1;
  const t = vec ? 'vec4<f32>' : 'f32';
  const W = stack?.length ?? 0;
  const bindings: BindingDecl[] = [
    { name: 'part', type: t, access: 'read' }, // (S, M, N)
    ...(bias ? [{ name: 'bias', type: 'f32', access: 'read' } as const] : []), // (N)
    ...(stack
      ? stack.map((_, i) => ({ name: `y${i}`, type: t, access: 'read_write' }) as const) // (M, Ni)
      : [{ name: 'y', type: t, access: 'read_write' } as const]), // (M, N)
  ];
  const cacheKey = `${vec ? 'v' : 's'}|${bias ? 'b' : ''}${stack ? `|stack${W}` : ''}`;
  const wgsl = memoWgsl('matmul_splitk_reduce', cacheKey, () => {
    const b = !bias ? '' : vec ? ' + vec4<f32>(bias[n], bias[n + 1u], bias[n + 2u], bias[n + 3u])' : ' + bias[n]';
    // stack: column n of row r goes to y0, y1 or y2 (vec4s never straddle two: every Ni is a multiple of 4 then)
    const route = `let r = (i * ${w}u) / u.N;
  if (n < u.N0) { y0[(r * u.N0 + n) / ${w}u] = s; }
  ${W > 2 ? `else if (n < u.N0 + u.N1) { y1[(r * u.N1 + n - u.N0) / ${w}u] = s; }
  else { y2[(r * u.N2 + n - u.N0 - u.N1) / ${w}u] = s; }` : `else { y1[(r * u.N1 + n - u.N0) / ${w}u] = s; }`}`;
    return `${wgslBindings(stack ? stackReduceLayout : reduceLayout, bindings)}
@compute @workgroup_size(256, 1, 1)
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * 256u + li; // an output (${vec ? '4 outputs' : 'one'}) of (M, N)
  if (i >= u.MN) { return; }
  let n = (i * ${w}u) % u.N;
  var s = part[i];
  for (var z = 1u; z < u.S; z++) { s += part[z * u.MN + i]; }
  ${stack ? route : `y[i] = s${b};`}
}`;
  });
  const MN = (shape.M * shape.N) / w;
  const [N0 = 0, N1 = 0, N2 = 0] = stack ?? [];
  return {
    name: stack ? 'matmul_splitk_reduce_stack' : 'matmul_splitk_reduce',
    cacheKey,
    wgsl,
    workgroupSize: [256, 1, 1],
    dispatch: linearDispatch(Math.ceil(MN / 256)),
    bindings,
    uniformLayout: stack ? stackReduceLayout : reduceLayout,
    uniforms: stack ? { MN, N: shape.N, S: shape.S, N0, N1, N2 } : { MN, N: shape.N, S: shape.S },
  };
}
