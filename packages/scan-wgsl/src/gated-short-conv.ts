/**
 * The gated short convolution of LFM2 (Liquid's `Lfm2ShortConv`): a depthwise causal conv1d
 * whose input is gated by B and whose output is gated by C, all three read in place from
 * in_proj's output, with a rolling state of the last k-1 gated inputs.
 *
 * Shape glossary:
 *   b  batch      L  seqlen (tokens in this call)      c  channels (hidden_size)
 *   k  kernel width (conv_L_cache, usually 3); the state keeps the previous k-1 gated inputs
 *
 *   BCx = in_proj(h)                          (b, L, 3c)  = [B | C | x] per token
 *   u[b, τ, c] = B[b, τ, c] · x[b, τ, c]      (the conv's input; state[b, c, (k-1) + τ] for τ < 0)
 *   y[b, t, c] = C[b, t, c] · (bias[c] + Σ_{j<k} w[c, j] · u[b, t - (k-1) + j, c])
 *
 * This is transformers' `C * conv(B * x)[..., :seqlen]` (padding k-1, no activation), continued
 * across calls like its cached decode. After the call the state holds the last k-1 values of u.
 * Three kernels as in {@link causalConv1d}: `parallel` (one thread per output element, u recomputed
 * per tap) then `state` (one thread per (b, c)), or `sequential` (one thread per (b, c) walking
 * the tokens with the window in registers: one dispatch, used for decode).
 */
import {
  type DType,
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  StatespaceError,
  WGSL_BUILTINS,
  assertArg,
  linearDispatch,
  memoWgsl,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
} from '@statespace/core';
import { type CausalConv1dMode, causalConvBody, runConvKernels } from './causal-conv1d.js';

/** Attributes of a gated short conv kernel (everything that changes its WGSL). */
export interface GatedShortConvAttrs {
  mode: CausalConv1dMode;
  /** Kernel width k. */
  kernelSize: number;
  weightDtype?: DType;
  /** Storage type of the bias; omit for no bias. */
  biasDtype?: DType;
}

/** Sizes of one gated short conv call. */
export interface GatedShortConvShape {
  batch: number;
  seqlen: number;
  channels: number;
}

const THREADS = 256;
const layout = { batch: 'u32', L: 'u32', C: 'u32' } as const satisfies UniformLayout;

/**
 * Builds one of the gated short conv kernels.
 *
 * @example
 * ```ts
 * const k = createGatedShortConvKernel({ batch: 1, seqlen: 37, channels: 64 }, { mode: 'parallel', kernelSize: 3 });
 * console.log(k.wgsl); // pure: no GPU needed
 * ```
 */
