/**
 * Fused selective scan of Mamba-1 (S6), Mamba paper (Gu & Dao 2023) algorithm 2:
 * discretization, the recurrence, the C contraction, the D skip and the z gate in
 * one kernel, the state kept in registers for the whole call.
 *
 * Shape glossary:
 *   b  batch        L  seqlen         D  d_inner (channels)        N  d_state
 *   P  threads per channel (each owns S = ⌈N/P⌉ of the channel's N state entries)
 *   CW channels per workgroup (128 / P)          T  time steps staged per chunk
 *   Seg time segments of a segmented scan        Lseg steps per segment (the last may be shorter)
 *
 * For every (b, channel c), sequentially over t:
 *   Δ      = softplus(dt[b,t,c] + dt_bias[c])           (when the softplus flag is set)
 *   h[n]   = exp(Δ · A[c,n]) · h[n] + Δ · B[b,t,n] · x[b,t,c],   A = -exp(A_log)
 *   y      = (Σ_n C[b,t,n] · h[n] + D[c] · x[b,t,c]) · silu(z[b,t,c])
 * as transformers' `MambaMixer.slow_forward` (and mamba-minimal's `selective_scan`).
 *
 * Parallel over (b, c, state slice); a workgroup holds CW channels × P state slices.
 * Time runs in chunks of T steps: the chunk's Δ, x, B and C are staged in workgroup
 * memory with coalesced loads, every thread advances its S state entries through the
 * chunk and leaves its partial C·h per step in workgroup memory, then the workgroup
 * sums the P partials of each (t, c) and writes y. Only y and the final state reach
 * global memory; the state is never written per step. Long sequences are split over
 * several dispatches (each continues from the state the previous one left), so kernel
 * time stays bounded and memory is linear in L (only the inputs and y).
 *
 * Where the (b, channel-block) workgroups alone leave a GPU mostly idle (a prompt at batch 1), a
 * dispatch's steps split into Seg time segments run side by side: a summary pass leaves each
 * segment's end state from zero and its ΣΔ, and the scan pass starts segment g from
 * h_g = exp(A·ΣΔ_{g-1})·h_{g-1} + end_{g-1} (segment 0 from the state) — see {@link scanSegments}.
 *
 * y is written over x (the kernel reads x[b,t,c] before writing y[b,t,c] in the same
 * thread), which is why x and y share one binding: the scan needs x, dt, z, B/C,
 * A_log, D, dt_bias and the state, and WebGPU allows 8 storage buffers per kernel.
 * For the same reason B and C are read from one buffer (two column ranges).
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
import { type ColumnSlice, copyColumns, strided } from './columns.js';

/** Threads per workgroup of the scan. */
export const SCAN_THREADS = 128;
/** Largest d_state the scan supports. */
export const SCAN_MAX_STATE = 256;
/** Default number of time steps one dispatch advances (longer calls are split). */
export const SCAN_STEPS_PER_DISPATCH = 4096;
// floats of workgroup memory the staging and partial buffers may use (16,000 bytes)
const WORKGROUP_FLOATS = 4000;
const MAX_CHUNK = 32;

/** The compile-time tiling of the scan for a d_state. */
export interface ScanTiling {
  /** Threads per channel. */
  P: number;
  /** State entries per thread. */
  S: number;
  /** Channels per workgroup. */
  CW: number;
  /** Time steps per staged chunk. */
  T: number;
}

/**
 * Chooses the tiling for d_state N (≤ 256): up to 16 threads per channel, ≤ 16 state entries each.
 * @example
 * ```ts
 * scanTiling(16); // { P: 16, S: 1, CW: 8, T: 22 }
 * ```
 */
export function scanTiling(N: number): ScanTiling {
  assertArg(Number.isInteger(N) && N >= 1 && N <= SCAN_MAX_STATE, 'selectiveScan', `d_state must be an integer in [1, ${SCAN_MAX_STATE}], got ${N}`);
  const P = Math.min(16, 2 ** Math.ceil(Math.log2(N)));
  const S = Math.ceil(N / P);
  const CW = SCAN_THREADS / P;
  const perStep = 2 * CW + 2 * P * S + SCAN_THREADS;
  const T = Math.max(1, Math.min(MAX_CHUNK, Math.floor(WORKGROUP_FLOATS / perStep)));
  return { P, S, CW, T };
}

