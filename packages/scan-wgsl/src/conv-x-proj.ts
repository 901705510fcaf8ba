/**
 * Mamba-1 decode, second dispatch of a layer: the causal conv of the new token and x_proj in one
 * kernel, xdbl = x_proj(silu(conv1d(x))) for one token per sequence (seqlen 1).
 *
 * Shape glossary (packages/core/README.md):
 *   b  batch   D  d_inner (channels)   N  d_state   R  time_step_rank   k  conv_kernel
 *   W  = R + 2N, the rows of x_proj (its output is [time_step | B | C])
 *   RB rows of x_proj per workgroup   LANES threads per workgroup, striding over D
 *
 *   xc[b, c]   = silu(bias[c] + Σ_{j<k-1} w[c, j] · state[b, c, j] + w[c, k-1] · x[b, c])
 *   xdbl[b, r] = Σ_c x_proj[r, c] · xc[b, c]
 * the conv of transformers' `MambaMixer.slow_forward` (`causal_conv1d_update`) followed by x_proj,
 * as {@link causalConv1d} then matmul compute them.
 *
 * Every workgroup needs all D conv outputs of its sequence, so each lane recomputes the conv of the
 * channels it strides over (k + 1 reads per channel, from cache) and uses it for all RB rows; the
 * lanes' partial sums meet in one tree reduction. The conv state is only read here: other
 * workgroups read the same channels. {@link dtScanStep} (the next dispatch) rolls it.
 * The conv taps and bias come from the packed per-channel buffer of {@link packMamba1DecodeParams}.
 *
 * Where the conv already ran in norm + in_proj's epilogue (`convolved`: xz's x half holds
 * silu(conv1d(x)) and the state is rolled), the kernel is x_proj alone on that half, with RB_CONVOLVED
 * rows per workgroup (nothing to recompute, so more workgroups share the rows).
 */
import {
  type BindingDecl,
  type DType,
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  StatespaceError,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  gemvVecWidth,
  linearDispatch,
  matmulReference,
  memoWgsl,
  wgslBindings,
  wgslCompileSizes,
  wgslLoadFloat,
  wgslLoadQ8x16,
  wgslStorageType,
} from '@statespace/core';
import { causalConv1dReference } from './causal-conv1d.js';
import { type ColumnSlice, strided } from './columns.js';
import { decodeParamStride } from './mamba1-decode-params.js';

const LANES = 128;
const RB = 4;
const RB_CONVOLVED = 2;
const layout = { batch: 'u32', D: 'u32', W: 'u32', xStride: 'u32', xOffset: 'u32', PS: 'u32', blocks: 'u32' } as const satisfies UniformLayout;

/** Attributes of the conv + x_proj kernel (what changes its WGSL). */
export interface ConvXProjAttrs {
  /** Conv width k (at least 2: the state holds k-1 inputs). */
  kernelSize: number;
  /** Storage type of x_proj.weight. */
  weightDtype: DType;
  /** Read W in 16-byte words, 4 f32 or 8 f16/bf16 weights (needs D % 4 == 0, or D % 8 == 0 for 16-bit). */
  vec4: boolean;
  /** x is already silu(conv1d(x)) (the conv ran in in_proj's epilogue): x_proj only, no params or state bound. */
  convolved?: boolean;
}

/**
 * Builds the conv + x_proj kernel.
 * @example
 * ```ts
 * const k = createConvXProjKernel({ batch: 1, dInner: 1536, rows: 80, xStride: 3072, xOffset: 0, paramStride: 23 }, { kernelSize: 4, weightDtype: 'f32', vec4: true });
 * ```
 */
