/**
 * Gated linear unit over a fused projection: y[t, j] = act(a[t, j]) · a[t, I + j],
 * for MLPs whose gate and up projections are stored as one weight
 * (Granite's `input_linear`, Zamba2's `gate_up_proj`).
 *
 * Shape glossary:
 *   T  tokens     I  intermediate features (a has 2I per token)
 */
import { StatespaceError } from '../errors.js';
import { type KernelDescriptor, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, memoWgsl, wgslBindings } from '../kernel.js';
import type { Runtime } from '../runtime.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { unaryReference, wgslActivations } from './elementwise.js';
import { usesTiledMatmul } from './matmul.js';
import { type TiledMatmulConfig, chooseTiledMatmul, createTiledMatmulKernel } from './matmul-tiled.js';

/** Activations a GLU may use. */
export type GluActivation = 'silu' | 'gelu' | 'gelu_tanh';

const layout = { T: 'u32', I: 'u32' } as const satisfies UniformLayout;

/**
 * Builds the split-GLU kernel: y (T, I) = act(a[:, :I]) · a[:, I:] for a (T, 2I).
 *
 * @example
 * ```ts
 * const kernel = createGluKernel({ T: 7, I: 128 }, 'silu');
 * ```
 */
export function createGluKernel(shape: { T: number; I: number }, act: GluActivation): KernelDescriptor {
  const bindings = [
    { name: 'a', type: 'f32', access: 'read' }, // (T, 2I)
    { name: 'y', type: 'f32', access: 'read_write' }, // (T, I)
  ] as const;
  const wgsl = memoWgsl(`glu_${act}`, act, () => `${wgslBindings(layout, bindings)}
${wgslActivations()}
@compute @workgroup_size(256)
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * 256u + li;
  if (i >= u.T * u.I) { return; }
  let t = i / u.I;
  let j = i % u.I;
  y[i] = ${act}_(a[t * 2u * u.I + j]) * a[t * 2u * u.I + u.I + j];
}`);
  return { name: `glu_${act}`, cacheKey: act, wgsl, workgroupSize: [256, 1, 1], dispatch: linearDispatch((shape.T * shape.I) / 256), bindings, uniformLayout: layout, uniforms: shape };
}

/**
 * act(first half) · second half of the last dimension.
 * @example
 * ```ts
 * const h = glu(rt, matmul(rt, x, mlp.input_linear), 'silu'); // (T, I)
 * ```
 */
export function glu(runtime: Runtime, a: TensorLike, act: GluActivation = 'silu'): Tensor {
  const two = a.shape[a.shape.length - 1];
  if (two % 2 !== 0) throw new StatespaceError('SHAPE_MISMATCH', `glu: last dimension of [${a.shape.join(',')}] must be even`);
  const I = two / 2;
  const T = a.size / two;
  const y = runtime.empty([...a.shape.slice(0, -1), I], 'f32', 'glu.y');
  runtime.run(createGluKernel({ T, I }, act), [a, y]);
  return y;
}

/**
 * CPU reference of {@link glu}.
 *
 * @example
 * ```ts
 * gluReference(new Float32Array([1, 2]), 1, 'silu'); // [silu(1) · 2] = [1.462...]
 * ```
 */
export function gluReference(a: Float32Array, I: number, act: GluActivation): Float32Array {
  const T = a.length / (2 * I);
  const y = new Float32Array(T * I);
  for (let t = 0; t < T; t++) for (let j = 0; j < I; j++) y[t * I + j] = unaryReference(act, a[t * 2 * I + j]) * a[t * 2 * I + I + j];
  return y;
}

/** A gated MLP's gate and up weights: separate (I, K) each, or one (2I, K) with the gate rows first. */
export type GluWeights = { gate: TensorLike; up: TensorLike } | { gateUp: TensorLike };

/**
 * act(x · Wgᵀ) · (x · Wuᵀ) for x (..., K) in one tiled product ({@link createTiledMatmulKernel}'s `glu`): a
 * gated MLP's intermediate (..., I) without gate and up written out or a second pass over them. Returns null
 * where the plain tiled product would not run either ({@link usesTiledMatmul}: decode-sized rows, software
 * adapters) unless `config` forces a tile, or where the weights do not fit (dtypes that differ, shapes).
 * The tile is the one {@link chooseTiledMatmul} gives the (M, 2I) product, unsplit, with 8 columns per thread
 * (the kernel pairs a thread's gate and up column groups).
 *
 * @example
 * ```ts
 * const h = gluMatmul(rt, x, { gate: w['gate_proj.weight'], up: w['up_proj.weight'] }, 'silu') // (1, L, I)
 *   ?? binary(rt, matmul(rt, x, w['gate_proj.weight']), matmul(rt, x, w['up_proj.weight']), 'silu_mul');
 * ```
 */
export function gluMatmul(runtime: Runtime, x: TensorLike, weights: GluWeights, act: GluActivation, options: { config?: TiledMatmulConfig } = {}): Tensor | null {
  const K = x.shape[x.shape.length - 1];
  const M = x.size / K;
  const [gate, up, upRows] = 'gateUp' in weights ? [weights.gateUp, weights.gateUp, weights.gateUp.shape[0] / 2] : [weights.gate, weights.up, 0];
  const I = 'gateUp' in weights ? upRows : gate.shape[0];
  if (x.dtype !== 'f32' || gate.shape.length !== 2 || up.shape.length !== 2 || gate.shape[1] !== K || up.shape[1] !== K || gate.dtype !== up.dtype) return null;
  if ('gateUp' in weights ? gate.shape[0] % 2 !== 0 : up.shape[0] !== I) return null;
  if (M === 0 || I === 0 || (!options.config && !usesTiledMatmul(runtime, M))) return null;
  // The plain rule for the (M, 2I) product. (Choosing as for twice the rows, 128x128 from 512 tokens, won in a
  // chain of glu products, bench/results/h200-glu-probe.log, but in the whole prefill llama-350m at 512 tokens ran
  // 15.0 ms of GPU time with it against 14.7 with this rule's 64x128, granite-hybrid-350m 16.0 against 16.1:
  // h200-prefill-tile-rules-ab.log. From 1,024 tokens both rules take 128x128.)
  let config = options.config ?? chooseTiledMatmul({ M, N: 2 * I, K }, runtime).config;
  if ((config.threadN / 4) % 2 !== 0) config = { ...config, threadN: 2 * config.threadN };
  if (config.tileN % config.threadN !== 0) return null;
  const kernel = createTiledMatmulKernel({ M, N: I, K }, config, { weightDtype: gate.dtype, glu: act });
  const y = runtime.empty([...x.shape.slice(0, -1), I], 'f32', 'gluMatmul.y');
  runtime.run({ ...kernel, uniforms: { ...kernel.uniforms, upRows } }, [x, gate, up, y]);
  return y;
}