/** Attributes of the scan kernel (everything that changes its WGSL). */
export interface SelectiveScanAttrs {
  /** Apply Δ = softplus(dt + dt_bias) in the kernel (default true). */
  dtSoftplus?: boolean;
  /** Storage type of A_log. */
  aLogDtype?: DType;
  /** Storage type of D; omit for no D skip. */
  dDtype?: DType;
  /** Storage type of dt_bias; omit for no bias. */
  dtBiasDtype?: DType;
  /** Gate the output with silu(z). */
  gate?: boolean;
  /**
   * Time-parallel pass of a segmented scan (see {@link selectiveScan}'s `segments`): `summary` runs
   * segments 0..Seg-2 from zero (segment 0 from the state) and leaves each one's end state and ΣΔ in
   * the carry; `scan` starts every segment from the carry-combined state, writes y, and leaves the
   * final state in the carry's slot Seg. Omit for the one-pass scan.
   */
  segmented?: 'summary' | 'scan';
}

/** Sizes and strides of one scan dispatch. */
export interface SelectiveScanShape {
  batch: number;
  seqlen: number;
  dInner: number;
  dState: number;
  /** First time step this dispatch advances. */
  tStart?: number;
  /** Number of time steps this dispatch advances (default: seqlen - tStart). */
  tCount?: number;
  /** Row stride and column offset of B and C in the shared B/C buffer. */
  bcStride: number;
  bOffset: number;
  cOffset: number;
  /** Row stride and column offset of z (when gated). */
  zStride?: number;
  zOffset?: number;
  /** Segments Seg of a segmented scan (its attrs' `segmented`), each `segmentLength` (Lseg) steps but the last. */
  segments?: number;
  segmentLength?: number;
}

const layout = {
  batch: 'u32',
  L: 'u32',
  D: 'u32',
  N: 'u32',
  tStart: 'u32',
  tCount: 'u32',
  blocks: 'u32',
  bcStride: 'u32',
  bOffset: 'u32',
  cOffset: 'u32',
  zStride: 'u32',
  zOffset: 'u32',
  segs: 'u32',
  segLen: 'u32',
} as const satisfies UniformLayout;

/**
 * WGSL `softplus_acc(v)`: log(1 + exp(v)) with PyTorch's threshold (v > 20 gives v), accurate
 * to a few ulp everywhere. log(1 + w) near w = 0 is computed by the atanh series
 * 2·(s + s³/3 + … + s¹³/13), s = w / (2 + w) ≤ 1/3, because WGSL's log only promises
 * an absolute error of 2⁻²¹ near 1, which would be a large relative error in small Δ.
 */
export const WGSL_SOFTPLUS = `
fn log1p_unit(w: f32) -> f32 {
  let s = w / (2.0 + w);
  let s2 = s * s;
  return 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 / 13.0))))));
}
fn softplus_acc(v: f32) -> f32 {
  if (v > 20.0) { return v; }
  if (v > 0.0) { return v + log1p_unit(exp(-v)); }
  return log1p_unit(exp(v));
}`;

/**
 * Builds the fused scan kernel for one dispatch.
 * @example
 * ```ts
 * const k = createSelectiveScanKernel({ batch: 1, seqlen: 37, dInner: 128, dState: 16, bcStride: 36, bOffset: 4, cOffset: 20 }, { gate: true, dDtype: 'f32', dtBiasDtype: 'f32' });
 * console.log(k.dispatch, k.cacheKey);
 * ```
 */