export function createGatedShortConvKernel(shape: GatedShortConvShape, attrs: GatedShortConvAttrs): KernelDescriptor {
  const K = attrs.kernelSize;
  assertArg(Number.isInteger(K) && K >= 1 && K <= 64, 'gatedShortConv', `kernel size must be an integer in [1, 64], got ${K}`);
  assertArg(attrs.mode !== 'state' || K > 1, 'gatedShortConv', 'the state kernel needs a kernel size above 1');
  const wDtype = attrs.weightDtype ?? 'f32';
  const hasBias = attrs.biasDtype !== undefined;
  const mode = attrs.mode;
  const bindings =
    mode === 'state'
      ? ([
          { name: 'bcx', type: 'f32', access: 'read' }, // (b, L, 3c)
          { name: 'state', type: 'f32', access: 'read_write' }, // (b, c, k-1)
        ] as const)
      : ([
          { name: 'bcx', type: 'f32', access: 'read' }, // (b, L, 3c)
          { name: 'w', type: wgslStorageType(wDtype), access: 'read' }, // (c, k)
          ...(hasBias ? [{ name: 'bias', type: wgslStorageType(attrs.biasDtype!), access: 'read' } as const] : []), // (c)
          { name: 'state', type: 'f32', access: mode === 'sequential' ? 'read_write' : 'read' }, // (b, c, k-1)
          { name: 'y', type: 'f32', access: 'read_write' }, // (b, L, c)
        ] as const);
  const head = [
    wgslBindings(layout, bindings),
    mode === 'state' ? '' : wgslLoadFloat('loadW', 'w', wDtype),
    hasBias && mode !== 'state' ? wgslLoadFloat('loadBias', 'bias', attrs.biasDtype!) : '',
    // u = B · x of token row `row` (b * L + τ), channel c
    'fn gatedInput(row: u32, c: u32) -> f32 { let base = row * 3u * u.C; return bcx[base + c] * bcx[base + 2u * u.C + c]; }',
    'fn outGate(row: u32, c: u32) -> f32 { return bcx[row * 3u * u.C + u.C + c]; }',
    `const K = ${K}u;`,
    `const KM1 = ${K - 1}u;`,
  ].join('\n');
  const { body, threads } = causalConvBody(mode, shape, {
    init: hasBias ? 'loadBias(c)' : '0.0',
    input: (row) => `gatedInput(${row}, c)`,
    output: (row, acc) => `outGate(${row}, c) * ${acc}`,
  });
  const cacheKey = `${mode}|k${K}|${wDtype}|${attrs.biasDtype ?? 'nobias'}`;
  const wgsl = memoWgsl(`gated_short_conv_${mode}`, cacheKey, () => `${head}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {${body}
}`);
  return {
    name: `gated_short_conv_${mode}`,
    cacheKey,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(threads / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: { batch: shape.batch, L: shape.seqlen, C: shape.channels },
  };
}

function describe(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * LFM2's gated short conv: bcx (batch, seqlen, 3·channels) = in_proj's output [B | C | x],
 * `weight` the conv's (channels, 1, k) or (channels, k) in f32, f16 or bf16, optional `bias`
 * (channels), continuing from `state` (batch, channels, k-1) and leaving the last k-1 values of
 * B·x in it. Returns C · conv(B · x), (batch, seqlen, channels). seqlen 1 is the decode step.
 *
 * @throws StatespaceError `SHAPE_MISMATCH` / `DTYPE_MISMATCH` naming the input and the expected shape.
 * @example
 * ```ts
 * const state = rt.zeros([1, 64, 2]);                                   // k = 3
 * const bcx = matmul(rt, h, inProjWeight);                              // (1, L, 192)
 * const y = gatedShortConv(rt, bcx, conv.weight, conv.bias, state);     // (1, L, 64), then out_proj
 * ```
 */
export function gatedShortConv(
  runtime: Runtime,
  bcx: TensorLike,
  weight: TensorLike,
  bias: TensorLike | undefined,
  state: TensorLike,
  options: { path?: 'parallel' | 'sequential'; out?: Tensor } = {},
): Tensor {
  const op = 'gatedShortConv';
  if (bcx.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: bcx must be f32, got ${bcx.dtype}`);
  if (bcx.shape.length !== 3 || bcx.shape[2] % 3 !== 0) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: bcx has shape ${describe(bcx.shape)}, expected [batch, seqlen, 3·channels]`);
  }
  const [batch, seqlen, three] = bcx.shape;
  const shape = { batch, seqlen, channels: three / 3 };
  return runConvKernels(runtime, op, shape, bcx, weight, bias, state, options, (mode, attrs) => createGatedShortConvKernel(shape, { ...attrs, mode }));
}

/**
 * CPU reference of {@link gatedShortConv}: the plain loop over tokens. `bcx` is
 * (batch, seqlen, 3·channels) contiguous, `weight` (channels, k), `state` (batch, channels, k-1)
 * is not modified; returns y and the new state.
 *
 * @example
 * ```ts
 * const { y, state } = gatedShortConvReference(bcx, w, b, zeros, { batch: 1, seqlen: 7, channels: 5, kernelSize: 3 });
 * ```
 */
export function gatedShortConvReference(
  bcx: Float32Array,
  weight: Float32Array,
  bias: Float32Array | undefined,
  state: Float32Array,
  dims: { batch: number; seqlen: number; channels: number; kernelSize: number },
): { y: Float32Array; state: Float32Array } {
  const { batch, seqlen: L, channels: C, kernelSize: K } = dims;
  const y = new Float32Array(batch * L * C);
  const next = new Float32Array(batch * C * (K - 1));
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < C; c++) {
      // every gated input this call can see: k-1 from the state, then B·x of each token
      const u: number[] = [];
      for (let j = 0; j < K - 1; j++) u.push(state[(b * C + c) * (K - 1) + j]);
      for (let t = 0; t < L; t++) {
        const row = (b * L + t) * 3 * C;
        u.push(bcx[row + c] * bcx[row + 2 * C + c]);
      }
      for (let t = 0; t < L; t++) {
        let acc = bias ? bias[c] : 0;
        for (let j = 0; j < K; j++) acc += weight[c * K + j] * u[t + j];
        y[(b * L + t) * C + c] = bcx[(b * L + t) * 3 * C + C + c] * acc;
      }
      for (let j = 0; j < K - 1; j++) next[(b * C + c) * (K - 1) + j] = u[L + j];
    }
  }
  return { y, state: next };
}
