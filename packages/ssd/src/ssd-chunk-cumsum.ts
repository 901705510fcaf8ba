/**
 * SSD step 1: the step size and the cumulative decay inside each chunk.
 *
 *   dt_l  = clamp(softplus(Δ_l + dt_bias), min, max)       A = -exp(A_log)   (a scalar per head)
 *   dA_l  = dt_l · A
 *   cs_l  = Σ_{k = chunk start .. l} dA_k                   (cumulative sum restarted at each chunk)
 *
 * Shape glossary (see ssd-shape.ts): b batch, L tokens, H heads, Q chunk length, nC chunks.
 * One workgroup of 256 threads per (b, h, chunk) runs a Hillis-Steele inclusive scan in
 * workgroup memory (chunked SSD, Mamba-2 paper section 6, "chunk cumsum" of the reference kernels).
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
  linearDispatch,
  wgslBindings,
  wgslLoadFloat,
  wgslStorageType,
} from '@statespace/core';
import { type SsdDtAttrs, type SsdOperand, type SsdShape, SSD_MAX_CHUNK, checkPerHead, WGSL_SOFTPLUS_DT, finiteLimit, numChunks, resolveOperand, validateSsdShape } from './ssd-shape.js';

const THREADS = SSD_MAX_CHUNK;
const layout = {
  batch: 'u32',
  L: 'u32',
  H: 'u32',
  Q: 'u32',
  nC: 'u32',
  dtOffset: 'u32',
  dtStride: 'u32',
  dtMin: 'f32',
  dtMax: 'f32',
} as const satisfies UniformLayout;

/** Attributes that change the compiled chunk-cumsum kernel. */
export interface SsdChunkCumsumAttrs {
  aLogDtype?: DType;
  /** Storage type of dt_bias, or null when there is none. */
  dtBiasDtype?: DType | null;
  dtSoftplus?: boolean;
}

/**
 * Builds the chunk-cumsum kernel (see the file comment).
 *
 * @example
 * ```ts
 * const kernel = createSsdChunkCumsumKernel(shape, { offset: 0, stride: shape.heads }, { dtLimit: [0, Infinity] }); // contiguous Δ (b, L, H)
 * ```
 */
export function createSsdChunkCumsumKernel(
  shape: SsdShape,
  dt: { offset: number; stride: number },
  attrs: SsdChunkCumsumAttrs & { dtLimit?: readonly [number, number] } = {},
): KernelDescriptor {
  const aDtype = attrs.aLogDtype ?? 'f32';
  const biasDtype = attrs.dtBiasDtype === undefined ? 'f32' : attrs.dtBiasDtype;
  const softplus = attrs.dtSoftplus ?? true;
  const bindings = [
    { name: 'dtIn', type: 'f32', access: 'read' }, // rows of (H) Δ values, (b, L) rows at dtOffset + row·dtStride
    { name: 'aLog', type: wgslStorageType(aDtype), access: 'read' }, // (H)
    ...(biasDtype ? [{ name: 'dtBias', type: wgslStorageType(biasDtype), access: 'read' } as const] : []), // (H)
    { name: 'dtOut', type: 'f32', access: 'read_write' }, // (b, H, L)
    { name: 'dACs', type: 'f32', access: 'read_write' }, // (b, H, L)
  ] as const;
  const wgsl = `${wgslBindings(layout, bindings)}
${wgslLoadFloat('loadALog', 'aLog', aDtype)}
${biasDtype ? wgslLoadFloat('loadDtBias', 'dtBias', biasDtype) : 'fn loadDtBias(i: u32) -> f32 { return 0.0; }'}
${WGSL_SOFTPLUS_DT}
const T = ${THREADS}u;
var<workgroup> scan: array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let wg = ${WGSL_LINEAR_WORKGROUP};
  if (wg >= u.batch * u.H * u.nC) { return; }
  let c = wg % u.nC;
  let bh = wg / u.nC;
  let h = bh % u.H;
  let b = bh / u.H;
  let l = c * u.Q + li;
  let valid = li < u.Q && l < u.L;
  var dtv = 0.0;
  if (valid) {
    let raw = dtIn[u.dtOffset + (b * u.L + l) * u.dtStride + h] + loadDtBias(h);
    dtv = clamp(${softplus ? 'softplus_dt(raw)' : 'raw'}, u.dtMin, u.dtMax);
  }
  let A = -exp(loadALog(h));
  scan[li] = dtv * A;
  workgroupBarrier();
  for (var s = 1u; s < T; s <<= 1u) {
    var add = 0.0;
    if (li >= s) { add = scan[li - s]; }
    workgroupBarrier();
    scan[li] += add;
    workgroupBarrier();
  }
  if (valid) {
    dtOut[bh * u.L + l] = dtv;
    dACs[bh * u.L + l] = scan[li];
  }
}`;
  const [dtMin, dtMax] = finiteLimit(attrs.dtLimit);
  return {
    name: 'ssd_chunk_cumsum',
    cacheKey: `${aDtype}|${biasDtype ?? 'none'}|${softplus ? 'sp' : 'raw'}`,
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch(shape.batch * shape.heads * numChunks(shape)),
    bindings,
    uniformLayout: layout,
    uniforms: { batch: shape.batch, L: shape.seqlen, H: shape.heads, Q: shape.chunkSize, nC: numChunks(shape), dtOffset: dt.offset, dtStride: dt.stride, dtMin, dtMax },
  };
}

