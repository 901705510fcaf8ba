/**
 * The SSD decode step, one fused kernel: one token per sequence, the state updated in place
 * (the recurrent form of Mamba-2, paper section 3; transformers' `torch_forward` seq_len == 1 path):
 *
 *   dt = clamp(softplus(Δ + dt_bias), min, max)       A = -exp(A_log)     (scalars per head)
 *   S  = exp(dt·A)·S + dt·x ⊗ B                       (S: (P, N) per head)
 *   y  = S·C + D·x
 *
 * Shape glossary (see ssd-shape.ts): b batch, H heads, P head dim, N d_state, G groups (g = h / (H / G)).
 * One workgroup of 32 × 8 threads per (b, h, 8 rows of P): 32 lanes stride over N
 * (coalesced reads of the state row), then a tree reduction over the lanes.
 */
import {
  type DType,
  type KernelDescriptor,
  type Runtime,
  type Tensor,
  type TensorLike,
  type UniformLayout,
  WGSL_BUILTINS,
  WGSL_LINEAR_WORKGROUP,
  assertArg,
  assertShape,
  linearDispatch,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
  memoWgsl,
} from '@statespace/core';
import { type SsdDtAttrs, type SsdOperand, type SsdShape, checkPerHead, WGSL_SOFTPLUS_DT, finiteLimit, resolveOperand } from './ssd-shape.js';
import { ssdRecurrentReference, type SsdReferenceInputs } from './ssd.js';

const LANES = 32;
const ROWS = 8;
const layout = {
  batch: 'u32',
  H: 'u32',
  P: 'u32',
  N: 'u32',
  G: 'u32',
  xOffset: 'u32',
  xStride: 'u32',
  dtOffset: 'u32',
  dtStride: 'u32',
  bOffset: 'u32',
  bStride: 'u32',
  cOffset: 'u32',
  cStride: 'u32',
  dtMin: 'f32',
  dtMax: 'f32',
} as const satisfies UniformLayout;


// GPUs: 32 lanes split d_state and reduce C·h through workgroup memory, 8 rows of head_dim per workgroup.
const GPU_HEAD = `const LANES = ${LANES}u;
const ROWS = ${ROWS}u;
var<workgroup> red: array<f32, ${LANES * ROWS}>;
@compute @workgroup_size(${LANES}, ${ROWS}, 1)`;
const GPU_MAIN = `fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  let pBlocks = (u.P + ROWS - 1u) / ROWS;
  if (wg >= u.batch * u.H * pBlocks) { return; }
  let pb = wg % pBlocks;
  let bh = wg / pBlocks;
  let h = bh % u.H;
  let b = bh / u.H;
  let g = h / (u.H / u.G);
  let p = pb * ROWS + lid.y;
  let raw = dtIn[u.dtOffset + b * u.dtStride + h] + loadDtBias(h);
  let dtv = clamp(SOFTPLUS(raw), u.dtMin, u.dtMax);
  let dA = exp(dtv * -exp(loadALog(h)));
  var acc = 0.0;
  var xv = 0.0;
  if (p < u.P) {
    xv = x[u.xOffset + b * u.xStride + h * u.P + p];
    let base = (bh * u.P + p) * u.N;
    let bRow = u.bOffset + b * u.bStride + g * u.N;
    let cRow = u.cOffset + b * u.cStride + g * u.N;
    for (var n = lid.x; n < u.N; n += LANES) {
      let s = state[base + n] * dA + dtv * xv * Bm[bRow + n];
      state[base + n] = s;
      acc += s * Cm[cRow + n];
    }
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && p < u.P) { y[bh * u.P + p] = red[li] + loadD(h) * xv; }
}`;
// CPU implementations (SwiftShader) run barriers slowly: one thread per (b, h, p) row, looping over d_state.
const SIMPLE_BODY = `@compute @workgroup_size(64)
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * 64u + li;
  if (i >= u.batch * u.H * u.P) { return; }
  let p = i % u.P;
  let bh = i / u.P;
  let h = bh % u.H;
  let b = bh / u.H;
  let g = h / (u.H / u.G);
  let raw = dtIn[u.dtOffset + b * u.dtStride + h] + loadDtBias(h);
  let dtv = clamp(SOFTPLUS(raw), u.dtMin, u.dtMax);
  let dA = exp(dtv * -exp(loadALog(h)));
  let xv = x[u.xOffset + b * u.xStride + h * u.P + p];
  let base = (bh * u.P + p) * u.N;
  let bRow = u.bOffset + b * u.bStride + g * u.N;
  let cRow = u.cOffset + b * u.cStride + g * u.N;
  var acc = 0.0;
  for (var n = 0u; n < u.N; n++) {
    let s = state[base + n] * dA + dtv * xv * Bm[bRow + n];
    state[base + n] = s;
    acc += s * Cm[cRow + n];
  }
  y[bh * u.P + p] = acc + loadD(h) * xv;
}`;

