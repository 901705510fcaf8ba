/**
 * Depthwise causal conv1d with a rolling conv state (Mamba's short convolution).
 *
 * Shape glossary:
 *   b  batch      L  seqlen (tokens in this call)      c  channels (d_inner for Mamba-1)
 *   k  kernel width (conv_kernel, usually 4); the state keeps the previous k-1 inputs
 *
 * y[b, t, c] = act(bias[c] + Σ_{j<k} w[c, j] · in[b, t - (k-1) + j, c]), where in[b, τ, c] is
 * x[b, τ, c] for τ ≥ 0 and the conv state state[b, c, (k-1) + τ] for τ < 0 (the inputs
 * of earlier calls; zeros at the start). This is transformers' `conv1d(x)[..., :seqlen]`
 * with padding k-1, continued across calls like `causal_conv1d_update`.
 * After the call the state holds the last k-1 inputs seen (of this call and, when
 * L < k-1, of earlier ones), so decoding continues from the prompt.
 *
 * Three kernels: `parallel` (one thread per output element) followed by `state`
 * (one thread per (b, c) rolling the state), and `sequential` (one thread per (b, c)
 * walking the tokens with the window in registers: one dispatch, used for decode).
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
  WGSL_LINEAR_WORKGROUP,
  assertArg,
  linearDispatch,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
  memoWgsl,
} from '@statespace/core';
import { type ColumnSlice, strided } from './columns.js';

/** Activation applied to the conv output. */
export type ConvActivation = 'silu' | 'none';

/** Which of the three conv kernels. */
export type CausalConv1dMode = 'parallel' | 'state' | 'sequential';

/** Attributes of a causal conv1d kernel (everything that changes its WGSL). */
export interface CausalConv1dAttrs {
  mode: CausalConv1dMode;
  /** Kernel width k. */
  kernelSize: number;
  activation?: ConvActivation;
  weightDtype?: DType;
  /** Storage type of the bias; omit for no bias. */
  biasDtype?: DType;
}

/** Sizes of one causal conv1d call. */
export interface CausalConv1dShape {
  batch: number;
  seqlen: number;
  channels: number;
  /** Elements between rows (tokens) of x; `channels` for a contiguous x. */
  xStride?: number;
  /** Element offset of channel 0 in each row of x. */
  xOffset?: number;
}

const THREADS = 256;
/** Calls with at most this many tokens take the one-dispatch sequential kernel (e.g. every decode step). */
export const CONV_SEQUENTIAL_MAX_SEQLEN = 8;
const layout = { batch: 'u32', L: 'u32', C: 'u32', xStride: 'u32', xOffset: 'u32' } as const satisfies UniformLayout;

/**
 * @internal The WGSL body of the three causal conv kernels (`parallel`, `state`, `sequential`),
 * shared with kernels whose conv input or output is computed on the way (LFM2's gated short
 * conv): `input(row)` is the conv input of token row `row` (b · L + τ) and channel `c`, `output(row, acc)`
 * the value written for the conv sum `acc`. The bindings `w`/`loadW`, `state`, `y` and the
 * uniforms batch, L, C and constants K, KM1 are the caller's.
 */