/**
 * Step 1 of chunked SSD: processed step sizes dt (b, H, L) and the within-chunk
 * cumulative sum of dt·A (b, H, L).
 *
 * @example
 * ```ts
 * const { dt, dACumsum } = ssdChunkCumsum(rt, dtRaw, aLog, dtBias, shape, { dtLimit: [0, Infinity] });
 * ```
 */
export function ssdChunkCumsum(
  runtime: Runtime,
  dt: SsdOperand,
  aLog: TensorLike,
  dtBias: TensorLike | undefined,
  shape: SsdShape,
  attrs: SsdDtAttrs = {},
): { dt: Tensor; dACumsum: Tensor } {
  const op = 'ssdChunkCumsum';
  validateSsdShape(op, shape);
  const { batch: b, seqlen: L, heads: H } = shape;
  const d = resolveOperand(op, 'dt', dt, b * L, H, { batch: b, seqlen: L, heads: H });
  checkPerHead(op, 'A_log', aLog, H);
  if (dtBias) checkPerHead(op, 'dt_bias', dtBias, H);
  const dtOut = runtime.empty([b, H, L], 'f32', 'ssd.dt');
  const dACumsum = runtime.empty([b, H, L], 'f32', 'ssd.dACumsum');
  const kernel = createSsdChunkCumsumKernel(shape, d, {
    aLogDtype: aLog.dtype,
    dtBiasDtype: dtBias ? dtBias.dtype : null,
    dtSoftplus: attrs.dtSoftplus,
    dtLimit: attrs.dtLimit,
  });
  runtime.run(kernel, dtBias ? [d.tensor, aLog, dtBias, dtOut, dACumsum] : [d.tensor, aLog, dtOut, dACumsum]);
  return { dt: dtOut, dACumsum };
}

/**
 * CPU reference of the step size: clamp(softplus(Δ + bias), min, max) (softplus threshold 20, as torch).
 *
 * @example
 * ```ts
 * ssdDtReference(0, 0); // softplus(0) = 0.6931...
 * ssdDtReference(0, 0, { dtLimit: [0, 0.1] }); // 0.1
 * ```
 */
export function ssdDtReference(raw: number, bias: number, attrs: SsdDtAttrs = {}): number {
  const v = raw + bias;
  const sp = (attrs.dtSoftplus ?? true) ? (v > 20 ? v : Math.log1p(Math.exp(v))) : v;
  const [lo, hi] = attrs.dtLimit ?? [0, Infinity];
  return Math.min(Math.max(sp, lo), hi);
}

/**
 * CPU reference of step 1. `dtRaw` is (b, L, H), `A` the per-head decay (A = -exp(A_log)).
 * Returns dt and the within-chunk cumulative sum of dt·A, both (b, H, L).
 *
 * @example
 * ```ts
 * const shape = { batch: 1, seqlen: 7, heads: 2, headDim: 4, dState: 3, groups: 1, chunkSize: 4 };
 * // the five steps of chunked SSD on the CPU (equal to ssdRecurrentReference up to rounding):
 * const { dt, dACumsum } = ssdChunkCumsumReference(dtRaw, A, dtBias, shape);
 * const states = ssdChunkStateReference(x, B, dt, dACumsum, shape);
 * const { entering, final } = ssdStatePassingReference(states, dACumsum, undefined, shape);
 * const cb = ssdBmmReference(C, B, shape);
 * const y = ssdChunkScanReference(x, C, dt, dACumsum, cb, entering, D, shape);
 * ```
 */
export function ssdChunkCumsumReference(
  dtRaw: Float32Array,
  A: Float32Array,
  dtBias: Float32Array | undefined,
  shape: SsdShape,
  attrs: SsdDtAttrs = {},
): { dt: Float32Array; dACumsum: Float32Array } {
  const { batch: b, seqlen: L, heads: H, chunkSize: Q } = shape;
  const dt = new Float32Array(b * H * L);
  const cs = new Float32Array(b * H * L);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < H; h++) {
      let run = 0;
      for (let l = 0; l < L; l++) {
        if (l % Q === 0) run = 0;
        const v = ssdDtReference(dtRaw[(bi * L + l) * H + h], dtBias ? dtBias[h] : 0, attrs);
        run += v * A[h];
        dt[(bi * H + h) * L + l] = v;
        cs[(bi * H + h) * L + l] = run;
      }
    }
  }
  return { dt, dACumsum: cs };
}
