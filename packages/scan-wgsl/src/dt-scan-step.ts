/**
 * Mamba-1 decode, third dispatch of a layer: the bcdt norms, dt_proj, softplus, the conv state
 * update, one step of the selective scan, the D skip and the z gate in one kernel, for one token
 * per sequence (seqlen 1).
 *
 * Shape glossary (packages/core/README.md):
 *   b  batch   D  d_inner (channels)   N  d_state   R  time_step_rank   k  conv_kernel
 *   W  = R + 2N, a row of x_proj's output xdbl = [time_step | B | C]
 *   P  threads per channel (each owns S = ⌈N/P⌉ state entries)   CW channels per workgroup
 *
 * For every (b, c), as transformers' `MambaMixer.slow_forward` (FalconMamba's and Jamba's norms on
 * dt, B and C included, see {@link bcdtNorm}) and {@link selectiveScan} with seqlen 1:
 *   ts, B, C = norm(xdbl[b])                                     (each workgroup normalises its row)
 *   Δ        = softplus(dt_proj.weight[c, :] · ts + dt_proj.bias[c])
 *   xc       = silu(conv1d(state[b, c, :], x[b, c]))              the conv value {@link convXProj} used
 *   state    ← (state[b, c, 1:], x[b, c])                         rolled here: only channel c's threads touch it
 *   h[n]     = exp(Δ · A[c, n]) · h[n] + Δ · B[n] · xc,  A = -exp(A_log)       (Mamba paper algorithm 2)
 *   y[b, c]  = (Σ_n C[n] · h[n] + D[c] · xc) · silu(z[b, c])
 * x and z are read in place from in_proj's output xz (b, 1, 2D); the per-channel weights come from
 * {@link packMamba1DecodeParams} (7 storage buffers in all, within WebGPU's guaranteed 8).
 * Where the conv already ran in norm + in_proj's epilogue (`convolved`), x is read as xc and the conv
 * state is neither bound nor rolled (6 storage buffers).
 * The P threads of a channel split dt_proj's row and the state entries, and meet twice in
 * workgroup memory (the dt dot product and the C contraction), summing the partials in the
 * order the scan kernel does.
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
  linearDispatch,
  matmulReference,
  memoWgsl,
  wgslBindings,
  wgslCompileSizes,
  wgslLoadFloat,
  wgslStorageType,
} from '@statespace/core';
import { type BcdtNormKind, bcdtNormReference } from './bcdt-norm.js';
import { causalConv1dReference } from './causal-conv1d.js';
import { decodeParamStride } from './mamba1-decode-params.js';
import { SCAN_THREADS, WGSL_SOFTPLUS, scanTiling, selectiveScanReference } from './selective-scan.js';

/** Widest xdbl row (R + 2N) the kernel stages in workgroup memory. */
export const DT_SCAN_MAX_ROW = 2048;
// Workgroup memory for the row comes in a few sizes (WebGPU zero-fills it for every workgroup).
const ROW_CAPS = [64, 128, 256, 512, 1024, DT_SCAN_MAX_ROW];

const layout = {
  batch: 'u32',
  D: 'u32',
  N: 'u32',
  R: 'u32',
  W: 'u32',
  zOffset: 'u32',
  xzStride: 'u32',
  PS: 'u32',
  tail: 'u32',
  blocks: 'u32',
  eps: 'f32',
} as const satisfies UniformLayout;

/** Attributes of the fused scan step (what changes its WGSL). */
export interface DtScanStepAttrs {
  /** Conv width k (at least 2). */
  kernelSize: number;
  /** d_state N (chooses the tiling). */
  dState: number;
  /** The norms on dt, B, C. */
  kind: BcdtNormKind;
  /** Storage type of dt_proj.weight. */
  dtWeightDtype: DType;
  /** xz's x half is silu(conv1d(x)) already and the conv state was rolled: no conv here. */
  convolved?: boolean;
}