export function createSelectiveScanKernel(shape: SelectiveScanShape, attrs: SelectiveScanAttrs = {}): KernelDescriptor {
  const { P, S, CW, T } = scanTiling(shape.dState);
  const NMAX = P * S;
  const softplus = attrs.dtSoftplus ?? true;
  const aDtype = attrs.aLogDtype ?? 'f32';
  const hasD = attrs.dDtype !== undefined;
  const hasBias = attrs.dtBiasDtype !== undefined;
  const gate = attrs.gate ?? false;
  const mode = attrs.segmented ?? 'one';
  const summary = mode === 'summary';
  const Seg = mode === 'one' ? 1 : (shape.segments ?? 0);
  const tStart = shape.tStart ?? 0;
  const tCount = shape.tCount ?? shape.seqlen - tStart;
  const segLen = mode === 'one' ? tCount : (shape.segmentLength ?? 0);
  if (mode !== 'one') {
    assertArg(Number.isInteger(Seg) && Seg >= 2 && Number.isInteger(segLen) && segLen >= 1 && (Seg - 1) * segLen < tCount && Seg * segLen >= tCount, 'selectiveScan', `segments ${Seg} of ${segLen} steps do not cover ${tCount} steps with a non-empty last segment`);
  }
  // In a segmented pass the `state` binding is the carry: Seg + 1 slots of (b, D, N) (slot 0 the
  // initial state, slot g + 1 segment g's end state), then ΣΔ per (segment, b, channel).
  const bindings = summary
    ? ([
        { name: 'y', type: 'f32', access: 'read' }, // (b, L, D): x
        { name: 'dt', type: 'f32', access: 'read' },
        { name: 'bc', type: 'f32', access: 'read' },
        { name: 'A_log', type: wgslStorageType(aDtype), access: 'read' },
        ...(hasBias ? [{ name: 'dt_bias', type: wgslStorageType(attrs.dtBiasDtype!), access: 'read' } as const] : []),
        { name: 'init', type: 'f32', access: 'read' }, // (b, D, N): the initial state
        { name: 'state', type: 'f32', access: 'read_write' }, // the carry
      ] as const)
    : ([
        { name: 'y', type: 'f32', access: 'read_write' }, // (b, L, D): x on entry, y on exit
        { name: 'dt', type: 'f32', access: 'read' }, // (b, L, D)
        ...(gate ? [{ name: 'z', type: 'f32', access: 'read' } as const] : []), // (b, L, zStride)
        { name: 'bc', type: 'f32', access: 'read' }, // (b, L, bcStride): B and C columns
        { name: 'A_log', type: wgslStorageType(aDtype), access: 'read' }, // (D, N)
        ...(hasD ? [{ name: 'Dskip', type: wgslStorageType(attrs.dDtype!), access: 'read' } as const] : []), // (D)
        ...(hasBias ? [{ name: 'dt_bias', type: wgslStorageType(attrs.dtBiasDtype!), access: 'read' } as const] : []), // (D)
        { name: 'state', type: 'f32', access: 'read_write' }, // (b, D, N), or the carry of a segmented scan
      ] as const);
  const cacheKey = `p${P}s${S}t${T}|${softplus ? 'sp' : ''}|${aDtype}|${summary ? 'summary' : `${attrs.dDtype ?? 'noD'}|${gate ? 'z' : ''}`}|${attrs.dtBiasDtype ?? 'nobias'}|${mode}`;
  // Where a thread's state starts and where it ends, by mode (h, A, the slot size bdn = b·D·N).
  const init =
    mode === 'one'
      ? 'h[s] = state[(b * u.D + c) * u.N + n];'
      : summary
        ? `if (seg == 0u) {
          let v = init[(b * u.D + c) * u.N + n];
          state[(b * u.D + c) * u.N + n] = v; // slot 0: the initial state, for the scan pass
          h[s] = v;
        } else {
          h[s] = 0.0;
        }`
        : `let e = (b * u.D + c) * u.N + n;
        if (seg == 0u) {
          h[s] = state[e];
        } else {
          // Segments 1..seg-1 carry segment 0's end state forward: h ← exp(A·ΣΔ_k)·h + end_k.
          var v = state[bdn + e];
          for (var k = 1u; k < seg; k++) {
            v = exp(A[s] * state[dsum0 + (k * u.batch + b) * u.D + c]) * v + state[(k + 1u) * bdn + e];
          }
          h[s] = v;
        }`;
  const fin =
    mode === 'one'
      ? 'state[(b * u.D + c) * u.N + n] = h[s];'
      : summary
        ? 'state[(seg + 1u) * bdn + (b * u.D + c) * u.N + n] = h[s];'
        : 'if (seg + 1u == u.segs) { state[u.segs * bdn + (b * u.D + c) * u.N + n] = h[s]; }';
  const wgsl = memoWgsl('selective_scan', cacheKey, () => `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadA', 'A_log', aDtype)}
${hasD && !summary ? wgslLoadFloat('loadD', 'Dskip', attrs.dDtype!) : ''}
${hasBias ? wgslLoadFloat('loadBias', 'dt_bias', attrs.dtBiasDtype!) : ''}
${WGSL_SOFTPLUS}
fn silu_(v: f32) -> f32 { return v / (1.0 + exp(-v)); }
const WG = ${SCAN_THREADS}u;
const P = ${P}u;
const S = ${S}u;
const CW = ${CW}u;
const T = ${T}u;
const NMAX = ${NMAX}u;
var<workgroup> dtS: array<f32, ${T * CW}>;   // (T, CW) Δ of the chunk
var<workgroup> xS: array<f32, ${T * CW}>;    // (T, CW) x of the chunk
var<workgroup> bS: array<f32, ${T * NMAX}>;  // (T, NMAX) B of the chunk
${summary ? '' : `var<workgroup> cS: array<f32, ${T * NMAX}>;  // (T, NMAX) C of the chunk
var<workgroup> part: array<f32, ${T * SCAN_THREADS}>; // (T, P, CW) partial C·h`}

@compute @workgroup_size(${SCAN_THREADS})
fn main(${WGSL_BUILTINS}) {
  let gl = ${WGSL_LINEAR_WORKGROUP};
  let per = u.batch * u.blocks;
  if (gl >= per * ${summary ? '(u.segs - 1u)' : 'u.segs'}) { return; }
  let seg = gl / per;              // time segment (0 in the one-pass scan)
  let g = gl % per;
  let b = g / u.blocks;
  let c0 = (g % u.blocks) * CW;
  let cl = li / P;                 // channel within the workgroup
  let j = li % P;                  // state slice: entries n = j + s·P
  let c = c0 + cl;
  let live = c < u.D;
  let tS = u.tStart + seg * u.segLen;
  let tC = min(u.segLen, u.tCount - seg * u.segLen);
  let bdn = u.batch * u.D * u.N;
  let dsum0 = (u.segs + 1u) * bdn;
  var h: array<f32, S>;
  var A: array<f32, S>;
  for (var s = 0u; s < S; s++) {
    let n = j + s * P;
    if (live && n < u.N) {
      A[s] = -exp(loadA(c * u.N + n));
      ${init}
    }
  }
  ${summary ? 'var dsum = 0.0;' : ''}
  for (var t0 = 0u; t0 < tC; t0 += T) {
    let tc = min(T, tC - t0);
    let row0 = b * u.L + tS + t0;
    for (var i = li; i < tc * CW; i += WG) {
      let ch = c0 + i % CW;
      if (ch < u.D) {
        let row = row0 + i / CW;
        var d = dt[row * u.D + ch];
        ${hasBias ? 'd += loadBias(ch);' : ''}
        ${softplus ? 'd = softplus_acc(d);' : ''}
        dtS[i] = d;
        xS[i] = y[row * u.D + ch];
      }
    }
    for (var i = li; i < tc * NMAX; i += WG) {
      let n = i % NMAX;
      if (n < u.N) {
        let r = (row0 + i / NMAX) * u.bcStride;
        bS[i] = bc[r + u.bOffset + n];
        ${summary ? '' : 'cS[i] = bc[r + u.cOffset + n];'}
      }
    }
    workgroupBarrier();
    for (var tt = 0u; tt < tc; tt++) {
      let d = dtS[tt * CW + cl];
      let dx = d * xS[tt * CW + cl];
      ${
        summary
          ? `dsum += d;
      for (var s = 0u; s < S; s++) {
        let n = j + s * P;
        if (n < u.N) { h[s] = exp(d * A[s]) * h[s] + dx * bS[tt * NMAX + n]; }
      }`
          : `var acc = 0.0;
      for (var s = 0u; s < S; s++) {
        let n = j + s * P;
        if (n < u.N) {
          let k = tt * NMAX + n;
          h[s] = exp(d * A[s]) * h[s] + dx * bS[k];
          acc += cS[k] * h[s];
        }
      }
      part[tt * WG + j * CW + cl] = acc;`
      }
    }
    workgroupBarrier();
    ${
      summary
        ? ''
        : `for (var i = li; i < tc * CW; i += WG) {
      let tt = i / CW;
      let cc = i % CW;
      let ch = c0 + cc;
      if (ch < u.D) {
        var out = 0.0;
        for (var q = 0u; q < P; q++) { out += part[tt * WG + q * CW + cc]; }
        let row = row0 + tt;
        ${hasD ? 'out += loadD(ch) * xS[i];' : ''}
        ${gate ? 'out *= silu_(z[row * u.zStride + u.zOffset + ch]);' : ''}
        y[row * u.D + ch] = out;
      }
    }
    workgroupBarrier();`
    }
  }
  for (var s = 0u; s < S; s++) {
    let n = j + s * P;
    if (live && n < u.N) { ${fin} }
  }
  ${summary ? 'if (live && j == 0u) { state[dsum0 + (seg * u.batch + b) * u.D + c] = dsum; }' : ''}
}`);
  const blocks = Math.ceil(shape.dInner / CW);
  return {
    name: mode === 'one' ? 'selective_scan' : `selective_scan_${mode}`,
    cacheKey,
    wgsl,
    workgroupSize: [SCAN_THREADS, 1, 1],
    dispatch: linearDispatch(shape.batch * blocks * (summary ? Seg - 1 : Seg)),
    bindings,
    uniformLayout: layout,
    uniforms: {
      batch: shape.batch,
      L: shape.seqlen,
      D: shape.dInner,
      N: shape.dState,
      tStart,
      tCount,
      blocks,
      bcStride: shape.bcStride,
      bOffset: shape.bOffset,
      cOffset: shape.cOffset,
      zStride: shape.zStride ?? shape.dInner,
      zOffset: shape.zOffset ?? 0,
      segs: Seg,
      segLen,
    },
  };
}

/** Floats of the carry buffer of a segmented scan: Seg + 1 state slots, then ΣΔ per (segment, b, channel). */
export function scanCarryFloats(segments: number, batch: number, dInner: number, dState: number): number {
  return (segments + 1) * batch * dInner * dState + segments * batch * dInner;
}

/** Inputs of {@link selectiveScan}, in transformers' layouts. */
export interface SelectiveScanInputs {
  /** (batch, seqlen, d_inner), f32, contiguous: the conv output. */
  x: TensorLike;
  /** (batch, seqlen, d_inner), f32: dt_proj(time_step) without its bias (the bias is `dtBias`). */
  dt: TensorLike;
  /** (d_inner, d_state): A = -exp(A_log). */
  aLog: TensorLike;
  /** (batch, seqlen, d_state), f32, or a column slice of x_proj's output. */
  B: TensorLike | ColumnSlice;
  /** (batch, seqlen, d_state), f32, or a column slice of x_proj's output. */
  C: TensorLike | ColumnSlice;
  /** (d_inner): the skip connection D·x. */
  D?: TensorLike;
  /** (batch, seqlen, d_inner), f32, or a column slice of in_proj's output: the gate. */
  z?: TensorLike | ColumnSlice;
  /** (d_inner): dt_proj.bias, added to dt before the softplus. */
  dtBias?: TensorLike;
  /** (batch, d_inner, d_state), f32: the initial ssm state; the final state is left here. */
  state: TensorLike;
}

/** Options of {@link selectiveScan}. */
export interface SelectiveScanOptions {
  /** Δ = softplus(dt + dtBias) in the kernel (default true, as Mamba's `delta_softplus`). */
  dtSoftplus?: boolean;
  /** Write y over x and return x (x must be a Tensor; saves one (batch, seqlen, d_inner) buffer and a copy). */
  inPlace?: boolean;
  /** Time steps per dispatch (default {@link SCAN_STEPS_PER_DISPATCH}). */
  stepsPerDispatch?: number;
  /**
   * Split each dispatch's steps into this many time segments run in parallel (default
   * {@link scanSegments}; 1: the one-pass scan). A summary pass leaves each segment's end state
   * from zero and its ΣΔ; the scan pass starts segment g from the combined state
   * h_g = exp(A·ΣΔ_{g-1})·h_{g-1} + end_{g-1}: a segment's decay exp(Δ₁A)·…·exp(ΔₖA) is exp(A·ΣΔ).
   */
  segments?: number;
}

/** Workgroups a segmented scan aims for (about 8 per SM on a 132-SM GPU). */
export const SCAN_TARGET_WORKGROUPS = 1024;
/** Shortest time segment worth its own workgroups. */
export const SCAN_MIN_SEGMENT = 32;
/** Most segments of one dispatch (the scan pass combines up to Seg - 1 carries per thread). */
export const SCAN_MAX_SEGMENTS = 64;

/**
 * Time segments for a scan dispatch of `steps` steps: one pass where its (batch × channel-block)
 * workgroups already fill the GPU or the steps are few, and without the runtime's `fastKernels`
 * (software adapters, whose workgroups run a few at a time); otherwise enough segments of ≥ {@link SCAN_MIN_SEGMENT}
 * steps for about {@link SCAN_TARGET_WORKGROUPS} workgroups.
 * @example
 * ```ts
 * scanSegments(rt, { batch: 1, dInner: 1536, dState: 16, steps: 512 }); // 6 on a GPU: 192 blocks of 8 channels
 * ```
 */
export function scanSegments(runtime: Runtime, dims: { batch: number; dInner: number; dState: number; steps: number }): number {
  if (!runtime.fastKernels) return 1;
  const workgroups = dims.batch * Math.ceil(dims.dInner / scanTiling(dims.dState).CW);
  const g = Math.min(SCAN_MAX_SEGMENTS, Math.floor(dims.steps / SCAN_MIN_SEGMENT), Math.ceil(SCAN_TARGET_WORKGROUPS / workgroups));
  return g >= 2 ? g : 1;
}

function shapeText(s: readonly number[]): string {
  return `[${s.join(',')}]`;
}

function expectShape(op: string, name: string, actual: readonly number[], expected: [string, number][]): void {
  if (actual.length === expected.length && actual.every((d, i) => d === expected[i][1])) return;
  throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape ${shapeText(actual)}, expected [${expected.map(([k, v]) => `${k}=${v}`).join(', ')}]`);
}