/**
 * The GPU body with d_state and head_dim compiled in (d_state a multiple of 4): the state row in
 * 16-byte words, `lanes` lanes per row (the next power of two of N/4, at most 32) and 256 / lanes rows
 * per workgroup; every load of a thread (its state words, B and C, x, Δ and the per-head scalars) is
 * issued at the start in straight-line code, so the step waits for one memory round trip.
 */
function eagerDecodeBody(P: number, N: number, lanes: number, rows: number, softplus: boolean): string {
  const N4 = N / 4;
  const WJ = Math.ceil(N4 / lanes);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const exact = N4 % lanes === 0;
  const word = (j: number) => (exact ? `lid.x + ${j * lanes}u` : `min(lid.x + ${j * lanes}u, ${N4 - 1}u)`);
  const v4 = (buf: string, row: string, j: number) => `vec4<f32>(${range(4).map((q) => `${buf}[${row} + 4u * n${j} + ${q}u]`).join(', ')})`;
  return `const LANES = ${lanes}u;
const ROWS = ${rows}u;
const P = ${P}u;
const N4 = ${N4}u;
var<workgroup> red: array<f32, ${lanes * rows}>;
@compute @workgroup_size(${lanes}, ${rows}, 1)
fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  let pBlocks = ${Math.ceil(P / rows)}u;
  if (wg >= u.batch * u.H * pBlocks) { return; }
  let pb = wg % pBlocks;
  let bh = wg / pBlocks;
  let h = bh % u.H;
  let b = bh / u.H;
  let g = h / (u.H / u.G);
  let p = pb * ROWS + lid.y;
  let pr = min(p, P - 1u);
  let raw = dtIn[u.dtOffset + b * u.dtStride + h] + loadDtBias(h);
  let aLogH = loadALog(h);
  let dH = loadD(h);
  let xv = x[u.xOffset + b * u.xStride + h * P + pr];
  let base = (bh * P + pr) * N4;
  let bRow = u.bOffset + b * u.bStride + g * N4 * 4u;
  let cRow = u.cOffset + b * u.cStride + g * N4 * 4u;
  ${range(WJ).map((j) => `let n${j} = ${word(j)}; let st${j} = state[base + n${j}]; let bv${j} = ${v4('Bm', 'bRow', j)}; let cv${j} = ${v4('Cm', 'cRow', j)};`).join('\n  ')}
  let dtv = clamp(${softplus ? 'softplus_dt(raw)' : 'raw'}, u.dtMin, u.dtMax);
  let dA = exp(dtv * -exp(aLogH));
  var acc = 0.0;
  if (p < P) {
    ${range(WJ).map((j) => `${exact || j < WJ - 1 ? '' : `if (lid.x + ${j * lanes}u < N4) `}{ let s = st${j} * dA + dtv * xv * bv${j}; state[base + n${j}] = s; acc += dot(s, cv${j}); }`).join('\n    ')}
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && p < P) { y[bh * P + p] = red[li] + dH * xv; }
}`;
}

/** Lanes and rows per workgroup of the eager decode body for d_state N (null: N not a multiple of 4). */
function eagerDecodeLayout(N: number): { lanes: number; rows: number } | null {
  if (N % 4 !== 0) return null;
  let lanes = 1;
  while (lanes < Math.min(N / 4, LANES)) lanes *= 2;
  return { lanes, rows: (LANES * ROWS) / lanes };
}

/** Shape of a decode step (one token per sequence). */
export type SsdStepShape = Omit<SsdShape, 'seqlen' | 'chunkSize'>;

/** An operand read at `offset` with `stride` elements between rows. */
export type Strided = { offset: number; stride: number };

/**
 * Builds the decode-step kernel (see the file comment).
 *
 * @example
 * ```ts
 * const rows = (offset: number, stride: number) => ({ offset, stride });
 * const kernel = createSsdDecodeKernel({ batch: 1, heads: 24, headDim: 64, dState: 128, groups: 1 }, { x: rows(0, 1536), dt: rows(0, 24), B: rows(0, 128), C: rows(0, 128) });
 * ```
 */