export function createConvXProjKernel(
  shape: { batch: number; dInner: number; rows: number; xStride: number; xOffset: number; paramStride: number },
  attrs: ConvXProjAttrs,
): KernelDescriptor {
  const K = attrs.kernelSize;
  const wd = attrs.weightDtype;
  const q8 = wd === 'q8'; // 16 weights per 16-byte word, with their group's scale (core dtype.ts)
  const packed = wd !== 'f32' && !q8;
  const vec = attrs.vec4;
  const convolved = attrs.convolved ?? false;
  const rb = convolved ? RB_CONVOLVED : RB;
  const wType = vec ? (packed || q8 ? 'vec4<u32>' : 'vec4<f32>') : wgslStorageType(wd);
  const bindings: BindingDecl[] = [
    { name: 'xz', type: 'f32', access: 'read' }, // (b, xStride): x at xOffset
    ...(convolved
      ? []
      : ([
          { name: 'params', type: 'f32', access: 'read' }, // (D, PS) packed per-channel weights
          { name: 'state', type: 'f32', access: 'read' }, // (b, D, k-1)
        ] as const)),
    { name: 'w', type: wType, access: 'read' }, // (W, D) x_proj.weight
    { name: 'xdbl', type: 'f32', access: 'read_write' }, // (b, W)
  ];
  const unpack = wd === 'f16' ? 'unpack2x16float(p)' : 'vec2<f32>(bitcast<f32>(p << 16u), bitcast<f32>(p & 0xffff0000u))';
  const load = vec ? (packed ? `fn un(p: u32) -> vec2<f32> { return ${unpack}; }` : q8 ? wgslLoadQ8x16('loadW16', 'w') : '') : wgslLoadFloat('loadW', 'w', wd);
  const loop = vec
    ? q8
      ? `let D16 = u.D / 16u;
  for (var c16 = li; c16 < D16; c16 += LANES) {
    let c = c16 * 16u;
    let v0 = vec4<f32>(xc(b, c), xc(b, c + 1u), xc(b, c + 2u), xc(b, c + 3u));
    let v1 = vec4<f32>(xc(b, c + 4u), xc(b, c + 5u), xc(b, c + 6u), xc(b, c + 7u));
    let v2 = vec4<f32>(xc(b, c + 8u), xc(b, c + 9u), xc(b, c + 10u), xc(b, c + 11u));
    let v3 = vec4<f32>(xc(b, c + 12u), xc(b, c + 13u), xc(b, c + 14u), xc(b, c + 15u));
    for (var r = 0u; r < RB; r++) {
      if (r0 + r < u.W) {
        let q = loadW16((r0 + r) * u.D + c);
        acc[r] += dot(q[0], v0) + dot(q[1], v1) + dot(q[2], v2) + dot(q[3], v3);
      }
    }
  }`
      : packed
      ? `let D8 = u.D / 8u;
  for (var c8 = li; c8 < D8; c8 += LANES) {
    let c = c8 * 8u;
    let v0 = vec4<f32>(xc(b, c), xc(b, c + 1u), xc(b, c + 2u), xc(b, c + 3u));
    let v1 = vec4<f32>(xc(b, c + 4u), xc(b, c + 5u), xc(b, c + 6u), xc(b, c + 7u));
    for (var r = 0u; r < RB; r++) {
      if (r0 + r < u.W) {
        let p = w[(r0 + r) * D8 + c8];
        acc[r] += dot(vec4<f32>(un(p.x), un(p.y)), v0) + dot(vec4<f32>(un(p.z), un(p.w)), v1);
      }
    }
  }`
      : `let D4 = u.D / 4u;
  for (var c4 = li; c4 < D4; c4 += LANES) {
    let c = c4 * 4u;
    let v = vec4<f32>(xc(b, c), xc(b, c + 1u), xc(b, c + 2u), xc(b, c + 3u));
    for (var r = 0u; r < RB; r++) {
      if (r0 + r < u.W) { acc[r] += dot(w[(r0 + r) * D4 + c4], v); }
    }
  }`
    : `for (var c = li; c < u.D; c += LANES) {
    let v = xc(b, c);
    for (var r = 0u; r < RB; r++) {
      if (r0 + r < u.W) { acc[r] += loadW((r0 + r) * u.D + c) * v; }
    }
  }`;
  const blocks = Math.ceil(shape.rows / rb);
  // d_inner, the rows and the param stride compiled in: the channel loops unroll and their loads issue together
  const sizes = { D: shape.dInner, W: shape.rows, PS: shape.paramStride, blocks };
  const cacheKey = `k${K}|${wd}|${vec ? 'v4' : 's'}|${convolved ? 'c|' : ''}${shape.dInner}x${shape.rows}x${shape.paramStride}`;
  const xcFn = convolved
    ? `// channel c of sequence b, convolved already (silu(conv) from in_proj's epilogue)
fn xc(b: u32, c: u32) -> f32 { return xz[b * u.xStride + u.xOffset + c]; }`
    : `// silu(conv) of channel c of sequence b, summed in the order of causal_conv1d's sequential kernel
fn xc(b: u32, c: u32) -> f32 {
  let p = c * u.PS;
  let s = (b * u.D + c) * KM1;
  var acc = params[p + K];
  for (var j = 0u; j < KM1; j++) { acc += params[p + j] * state[s + j]; }
  acc += params[p + KM1] * xz[b * u.xStride + u.xOffset + c];
  return acc / (1.0 + exp(-acc));
}`;
  const wgsl = memoWgsl('mamba1_conv_x_proj', cacheKey, () => wgslCompileSizes(`${wgslBindings(layout, bindings)}
${load}
const K = ${K}u;
const KM1 = ${K - 1}u;
const LANES = ${LANES}u;
const RB = ${rb}u;
var<workgroup> part: array<f32, ${rb * LANES}>; // (RB, LANES)
${xcFn}
@compute @workgroup_size(${LANES})
fn main(${WGSL_BUILTINS}) {
  let g = ${WGSL_LINEAR_WORKGROUP};
  if (g >= u.batch * u.blocks) { return; }
  let b = g / u.blocks;
  let r0 = (g % u.blocks) * RB;
  var acc: array<f32, ${rb}>;
  ${loop}
  for (var r = 0u; r < RB; r++) { part[r * LANES + li] = acc[r]; }
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      for (var r = 0u; r < RB; r++) { part[r * LANES + li] += part[r * LANES + li + s]; }
    }
    workgroupBarrier();
  }
  if (li < RB && r0 + li < u.W) { xdbl[b * u.W + r0 + li] = part[li * LANES]; }
}`, sizes));
  return {
    name: 'mamba1_conv_x_proj',
    cacheKey,
    wgsl,
    workgroupSize: [LANES, 1, 1],
    dispatch: linearDispatch(shape.batch * blocks),
    bindings,
    uniformLayout: layout,
    uniforms: { batch: shape.batch, D: shape.dInner, W: shape.rows, xStride: shape.xStride, xOffset: shape.xOffset, PS: shape.paramStride, blocks },
  };
}