function expectF32(op: string, name: string, t: TensorLike): void {
  if (t.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `${op}: ${name} must be f32, got ${t.dtype}`);
}

/**
 * Runs the fused selective scan for a whole prompt (or one decode token, seqlen 1),
 * starting from `inputs.state` and leaving the final state there. Returns y
 * (batch, seqlen, d_inner) = (C·h + D·x) · silu(z).
 *
 * @example
 * ```ts
 * const state = rt.zeros([1, dInner, dState]);
 * const y = selectiveScan(rt, { x, dt, aLog: mixer.A_log, B, C, D: mixer.D, z, dtBias: mixer.dt_proj.bias, state });
 * ```
 */
export function selectiveScan(runtime: Runtime, inputs: SelectiveScanInputs, options: SelectiveScanOptions = {}): Tensor {
  const op = 'selectiveScan';
  const { x, dt, aLog, state } = inputs;
  if (x.shape.length !== 3) throw new StatespaceError('SHAPE_MISMATCH', `${op}: x has shape ${shapeText(x.shape)}, expected [batch, seqlen, d_inner]`);
  const [batch, L, D] = x.shape;
  if (aLog.shape.length !== 2 || aLog.shape[0] !== D) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: A_log has shape ${shapeText(aLog.shape)}, expected [d_inner=${D}, d_state]`);
  }
  const N = aLog.shape[1];
  assertArg(N >= 1 && N <= SCAN_MAX_STATE, op, `d_state ${N} is outside [1, ${SCAN_MAX_STATE}]`);
  expectF32(op, 'x', x);
  expectF32(op, 'dt', dt);
  expectF32(op, 'state', state);
  expectShape(op, 'dt', dt.shape, [['batch', batch], ['seqlen', L], ['d_inner', D]]);
  expectShape(op, 'state', state.shape, [['batch', batch], ['d_inner', D], ['d_state', N]]);
  const Bs = strided(inputs.B);
  const Cs = strided(inputs.C);
  expectF32(op, 'B', Bs.tensor);
  expectF32(op, 'C', Cs.tensor);
  expectShape(op, 'B', Bs.shape, [['batch', batch], ['seqlen', L], ['d_state', N]]);
  expectShape(op, 'C', Cs.shape, [['batch', batch], ['seqlen', L], ['d_state', N]]);
  const zs = inputs.z ? strided(inputs.z) : undefined;
  if (zs) {
    expectF32(op, 'z', zs.tensor);
    expectShape(op, 'z', zs.shape, [['batch', batch], ['seqlen', L], ['d_inner', D]]);
  }
  if (inputs.D) expectShape(op, 'D', inputs.D.shape, [['d_inner', D]]);
  if (inputs.dtBias) expectShape(op, 'dtBias', inputs.dtBias.shape, [['d_inner', D]]);

  let y: Tensor;
  if (options.inPlace) {
    assertArg('dispose' in x, op, 'inPlace needs x to be a Tensor, not a view');
    y = x as Tensor;
  } else {
    y = runtime.empty([batch, L, D], 'f32', 'selectiveScan.y');
    if (x.size > 0) runtime.copy(x, y, x.byteSize);
  }
  if (batch * L * D === 0) return y;

  // B and C share one binding: bind their common buffer, or pack them side by side.
  let bc: TensorLike;
  let bcStride: number;
  let bOffset: number;
  let cOffset: number;
  let packed: Tensor | undefined;
  if (Bs.tensor.buffer === Cs.tensor.buffer && Bs.rowStride === Cs.rowStride) {
    bc = Bs.tensor;
    bcStride = Bs.rowStride;
    bOffset = Bs.offset;
    cOffset = Cs.offset;
  } else {
    packed = runtime.empty([batch, L, 2 * N], 'f32', 'selectiveScan.bc');
    copyColumns(runtime, inputs.B, { tensor: packed, start: 0 });
    copyColumns(runtime, inputs.C, { tensor: packed, start: N });
    bc = packed;
    bcStride = 2 * N;
    bOffset = 0;
    cOffset = N;
  }
  const attrs: SelectiveScanAttrs = {
    dtSoftplus: options.dtSoftplus ?? true,
    aLogDtype: aLog.dtype,
    dDtype: inputs.D?.dtype,
    dtBiasDtype: inputs.dtBias?.dtype,
    gate: !!zs,
  };
  const head: TensorLike[] = [y, dt, ...(zs ? [zs.tensor] : []), bc, aLog, ...(inputs.D ? [inputs.D] : []), ...(inputs.dtBias ? [inputs.dtBias] : [])];
  const step = Math.max(1, Math.floor(options.stepsPerDispatch ?? SCAN_STEPS_PER_DISPATCH));
  if (options.segments !== undefined) assertArg(Number.isInteger(options.segments) && options.segments >= 1, op, `segments must be a positive integer, got ${options.segments}`);
  for (let tStart = 0; tStart < L; tStart += step) {
    const tCount = Math.min(step, L - tStart);
    const shape: SelectiveScanShape = { batch, seqlen: L, dInner: D, dState: N, tStart, tCount, bcStride, bOffset, cOffset, zStride: zs?.rowStride, zOffset: zs?.offset };
    // At most one segment per step, and no empty last segment.
    let Seg = Math.min(options.segments ?? scanSegments(runtime, { batch, dInner: D, dState: N, steps: tCount }), tCount);
    const segmentLength = Math.ceil(tCount / Seg);
    Seg = Math.ceil(tCount / segmentLength);
    if (Seg < 2) {
      runtime.run(createSelectiveScanKernel(shape, attrs), [...head, state]);
      continue;
    }
    const carry = runtime.empty([scanCarryFloats(Seg, batch, D, N)], 'f32', 'selectiveScan.carry');
    const seg = { ...shape, segments: Seg, segmentLength };
    runtime.run(createSelectiveScanKernel(seg, { ...attrs, segmented: 'summary' }), [y, dt, bc, aLog, ...(inputs.dtBias ? [inputs.dtBias] : []), state, carry]);
    runtime.run(createSelectiveScanKernel(seg, { ...attrs, segmented: 'scan' }), [...head, carry]);
    runtime.copy(carry, state, state.byteSize, Seg * batch * D * N * 4, 0);
    carry.dispose();
  }
  packed?.dispose();
  return y;
}

/** Host inputs of {@link selectiveScanReference}, contiguous, in the layouts of {@link SelectiveScanInputs}. */
export interface SelectiveScanHostInputs {
  x: Float32Array;
  dt: Float32Array;
  aLog: Float32Array;
  B: Float32Array;
  C: Float32Array;
  D?: Float32Array;
  z?: Float32Array;
  dtBias?: Float32Array;
  /** Initial state (batch, d_inner, d_state); zeros when omitted. Not modified. */
  state?: Float32Array;
}

/**
 * softplus with PyTorch's threshold of 20, in f64.
 * @example
 * ```ts
 * softplusReference(-3); // 0.04858...
 * ```
 */
export function softplusReference(v: number): number {
  return v > 20 ? v : Math.log1p(Math.exp(v));
}

/**
 * CPU reference: the sequential loop of mamba-minimal's `selective_scan` in f64.
 * Returns y (batch, seqlen, d_inner) and the final state (batch, d_inner, d_state).
 *
 * @example
 * ```ts
 * const { y, state } = selectiveScanReference({ x, dt, aLog, B, C, D, z, dtBias }, { batch: 1, seqlen: 7, dInner: 5, dState: 16 });
 * ```
 */
export function selectiveScanReference(
  inputs: SelectiveScanHostInputs,
  dims: { batch: number; seqlen: number; dInner: number; dState: number },
  options: { dtSoftplus?: boolean } = {},
): { y: Float32Array; state: Float32Array } {
  const { batch, seqlen: L, dInner: Dn, dState: N } = dims;
  const softplus = options.dtSoftplus ?? true;
  const y = new Float32Array(batch * L * Dn);
  const out = new Float32Array(batch * Dn * N);
  const h = new Float64Array(N);
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < Dn; c++) {
      for (let n = 0; n < N; n++) h[n] = inputs.state ? inputs.state[(b * Dn + c) * N + n] : 0;
      for (let t = 0; t < L; t++) {
        const row = b * L + t;
        let delta = inputs.dt[row * Dn + c] + (inputs.dtBias ? inputs.dtBias[c] : 0);
        if (softplus) delta = softplusReference(delta);
        const xv = inputs.x[row * Dn + c];
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const A = -Math.exp(inputs.aLog[c * N + n]);
          h[n] = Math.exp(delta * A) * h[n] + delta * inputs.B[row * N + n] * xv;
          acc += inputs.C[row * N + n] * h[n];
        }
        if (inputs.D) acc += inputs.D[c] * xv;
        if (inputs.z) {
          const zv = inputs.z[row * Dn + c];
          acc *= zv / (1 + Math.exp(-zv));
        }
        y[row * Dn + c] = acc;
      }
      for (let n = 0; n < N; n++) out[(b * Dn + c) * N + n] = h[n];
    }
  }
  return { y, state: out };
}