export function createSsdDecodeKernel(
  shape: SsdStepShape,
  operands: { x: Strided; dt: Strided; B: Strided; C: Strided },
  attrs: { aLogDtype?: DType; dtBiasDtype?: DType | null; dDtype?: DType | null; dtSoftplus?: boolean; dtLimit?: readonly [number, number]; simple?: boolean } = {},
): KernelDescriptor {
  const aDtype = attrs.aLogDtype ?? 'f32';
  const biasDtype = attrs.dtBiasDtype === undefined ? 'f32' : attrs.dtBiasDtype;
  const dDtype = attrs.dDtype === undefined ? 'f32' : attrs.dDtype;
  const softplus = attrs.dtSoftplus ?? true;
  const bindings = [
    { name: 'x', type: 'f32', access: 'read' }, // (b) rows of (H, P)
    { name: 'dtIn', type: 'f32', access: 'read' }, // (b) rows of (H)
    { name: 'Bm', type: 'f32', access: 'read' }, // (b) rows of (G, N)
    { name: 'Cm', type: 'f32', access: 'read' }, // (b) rows of (G, N)
    { name: 'aLog', type: wgslStorageType(aDtype), access: 'read' }, // (H)
    ...(biasDtype ? [{ name: 'dtBias', type: wgslStorageType(biasDtype), access: 'read' } as const] : []), // (H)
    ...(dDtype ? [{ name: 'Dp', type: wgslStorageType(dDtype), access: 'read' } as const] : []), // (H)
    { name: 'state', type: 'f32', access: 'read_write' }, // (b, H, P, N)
    { name: 'y', type: 'f32', access: 'read_write' }, // (b, H, P)
  ] as const;
  const eager = attrs.simple ? null : eagerDecodeLayout(shape.dState);
  const variant = attrs.simple ? 'simple' : eager ? `eager${shape.headDim}x${shape.dState}` : 'lanes';
  const cacheKey = `${aDtype}|${biasDtype ?? 'none'}|${dDtype ?? 'none'}|${softplus ? 'sp' : 'raw'}|${variant}`;
  const bound = eager ? bindings.map((b) => (b.name === 'state' ? ({ ...b, type: 'vec4<f32>' } as const) : b)) : bindings; // the state in 16-byte words
  const wgsl = memoWgsl(attrs.simple ? 'ssd_decode_simple' : 'ssd_decode', cacheKey, () => `${wgslBindings(layout, bound)}
${wgslLoadFloat('loadALog', 'aLog', aDtype)}
${biasDtype ? wgslLoadFloat('loadDtBias', 'dtBias', biasDtype) : 'fn loadDtBias(i: u32) -> f32 { return 0.0; }'}
${dDtype ? wgslLoadFloat('loadD', 'Dp', dDtype) : 'fn loadD(i: u32) -> f32 { return 0.0; }'}
${WGSL_SOFTPLUS_DT}
${eager ? eagerDecodeBody(shape.headDim, shape.dState, eager.lanes, eager.rows, softplus) : attrs.simple ? SIMPLE_BODY.replace('SOFTPLUS(raw)', softplus ? 'softplus_dt(raw)' : 'raw') : GPU_HEAD}
${attrs.simple || eager ? '' : GPU_MAIN.replace('SOFTPLUS(raw)', softplus ? 'softplus_dt(raw)' : 'raw')}`);
  const [dtMin, dtMax] = finiteLimit(attrs.dtLimit);
  const { x, dt, B, C } = operands;
  return {
    name: attrs.simple ? 'ssd_decode_simple' : 'ssd_decode',
    cacheKey,
    wgsl,
    workgroupSize: attrs.simple ? [64, 1, 1] : eager ? [eager.lanes, eager.rows, 1] : [LANES, ROWS, 1],
    dispatch: attrs.simple
      ? linearDispatch((shape.batch * shape.heads * shape.headDim) / 64)
      : linearDispatch(shape.batch * shape.heads * Math.ceil(shape.headDim / (eager ? eager.rows : ROWS))),
    bindings: bound,
    uniformLayout: layout,
    uniforms: {
      batch: shape.batch,
      H: shape.heads,
      P: shape.headDim,
      N: shape.dState,
      G: shape.groups,
      xOffset: x.offset,
      xStride: x.stride,
      dtOffset: dt.offset,
      dtStride: dt.stride,
      bOffset: B.offset,
      bStride: B.stride,
      cOffset: C.offset,
      cStride: C.stride,
      dtMin,
      dtMax,
    },
  };
}