/** Inputs of {@link convXProj}. */
export interface ConvXProjInputs {
  /** (batch, 1, D), f32: in_proj's x half, usually `columns(xz, 0, D)`. */
  x: TensorLike | ColumnSlice;
  /** The packed per-channel weights of {@link packMamba1DecodeParams} (not read when `convolved`). */
  params?: TensorLike;
  /** (batch, D, k-1), f32: the conv state (read, not updated); absent when `convolved`. */
  convState?: TensorLike;
  /** (R + 2N, D): x_proj.weight, f32, f16, bf16 or q8. */
  weight: TensorLike;
  /** d_state N (the packed buffer's stride depends on it). */
  dState: number;
  /**
   * x already holds silu(conv1d(x)) and the conv state was rolled (norm + in_proj with the conv in
   * its epilogue, `PendingNorm.fusedConv`): only x_proj runs.
   */
  convolved?: boolean;
}

/**
 * One decode token of conv + x_proj: xdbl (batch, 1, R + 2N) = x_proj(silu(conv1d(x))), the conv
 * continuing from `convState`, which is left as it was ({@link dtScanStep} rolls it); with
 * `convolved`, xdbl = x_proj(x) for an x the conv already ran on.
 *
 * @example
 * ```ts
 * const xdbl = convXProj(rt, { x: columns(xz, 0, D), params, convState: state.conv, weight: w['x_proj.weight'], dState: N });
 * const xdbl2 = convXProj(rt, { x: columns(xzConvolved, 0, D), weight: w['x_proj.weight'], dState: N, convolved: true });
 * ```
 */