export function causalConvBody(
  mode: CausalConv1dMode,
  shape: { batch: number; seqlen: number; channels: number },
  io: { init: string; input: (row: string) => string; output: (row: string, acc: string) => string },
): { body: string; threads: number } {
  if (mode === 'parallel') {
    return {
      threads: shape.batch * shape.seqlen * shape.channels,
      body: `
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.batch * u.L * u.C) { return; }
  let c = i % u.C;
  let bt = i / u.C;          // b * L + t
  let t = bt % u.L;
  let b = bt / u.L;
  var acc = ${io.init};
  for (var j = 0u; j < K; j++) {
    var v: f32;
    if (t + j >= KM1) {
      v = ${io.input('bt + j - KM1')};
    } else {
      v = state[(b * u.C + c) * KM1 + t + j];
    }
    acc += loadW(c * K + j) * v;
  }
  y[i] = ${io.output('bt', 'acc')};`,
    };
  }
  if (mode === 'state') {
    return {
      threads: shape.batch * shape.channels,
      body: `
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.batch * u.C) { return; }
  let c = i % u.C;
  let b = i / u.C;
  let base = (b * u.C + c) * KM1;
  var old: array<f32, KM1>;
  for (var j = 0u; j < KM1; j++) { old[j] = state[base + j]; }
  // slot j holds input position τ = L - (k-1) + j
  for (var j = 0u; j < KM1; j++) {
    if (u.L + j >= KM1) {
      state[base + j] = ${io.input('b * u.L + u.L + j - KM1')};
    } else {
      state[base + j] = old[u.L + j];
    }
  }`,
    };
  }
  return {
    threads: shape.batch * shape.channels,
    body: `
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.batch * u.C) { return; }
  let c = i % u.C;
  let b = i / u.C;
  let base = (b * u.C + c) * KM1;
  var win: array<f32, K>;    // win[0..k-1) previous inputs, win[k-1] the current one
  var wt: array<f32, K>;
  for (var j = 0u; j < K; j++) { wt[j] = loadW(c * K + j); }
  for (var j = 0u; j < KM1; j++) { win[j] = state[base + j]; }
  let b0 = ${io.init};
  for (var t = 0u; t < u.L; t++) {
    let row = b * u.L + t;
    win[KM1] = ${io.input('row')};
    var acc = b0;
    for (var j = 0u; j < K; j++) { acc += wt[j] * win[j]; }
    y[row * u.C + c] = ${io.output('row', 'acc')};
    for (var j = 0u; j < KM1; j++) { win[j] = win[j + 1u]; }
  }
  for (var j = 0u; j < KM1; j++) { state[base + j] = win[j]; }`,
  };
}

/**
 * Builds one of the causal conv1d kernels.
 * @example
 * ```ts
 * const k = createCausalConv1dKernel({ batch: 1, seqlen: 37, channels: 128 }, { mode: 'parallel', kernelSize: 4, activation: 'silu' });
 * console.log(k.wgsl);
 * ```
 */
