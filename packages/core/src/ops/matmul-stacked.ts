/**
 * Several products of one input in one tiled dispatch: y_i = x · W_iᵀ for 2 or 3 weights W_i (N_i, K) of
 * one dtype (an attention layer's q, k and v projections), with {@link createTiledMatmulKernel}'s `stack`:
 * x is read by one kernel instead of three, and one launch (plus, with split-K, one reduce) replaces three.
 *
 * Shape glossary (the project glossary, packages/core/README.md):
 *   M  rows of x (tokens)        K  input features        N  output features (Ni of weight i, their sum N)
 *   S  K slices of a split-K product
 */
import { StatespaceError } from '../errors.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { usesTiledMatmul } from './matmul.js';
import { MAX_STACKED_WEIGHTS, TILED_MATMUL_UNROLLED, type TiledMatmulChoice, type TiledMatmulConfig, type TiledMatmulTarget, chooseTiledMatmul, tiledMatmulProfile, tiledMatmulStorageBytes, tiledMatmulThreads, createSplitKReduceKernel, createTiledMatmulKernel } from './matmul-tiled.js';

const STACK_DTYPES = new Set(['f32', 'f16', 'bf16', 'q8']);

/**
 * y_i = x · W_iᵀ for x (..., K) and 2 or 3 weights W_i (N_i, K) of one dtype, in one tiled dispatch
 * ({@link createTiledMatmulKernel}'s `stack`): outputs (..., N_i), in the order of `weights`. The tile and
 * the split-K are {@link chooseTiledMatmul}'s for the (M, N0 + N1 + N2) product; with split-K the partials
 * go through one stacked reduce ({@link createSplitKReduceKernel} with `stack`). Returns null where the plain
 * tiled product would not run either ({@link usesTiledMatmul}: decode-sized rows, software adapters) unless
 * `config` forces a tile (then unsplit unless `splitK` is given), or where the weights do not fit (not 2-D,
 * K that differs from x's, dtypes that differ, more buffers than the device binds per stage). No biases: a
 * caller with biases runs its own products.
 *
 * @example
 * ```ts
 * const [q, k, v] = stackedMatmul(rt, x, [w['q_proj.weight'], w['k_proj.weight'], w['v_proj.weight']])
 *   ?? [matmul(rt, x, w['q_proj.weight']), matmul(rt, x, w['k_proj.weight']), matmul(rt, x, w['v_proj.weight'])];
 * ```
 */
export function stackedMatmul(runtime: Runtime, x: TensorLike, weights: readonly TensorLike[], options: { config?: TiledMatmulConfig; splitK?: number } = {}): Tensor[] | null {
  if (weights.length < 2 || weights.length > MAX_STACKED_WEIGHTS) {
    throw new StatespaceError('INVALID_ARGUMENT', `stackedMatmul: takes 2 to ${MAX_STACKED_WEIGHTS} weights, got ${weights.length}`);
  }
  const forced = options.splitK;
  if (forced !== undefined && (!Number.isInteger(forced) || forced < 1)) {
    throw new StatespaceError('INVALID_ARGUMENT', `stackedMatmul: splitK must be a positive integer, got ${forced}`);
  }
  const K = x.shape[x.shape.length - 1];
  const M = K > 0 ? x.size / K : 0;
  const dtype = weights[0].dtype;
  if (x.dtype !== 'f32' || !STACK_DTYPES.has(dtype)) return null;
  if (!weights.every((w) => w.shape.length === 2 && w.shape[1] === K && w.shape[0] > 0 && w.dtype === dtype)) return null;
  if (M === 0 || (!options.config && !usesTiledMatmul(runtime, M))) return null;
  if (1 + 2 * weights.length > runtime.limits.maxStorageBuffersPerShaderStage) return null;
  const Ns = weights.map((w) => w.shape[0]);
  const N = Ns.reduce((a, b) => a + b, 0);
  const choice = options.config ? { config: options.config, splitK: 1 } : chooseStackedMatmul({ M, N, K }, runtime);
  const S = forced ?? choice.splitK;
  const ys = Ns.map((n, i) => runtime.empty([...x.shape.slice(0, -1), n], 'f32', `stackedMatmul.y${i}`));
  const kernel = createTiledMatmulKernel({ M, N, K }, choice.config, { weightDtype: dtype, stack: Ns, splitK: S });
  if (S > 1) {
    // K in S slices: the partials (S, M, N), weight i in its columns of each row, then one reduce into the y_i
    const part = runtime.empty([S, M, N], 'f32', 'stackedMatmul.partials');
    runtime.run(kernel, [x, ...weights, part]);
    runtime.run(createSplitKReduceKernel({ M, N, S }, { stack: Ns }), [part, ...ys]);
    part.dispose();
  } else {
    runtime.run(kernel, [x, ...weights, ...ys]);
  }
  return ys;
}

/**
 * The tile and split-K of a stacked (M, N0 + N1 + N2, K) product: {@link chooseTiledMatmul}'s, except on the
 * NVIDIA profile for short prompts (M <= 1024), where 64x64 tiles, in 2 K-slices while they are fewer than 256,
 * ran llama-350m's q/k/v at 512 tokens in 70 µs against 81 for the plain rule's 128x128 in 4 slices
 * (`bench/results/h200-stacked-probe.log`), and the whole prefill at 512 in 14.6 ms of GPU time against 15.0
 * (`h200-prefill-tile-rules-ab.log`), level at 1,024 and for granite-hybrid-350m.
 *
 * @example
 * ```ts
 * chooseStackedMatmul({ M: 512, N: 1536, K: 1024 }, rt); // { config: 64x64 (unrolled), splitK: 2 } on an NVIDIA GPU
 * ```
 */
export function chooseStackedMatmul(shape: { M: number; N: number; K: number }, target: TiledMatmulTarget = {}): TiledMatmulChoice {
  const { M, N, K } = shape;
  const c = TILED_MATMUL_UNROLLED['64x64'];
  const lim = target.limits;
  const fits = !lim || (tiledMatmulStorageBytes(c) <= lim.maxComputeWorkgroupStorageSize && tiledMatmulThreads(c) <= lim.maxComputeInvocationsPerWorkgroup);
  if (tiledMatmulProfile(target.info).name === 'nvidia' && M <= 1024 && fits) {
    const tiles = Math.ceil(M / c.tileM) * Math.ceil(N / c.tileN);
    return { config: c, splitK: tiles < 256 && K >= 2 * 8 * c.tileK ? 2 : 1 };
  }
  return chooseTiledMatmul(shape, target);
}