export function convXProj(runtime: Runtime, inputs: ConvXProjInputs): Tensor {
  const op = 'convXProj';
  const xs = strided(inputs.x);
  const { convState, weight, params, dState: N } = inputs;
  const convolved = inputs.convolved ?? false;
  if (xs.tensor.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: x must be f32, got ${xs.tensor.dtype}`);
  if (xs.shape.length !== 3 || xs.shape[1] !== 1) throw new StatespaceError('SHAPE_MISMATCH', `${op}: x has shape [${xs.shape.join(',')}], expected [batch, seqlen=1, d_inner]`);
  const [batch, , D] = xs.shape;
  if (weight.shape.length !== 2 || weight.shape[1] !== D) throw new StatespaceError('SHAPE_MISMATCH', `${op}: weight has shape [${weight.shape.join(',')}], expected [R + 2N, d_inner=${D}]`);
  const rows = weight.shape[0];
  let K = 0;
  let PS = 0;
  if (!convolved) {
    if (!convState || !params) throw new StatespaceError('INVALID_ARGUMENT', `${op}: convState and params are needed unless x is convolved already (convolved: true)`);
    const s = convState.shape;
    if (s.length !== 3 || s[0] !== batch || s[1] !== D || s[2] < 1 || convState.dtype !== 'f32') {
      throw new StatespaceError('SHAPE_MISMATCH', `${op}: convState has shape [${s.join(',')}] (${convState.dtype}), expected f32 [batch=${batch}, d_inner=${D}, k-1 >= 1]`);
    }
    K = s[2] + 1;
    PS = decodeParamStride(K, N);
    if (params.dtype !== 'f32' || params.size < D * PS) throw new StatespaceError('SHAPE_MISMATCH', `${op}: params has ${params.size} ${params.dtype} elements, expected f32 >= ${D * PS}`);
  }
  const xdbl = runtime.empty([batch, 1, rows], 'f32', 'convXProj.xdbl');
  if (batch * rows === 0) return xdbl;
  const kernel = createConvXProjKernel(
    { batch, dInner: D, rows, xStride: xs.rowStride, xOffset: xs.offset, paramStride: PS },
    { kernelSize: Math.max(K, 2), weightDtype: weight.dtype, vec4: D % gemvVecWidth(weight.dtype) === 0, convolved },
  );
  runtime.run(kernel, convolved ? [xs.tensor, weight, xdbl] : [xs.tensor, params!, convState!, weight, xdbl]);
  return xdbl;
}

/**
 * CPU reference of {@link convXProj}: causalConv1dReference (silu) then matmulReference.
 * x (batch, D), convWeight (D, k), state (batch, D, k-1), weight (W, D); returns xdbl (batch, W).
 *
 * @example
 * ```ts
 * const xdbl = convXProjReference(x, convW, convB, state, xProj, { batch: 1, dInner: 37, kernelSize: 4, rows: 21 });
 * ```
 */
export function convXProjReference(
  x: Float32Array,
  convWeight: Float32Array,
  convBias: Float32Array | undefined,
  state: Float32Array,
  weight: Float32Array,
  dims: { batch: number; dInner: number; kernelSize: number; rows: number },
): Float32Array {
  const { batch, dInner: D, kernelSize: K, rows } = dims;
  const conv = causalConv1dReference(x, convWeight, convBias, state, { batch, seqlen: 1, channels: D, kernelSize: K, activation: 'silu' });
  return matmulReference(conv.y, weight, batch, rows, D);
}