export function createCausalConv1dKernel(shape: CausalConv1dShape, attrs: CausalConv1dAttrs): KernelDescriptor {
  const K = attrs.kernelSize;
  assertArg(Number.isInteger(K) && K >= 1 && K <= 64, 'causalConv1d', `kernel size must be an integer in [1, 64], got ${K}`);
  assertArg(attrs.mode !== 'state' || K > 1, 'causalConv1d', 'the state kernel needs a kernel size above 1');
  const wDtype = attrs.weightDtype ?? 'f32';
  const hasBias = attrs.biasDtype !== undefined;
  const act = attrs.activation ?? 'none';
  const mode = attrs.mode;
  const bindings =
    mode === 'state'
      ? ([
          { name: 'x', type: 'f32', access: 'read' }, // (b, L, xStride)
          { name: 'state', type: 'f32', access: 'read_write' }, // (b, c, k-1)
        ] as const)
      : ([
          { name: 'x', type: 'f32', access: 'read' }, // (b, L, xStride)
          { name: 'w', type: wgslStorageType(wDtype), access: 'read' }, // (c, k)
          ...(hasBias ? [{ name: 'bias', type: wgslStorageType(attrs.biasDtype!), access: 'read' } as const] : []), // (c)
          { name: 'state', type: 'f32', access: mode === 'sequential' ? 'read_write' : 'read' }, // (b, c, k-1)
          { name: 'y', type: 'f32', access: 'read_write' }, // (b, L, c)
        ] as const);
  const head = [
    wgslBindings(layout, bindings),
    mode === 'state' ? '' : wgslLoadFloat('loadW', 'w', wDtype),
    hasBias && mode !== 'state' ? wgslLoadFloat('loadBias', 'bias', attrs.biasDtype!) : '',
    `fn act_(v: f32) -> f32 { return ${act === 'silu' ? 'v / (1.0 + exp(-v))' : 'v'}; }`,
    `const K = ${K}u;`,
    `const KM1 = ${K - 1}u;`,
  ].join('\n');
  const { body, threads } = causalConvBody(mode, shape, {
    init: hasBias ? 'loadBias(c)' : '0.0',
    input: (row) => `x[(${row}) * u.xStride + u.xOffset + c]`,
    output: (_row, acc) => `act_(${acc})`,
  });
  const wgsl = memoWgsl(`causal_conv1d_${mode}`, `${mode}|k${K}|${act}|${wDtype}|${attrs.biasDtype ?? 'nobias'}`, () => `${head}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {${body}
}`);
  return {
    name: `causal_conv1d_${mode}`,
    cacheKey: `${mode}|k${K}|${act}|${wDtype}|${attrs.biasDtype ?? 'nobias'}`,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(threads / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: {
      batch: shape.batch,
      L: shape.seqlen,
      C: shape.channels,
      xStride: shape.xStride ?? shape.channels,
      xOffset: shape.xOffset ?? 0,
    },
  };
}

/** Options of {@link causalConv1d}. */
export interface CausalConv1dOptions {
  /** Activation on the output (default 'none'; Mamba uses 'silu'). */
  activation?: ConvActivation;
  /** Force a path (default: 'sequential' up to {@link CONV_SEQUENTIAL_MAX_SEQLEN} tokens, else 'parallel'). */
  path?: 'parallel' | 'sequential';
  /** Write the output here instead of a new tensor ((batch, seqlen, channels), f32). */
  out?: Tensor;
}

function describe(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Depthwise causal conv1d over x (batch, seqlen, channels), channels-last, continuing
 * from `state` (batch, channels, k-1) and leaving the last k-1 inputs in it.
 * `weight` is transformers' `conv1d.weight`, (channels, 1, k) or (channels, k), in
 * f32, f16 or bf16; `bias` (channels) is optional. x may be a {@link ColumnSlice}
 * of a wider tensor (e.g. the x half of in_proj's output). seqlen 1 is the decode step.
 *
 * @example
 * ```ts
 * const state = rt.zeros([1, 128, 3]);                                  // k = 4
 * const y = causalConv1d(rt, x, conv.weight, conv.bias, state, { activation: 'silu' });
 * const y1 = causalConv1d(rt, xNext, conv.weight, conv.bias, state, { activation: 'silu' }); // decode
 * ```
 */
export function causalConv1d(
  runtime: Runtime,
  x: TensorLike | ColumnSlice,
  weight: TensorLike,
  bias: TensorLike | undefined,
  state: TensorLike,
  options: CausalConv1dOptions = {},
): Tensor {
  const op = 'causalConv1d';
  const xs = strided(x);
  if (xs.tensor.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: x must be f32, got ${xs.tensor.dtype}`);
  if (xs.shape.length !== 3) throw new StatespaceError('SHAPE_MISMATCH', `${op}: x has shape ${describe(xs.shape)}, expected [batch, seqlen, channels]`);
  const [batch, seqlen, channels] = xs.shape;
  const shape: CausalConv1dShape = { batch, seqlen, channels, xStride: xs.rowStride, xOffset: xs.offset };
  const activation = options.activation ?? 'none';
  return runConvKernels(runtime, op, shape, xs.tensor, weight, bias, state, options, (mode, attrs) => createCausalConv1dKernel(shape, { ...attrs, activation, mode }));
}

/**
 * @internal What a depthwise causal conv call checks and runs, shared with LFM2's gated short
 * conv: weight (channels, 1, k) or (channels, k), bias (channels), state (batch, channels, k-1)
 * and the output are checked against `dims`, then the `sequential` kernel runs (up to
 * {@link CONV_SEQUENTIAL_MAX_SEQLEN} tokens) or `parallel` then `state`. `build` makes the kernel
 * of a mode, whose bindings are (input, weight, [bias,] state, y), or (input, state) for `state`.
 */
export function runConvKernels(
  runtime: Runtime,
  op: string,
  dims: { batch: number; seqlen: number; channels: number },
  input: TensorLike,
  weight: TensorLike,
  bias: TensorLike | undefined,
  state: TensorLike,
  options: { path?: 'parallel' | 'sequential'; out?: Tensor },
  build: (mode: CausalConv1dMode, attrs: { kernelSize: number; weightDtype: DType; biasDtype?: DType }) => KernelDescriptor,
): Tensor {
  const { batch, seqlen, channels } = dims;
  const wShape = weight.shape;
  const okWeight = (wShape.length === 3 && wShape[0] === channels && wShape[1] === 1) || (wShape.length === 2 && wShape[0] === channels);
  if (!okWeight) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: weight has shape ${describe(wShape)}, expected [channels=${channels}, 1, k] or [channels=${channels}, k]`);
  }
  const K = wShape[wShape.length - 1];
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== channels)) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: bias has shape ${describe(bias.shape)}, expected [channels=${channels}]`);
  }
  const sShape = state.shape;
  if (sShape.length !== 3 || sShape[0] !== batch || sShape[1] !== channels || sShape[2] !== K - 1) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: state has shape ${describe(sShape)}, expected [batch=${batch}, channels=${channels}, k-1=${K - 1}]`);
  }
  if (state.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: state must be f32, got ${state.dtype}`);
  const y = options.out ?? runtime.empty([batch, seqlen, channels], 'f32', `${op}.y`);
  if (y.size !== batch * seqlen * channels || y.dtype !== 'f32') {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: out has shape ${describe(y.shape)} (${y.dtype}), expected f32 [batch=${batch}, seqlen=${seqlen}, channels=${channels}]`);
  }
  if (batch * seqlen * channels === 0) return y;
  const attrs = { kernelSize: K, weightDtype: weight.dtype, biasDtype: bias?.dtype };
  const path = options.path ?? (seqlen <= CONV_SEQUENTIAL_MAX_SEQLEN ? 'sequential' : 'parallel');
  const withBias = (...ts: TensorLike[]) => (bias ? [ts[0], ts[1], bias, ...ts.slice(2)] : ts);
  if (path === 'sequential') {
    runtime.run(build('sequential', attrs), withBias(input, weight, state, y));
  } else {
    runtime.run(build('parallel', attrs), withBias(input, weight, state, y));
    if (K > 1) runtime.run(build('state', attrs), [input, state]);
  }
  return y;
}