/** GPU inputs of one decode step. */
export interface SsdStepInputs {
  /** (b, H, P) */
  x: SsdOperand;
  /** Raw Δ, (b, H). */
  dt: SsdOperand;
  /** (b, G, N) */
  B: SsdOperand;
  /** (b, G, N) */
  C: SsdOperand;
  /** (H) */
  aLog: TensorLike;
  dtBias?: TensorLike;
  D?: TensorLike;
  /** (b, H, P, N) f32, updated in place. */
  state: TensorLike;
}

/**
 * One SSD decode step: updates `inputs.state` in place and returns y (b, H, P).
 *
 * @example
 * ```ts
 * const y = ssdDecodeStep(rt, { x, dt, B, C, aLog, dtBias, D, state }, { batch: 1, heads: 24, headDim: 64, dState: 128, groups: 1 });
 * ```
 */
export function ssdDecodeStep(runtime: Runtime, inputs: SsdStepInputs, shape: SsdStepShape, attrs: SsdDtAttrs & { out?: Tensor; simple?: boolean } = {}): Tensor {
  const op = 'ssdDecodeStep';
  const { batch: b, heads: H, headDim: P, dState: N, groups: G } = shape;
  for (const [k, v] of Object.entries(shape)) assertArg(Number.isInteger(v) && v >= 1, op, `${k} must be a positive integer, got ${v}`);
  assertArg(H % G === 0, op, `heads=${H} must be a multiple of groups=${G}`);
  const x = resolveOperand(op, 'x', inputs.x, b, H * P, { batch: b, heads: H, headDim: P });
  const dt = resolveOperand(op, 'dt', inputs.dt, b, H, { batch: b, heads: H });
  const B = resolveOperand(op, 'B', inputs.B, b, G * N, { batch: b, groups: G, dState: N });
  const C = resolveOperand(op, 'C', inputs.C, b, G * N, { batch: b, groups: G, dState: N });
  checkPerHead(op, 'A_log', inputs.aLog, H);
  if (inputs.dtBias) checkPerHead(op, 'dt_bias', inputs.dtBias, H);
  if (inputs.D) checkPerHead(op, 'D', inputs.D, H);
  assertShape(op, 'state', inputs.state.shape, { batch: b, heads: H, headDim: P, dState: N });
  assertArg(inputs.state.dtype === 'f32', op, `state must be f32, got ${inputs.state.dtype}`);
  const y = attrs.out ?? runtime.empty([b, H, P], 'f32', 'ssd.decode.y');
  assertArg(y.size === b * H * P, op, `out has ${y.size} elements, expected ${b * H * P}`);
  const kernel = createSsdDecodeKernel(shape, { x, dt, B, C }, {
    aLogDtype: inputs.aLog.dtype,
    dtBiasDtype: inputs.dtBias ? inputs.dtBias.dtype : null,
    dDtype: inputs.D ? inputs.D.dtype : null,
    dtSoftplus: attrs.dtSoftplus,
    dtLimit: attrs.dtLimit,
    simple: attrs.simple ?? runtime.info.isSoftware,
  });
  const tensors: TensorLike[] = [x.tensor, dt.tensor, B.tensor, C.tensor, inputs.aLog];
  if (inputs.dtBias) tensors.push(inputs.dtBias);
  if (inputs.D) tensors.push(inputs.D);
  tensors.push(inputs.state, y);
  runtime.run(kernel, tensors);
  return y;
}

/**
 * CPU reference of one decode step (the recurrence for a single token): x (b, H, P),
 * dt (b, H), B and C (b, G, N), state (b, H, P, N). Returns y and the new state.
 *
 * @example
 * ```ts
 * const { y, state } = ssdDecodeStepReference({ x, dt, A, B, C, dtBias, D, state: previous }, { batch: 1, heads: 2, headDim: 4, dState: 3, groups: 1 });
 * ```
 */
export function ssdDecodeStepReference(inputs: Omit<SsdReferenceInputs, 'initialState'> & { state: Float32Array }, shape: SsdStepShape, attrs: SsdDtAttrs = {}): { y: Float32Array; state: Float32Array } {
  return ssdRecurrentReference({ ...inputs, initialState: inputs.state }, { ...shape, seqlen: 1, chunkSize: 1 }, attrs);
}