/**
 * Builds the fused dt_proj + softplus + scan + D + gate kernel.
 * @example
 * ```ts
 * const k = createDtScanStepKernel({ batch: 1, dInner: 1536, rank: 48 }, { kernelSize: 4, dState: 16, kind: 'none', dtWeightDtype: 'f32' });
 * ```
 */
export function createDtScanStepKernel(shape: { batch: number; dInner: number; rank: number }, attrs: DtScanStepAttrs): KernelDescriptor {
  const { kernelSize: K, dState: N, kind } = attrs;
  const { P, S, CW } = scanTiling(N);
  const W = shape.rank + 2 * N;
  const cap = ROW_CAPS.find((c) => c >= W);
  if (cap === undefined) throw new StatespaceError('INVALID_ARGUMENT', `dtScanStep: R + 2N = ${W} exceeds ${DT_SCAN_MAX_ROW}`);
  const norm = kind !== 'none';
  const weighted = kind === 'weighted';
  const convolved = attrs.convolved ?? false;
  const bindings: BindingDecl[] = [
    { name: 'xz', type: 'f32', access: 'read' }, // (b, 2D): x (or silu(conv(x)) when convolved) then z
    { name: 'xdbl', type: 'f32', access: 'read' }, // (b, W)
    { name: 'dtw', type: wgslStorageType(attrs.dtWeightDtype), access: 'read' }, // (D, R) dt_proj.weight
    { name: 'params', type: 'f32', access: 'read' }, // (D, PS) + (W) packed weights
    ...(convolved ? [] : ([{ name: 'conv_state', type: 'f32', access: 'read_write' }] as const)), // (b, D, k-1)
    { name: 'ssm_state', type: 'f32', access: 'read_write' }, // (b, D, N)
    { name: 'y', type: 'f32', access: 'read_write' }, // (b, D)
  ];
  const blocks = Math.ceil(shape.dInner / CW);
  // the sizes compiled in: the loops over R, W and the state unroll and their loads issue together
  const sizes = { D: shape.dInner, W, R: shape.rank, N, PS: decodeParamStride(K, N), tail: shape.dInner * decodeParamStride(K, N), blocks };
  const cacheKey = `p${P}s${S}|k${K}|${kind}|${attrs.dtWeightDtype}|w${cap}|${convolved ? 'c|' : ''}${shape.dInner}x${shape.rank}x${N}`;
  const convCode = convolved
    ? `xcv = xz[b * u.xzStride + c];`
    : `for (var q = 0u; q < KM1; q++) { win[q] = conv_state[sb + q]; }
    win[KM1] = xz[b * u.xzStride + c];
    var acc = params[p + K];
    for (var q = 0u; q < K; q++) { acc += params[p + q] * win[q]; }
    xcv = acc / (1.0 + exp(-acc));`;
  const rollCode = convolved
    ? ''
    : `if (j == 0u) {
      for (var q = 0u; q < KM1; q++) { conv_state[sb + q] = win[q + 1u]; }
    }`;
  const normCode = norm
    ? `var s0 = 0.0;
  var s1 = 0.0;
  var s2 = 0.0;
  for (var i = li; i < u.W; i += WG) {
    let v = xs[i];
    if (i < u.R) { s0 += v * v; } else if (i < u.R + u.N) { s1 += v * v; } else { s2 += v * v; }
  }
  red[li] = s0;
  red[WG + li] = s1;
  red[2u * WG + li] = s2;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      red[li] += red[li + s];
      red[WG + li] += red[WG + li + s];
      red[2u * WG + li] += red[2u * WG + li + s];
    }
    workgroupBarrier();
  }
  let inv0 = inverseSqrt(red[0] / f32(u.R) + u.eps);
  let inv1 = inverseSqrt(red[WG] / f32(u.N) + u.eps);
  let inv2 = inverseSqrt(red[2u * WG] / f32(u.N) + u.eps);
  for (var i = li; i < u.W; i += WG) {
    var inv = inv2;
    if (i < u.R) { inv = inv0; } else if (i < u.R + u.N) { inv = inv1; }
    xs[i] = xs[i] * inv${weighted ? ' * params[u.tail + i]' : ''};
  }
  workgroupBarrier();`
    : '';
  const wgsl = memoWgsl('mamba1_dt_scan_step', cacheKey, () => wgslCompileSizes(`${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadDtw', 'dtw', attrs.dtWeightDtype)}
${WGSL_SOFTPLUS}
fn silu_(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
const WG = ${SCAN_THREADS}u;
const P = ${P}u;
const S = ${S}u;
const K = ${K}u;
const KM1 = ${K - 1}u;
var<workgroup> xs: array<f32, ${cap}>; // (W) the normalised xdbl row
${norm ? `var<workgroup> red: array<f32, ${3 * SCAN_THREADS}>; // (3, WG) sums of squares` : ''}
var<workgroup> part: array<f32, ${SCAN_THREADS}>;  // (CW, P) partial dt_proj products
var<workgroup> part2: array<f32, ${SCAN_THREADS}>; // (CW, P) partial C·h

@compute @workgroup_size(${SCAN_THREADS})
fn main(${WGSL_BUILTINS}) {
  let g = ${WGSL_LINEAR_WORKGROUP};
  if (g >= u.batch * u.blocks) { return; }
  let b = g / u.blocks;
  let cl = li / P;
  let j = li % P;
  let c = (g % u.blocks) * ${CW}u + cl;
  let live = c < u.D;
  for (var i = li; i < u.W; i += WG) { xs[i] = xdbl[b * u.W + i]; }
  workgroupBarrier();
  ${normCode}
  let p = c * u.PS;
  ${convolved ? '' : `let sb = (b * u.D + c) * KM1;
  var win: array<f32, K>;`}
  var wk = 0.0;
  var xcv = 0.0;
  if (live) {
    for (var r = j; r < u.R; r += P) { wk += loadDtw(c * u.R + r) * xs[r]; }
    ${convCode}
  }
  part[li] = wk;
  workgroupBarrier(); // every thread of channel c has read its conv state
  var ch = 0.0;
  if (live) {
    var dsum = 0.0;
    for (var q = 0u; q < P; q++) { dsum += part[cl * P + q]; }
    let d = softplus_acc(dsum + params[p + K + 1u]);
    ${rollCode}
    let dx = d * xcv;
    for (var s = 0u; s < S; s++) {
      let n = j + s * P;
      if (n < u.N) {
        let A = -exp(params[p + K + 3u + n]);
        let i = (b * u.D + c) * u.N + n;
        let h = exp(d * A) * ssm_state[i] + dx * xs[u.R + n];
        ssm_state[i] = h;
        ch += xs[u.R + u.N + n] * h;
      }
    }
  }
  part2[li] = ch;
  workgroupBarrier();
  if (live && j == 0u) {
    var out = 0.0;
    for (var q = 0u; q < P; q++) { out += part2[cl * P + q]; }
    out += params[p + K + 2u] * xcv;
    out *= silu_(xz[b * u.xzStride + u.zOffset + c]);
    y[b * u.D + c] = out;
  }
}`, sizes));
  return {
    name: 'mamba1_dt_scan_step',
    cacheKey,
    wgsl,
    workgroupSize: [SCAN_THREADS, 1, 1],
    dispatch: linearDispatch(shape.batch * blocks),
    bindings,
    uniformLayout: layout,
    uniforms: {
      batch: shape.batch,
      D: shape.dInner,
      N: N,
      R: shape.rank,
      W,
      zOffset: shape.dInner,
      xzStride: 2 * shape.dInner,
      PS: decodeParamStride(K, N),
      tail: shape.dInner * decodeParamStride(K, N),
      blocks,
      eps: 0,
    },
  };
}

/** Inputs of {@link dtScanStep}. */
export interface DtScanStepInputs {
  /** (batch, 1, 2D), f32: in_proj's output, x then z. */
  xz: TensorLike;
  /** (batch, 1, R + 2N), f32: x_proj's output ({@link convXProj}), before the bcdt norms. */
  xdbl: TensorLike;
  /** (D, R): dt_proj.weight, f32, f16 or bf16. */
  dtWeight: TensorLike;
  /** The packed weights of {@link packMamba1DecodeParams} (with the norm weights for 'weighted'). */
  params: TensorLike;
  /**
   * (batch, D, k-1), f32: the conv state {@link convXProj} read; rolled by one token here. Absent when
   * xz's x half is convolved already (the conv ran, and rolled the state, in in_proj's epilogue): then
   * `kernelSize` gives k.
   */
  convState?: TensorLike;
  /** The conv width k, needed (only) without `convState`. */
  kernelSize?: number;
  /** (batch, D, N), f32: the ssm state, advanced by one token in place. */
  ssmState: TensorLike;
}

/** Options of {@link dtScanStep}. */
export interface DtScanStepOptions {
  /** The norms on dt, B, C (default 'none'). */
  kind?: BcdtNormKind;
  /** eps of those norms. */
  eps?: number;
}

/**
 * One decode token of the rest of a Mamba-1 mixer after x_proj: returns y (batch, 1, D), the
 * input of out_proj, and advances both states.
 *
 * @example
 * ```ts
 * const y = dtScanStep(rt, { xz, xdbl, dtWeight: w['dt_proj.weight'], params, convState: state.conv, ssmState: state.ssm }, { kind: 'none' });
 * ```
 */
export function dtScanStep(runtime: Runtime, inputs: DtScanStepInputs, options: DtScanStepOptions = {}): Tensor {
  const op = 'dtScanStep';
  const { xz, xdbl, dtWeight, params, convState, ssmState } = inputs;
  const kind = options.kind ?? 'none';
  for (const [name, t] of [['xz', xz], ['xdbl', xdbl], ['convState', convState], ['ssmState', ssmState]] as const) {
    if (t && t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
  }
  if (xz.shape.length !== 3 || xz.shape[1] !== 1 || xz.shape[2] % 2 !== 0) throw new StatespaceError('SHAPE_MISMATCH', `${op}: xz has shape [${xz.shape.join(',')}], expected [batch, seqlen=1, 2·d_inner]`);
  const [batch, , D2] = xz.shape;
  const D = D2 / 2;
  if (ssmState.shape.length !== 3 || ssmState.shape[0] !== batch || ssmState.shape[1] !== D) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: ssmState has shape [${ssmState.shape.join(',')}], expected [batch=${batch}, d_inner=${D}, d_state]`);
  }
  const N = ssmState.shape[2];
  let K: number;
  if (convState) {
    const cs = convState.shape;
    if (cs.length !== 3 || cs[0] !== batch || cs[1] !== D || cs[2] < 1) {
      throw new StatespaceError('SHAPE_MISMATCH', `${op}: convState has shape [${cs.join(',')}], expected [batch=${batch}, d_inner=${D}, k-1 >= 1]`);
    }
    K = cs[2] + 1;
  } else {
    K = inputs.kernelSize ?? 0;
    if (!Number.isInteger(K) || K < 2) throw new StatespaceError('INVALID_ARGUMENT', `${op}: without convState (x convolved already) kernelSize must be an integer >= 2, got ${inputs.kernelSize}`);
  }
  if (dtWeight.shape.length !== 2 || dtWeight.shape[0] !== D) throw new StatespaceError('SHAPE_MISMATCH', `${op}: dtWeight has shape [${dtWeight.shape.join(',')}], expected [d_inner=${D}, R]`);
  const R = dtWeight.shape[1];
  const W = R + 2 * N;
  if (xdbl.shape.length !== 3 || xdbl.shape[0] !== batch || xdbl.shape[1] !== 1 || xdbl.shape[2] !== W) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: xdbl has shape [${xdbl.shape.join(',')}], expected [batch=${batch}, seqlen=1, R + 2N=${W}]`);
  }
  if (W > DT_SCAN_MAX_ROW) throw new StatespaceError('INVALID_ARGUMENT', `${op}: R + 2N = ${W} exceeds ${DT_SCAN_MAX_ROW}`);
  const need = D * decodeParamStride(K, N) + (kind === 'weighted' ? W : 0);
  if (params.dtype !== 'f32' || params.size < need) throw new StatespaceError('SHAPE_MISMATCH', `${op}: params has ${params.size} ${params.dtype} elements, expected f32 >= ${need}`);
  const y = runtime.empty([batch, 1, D], 'f32', 'dtScanStep.y');
  if (batch * D === 0) return y;
  const k = createDtScanStepKernel({ batch, dInner: D, rank: R }, { kernelSize: K, dState: N, kind, dtWeightDtype: dtWeight.dtype, convolved: !convState });
  runtime.run({ ...k, uniforms: { ...k.uniforms, eps: options.eps ?? 1e-6 } }, convState ? [xz, xdbl, dtWeight, params, convState, ssmState, y] : [xz, xdbl, dtWeight, params, ssmState, y]);
  return y;
}

/** Host inputs of {@link dtScanStepReference} (contiguous f32, the layouts of {@link DtScanStepInputs}). */
export interface DtScanStepHostInputs {
  /** (batch, 2D) */
  xz: Float32Array;
  /** (batch, R + 2N) */
  xdbl: Float32Array;
  /** (D, R) */
  dtWeight: Float32Array;
  /** (D) */
  dtBias: Float32Array;
  /** (D, k) */
  convWeight: Float32Array;
  /** (D) */
  convBias?: Float32Array;
  /** (D, N) */
  aLog: Float32Array;
  /** (D) */
  D: Float32Array;
  /** Jamba's norm weights (R), (N), (N). */
  norms?: { dt: Float32Array; B: Float32Array; C: Float32Array };
  /** (batch, D, k-1), not modified */
  convState: Float32Array;
  /** (batch, D, N), not modified */
  ssmState: Float32Array;
}

/**
 * CPU reference of {@link dtScanStep}, composed of bcdtNormReference, matmulReference,
 * causalConv1dReference and selectiveScanReference. Returns y (batch, D) and both new states.
 *
 * @example
 * ```ts
 * const { y, convState, ssmState } = dtScanStepReference(host, { batch: 1, dInner: 37, dState: 16, rank: 3, kernelSize: 4, kind: 'none' });
 * ```
 */
export function dtScanStepReference(
  inputs: DtScanStepHostInputs,
  dims: { batch: number; dInner: number; dState: number; rank: number; kernelSize: number; kind: BcdtNormKind; eps?: number },
): { y: Float32Array; convState: Float32Array; ssmState: Float32Array } {
  const { batch, dInner: D, dState: N, rank: R, kernelSize: K, kind } = dims;
  const W = R + 2 * N;
  const { ts, xdbl } = bcdtNormReference(inputs.xdbl, batch, { rank: R, dState: N, kind, eps: dims.eps, weights: kind === 'weighted' ? inputs.norms : undefined });
  const dt = matmulReference(ts, inputs.dtWeight, batch, D, R);
  const x = new Float32Array(batch * D);
  const z = new Float32Array(batch * D);
  const B = new Float32Array(batch * N);
  const C = new Float32Array(batch * N);
  for (let b = 0; b < batch; b++) {
    x.set(inputs.xz.subarray(b * 2 * D, b * 2 * D + D), b * D);
    z.set(inputs.xz.subarray(b * 2 * D + D, (b + 1) * 2 * D), b * D);
    B.set(xdbl.subarray(b * W + R, b * W + R + N), b * N);
    C.set(xdbl.subarray(b * W + R + N, (b + 1) * W), b * N);
  }
  const conv = causalConv1dReference(x, inputs.convWeight, inputs.convBias, inputs.convState, { batch, seqlen: 1, channels: D, kernelSize: K, activation: 'silu' });
  const scan = selectiveScanReference(
    { x: conv.y, dt, aLog: inputs.aLog, B, C, D: inputs.D, z, dtBias: inputs.dtBias, state: inputs.ssmState },
    { batch, seqlen: 1, dInner: D, dState: N },
  );
  return { y: scan.y, convState: conv.state, ssmState: scan.state };
}