/** Dimensions for {@link causalConv1dReference}. */
export interface CausalConv1dDims {
  batch: number;
  seqlen: number;
  channels: number;
  kernelSize: number;
  activation?: ConvActivation;
}

/**
 * CPU reference: the plain loop over tokens (f64 accumulation). `x` is
 * (batch, seqlen, channels) contiguous, `weight` (channels, k), `state`
 * (batch, channels, k-1) is not modified; returns y and the new state.
 *
 * @example
 * ```ts
 * const { y, state } = causalConv1dReference(x, w, b, zeros, { batch: 1, seqlen: 7, channels: 5, kernelSize: 4, activation: 'silu' });
 * ```
 */
export function causalConv1dReference(
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array | undefined,
  state: Float32Array,
  dims: CausalConv1dDims,
): { y: Float32Array; state: Float32Array } {
  const { batch, seqlen: L, channels: C, kernelSize: K } = dims;
  const silu = dims.activation === 'silu';
  const y = new Float32Array(batch * L * C);
  const next = new Float32Array(batch * C * (K - 1));
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < C; c++) {
      // the whole input history this call can see: k-1 state values, then x
      const seq: number[] = [];
      for (let j = 0; j < K - 1; j++) seq.push(state[(b * C + c) * (K - 1) + j]);
      for (let t = 0; t < L; t++) seq.push(x[(b * L + t) * C + c]);
      for (let t = 0; t < L; t++) {
        let acc = bias ? bias[c] : 0;
        for (let j = 0; j < K; j++) acc += weight[c * K + j] * seq[t + j];
        y[(b * L + t) * C + c] = silu ? acc / (1 + Math.exp(-acc)) : acc;
      }
      for (let j = 0; j < K - 1; j++) next[(b * C + c) * (K - 1) + j] = seq[L + j];
    }
  }
  return { y, state: next };
}
