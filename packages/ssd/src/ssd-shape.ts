/**
 * Shapes and strided operands shared by the SSD kernels.
 *
 * Shape glossary (Mamba-2 paper, "Transformers are SSMs", section 6):
 *   b  batch            L  sequence length (tokens)       H  heads
 *   P  head dimension    N  state dimension (d_state)      G  groups (B and C are shared by H / G heads)
 *   Q  chunk length      nC number of chunks = ceil(L / Q)
 */
import { StatespaceError, assertArg, type TensorLike } from '@statespace/core';

/** Sizes of one SSD call. */
export interface SsdShape {
  /** b */
  batch: number;
  /** L */
  seqlen: number;
  /** H */
  heads: number;
  /** P */
  headDim: number;
  /** N (d_state) */
  dState: number;
  /** G: B and C are shared by groups of H / G consecutive heads. */
  groups: number;
  /** Q: tokens per chunk (16 to 256; results do not depend on it beyond rounding). */
  chunkSize: number;
}

/** How Δ is turned into the step size: dt = clamp(softplus(dt + dt_bias), min, max). */
export interface SsdDtAttrs {
  /** Apply softplus to dt + dt_bias (default true, as every Mamba-2 family does). */
  dtSoftplus?: boolean;
  /** transformers' `time_step_limit` (default [0, Infinity]). */
  dtLimit?: readonly [number, number];
}

/**
 * A tensor read as rows of `width` values starting at element `offset` of each
 * `stride`-long row, so one projection buffer can feed several inputs without copies.
 *
 * @example
 * ```ts
 * // dt lives in the last H columns of the in_proj output (b * L, projSize)
 * const dt: SsdStridedOperand = { tensor: zxbcdt, offset: projSize - H, stride: projSize };
 * ```
 */
export interface SsdStridedOperand {
  tensor: TensorLike;
  /** Element offset of row 0, column 0. */
  offset: number;
  /** Elements between consecutive rows (tokens). */
  stride: number;
}

/** A contiguous tensor or a {@link SsdStridedOperand}. */
export type SsdOperand = TensorLike | SsdStridedOperand;

/** The largest chunk the kernels support (one workgroup of 256 threads scans a chunk). */
export const SSD_MAX_CHUNK = 256;

/**
 * Number of chunks nC = ceil(L / Q).
 *
 * @example
 * ```ts
 * numChunks({ batch: 1, seqlen: 7, heads: 2, headDim: 4, dState: 3, groups: 1, chunkSize: 4 }); // 2
 * ```
 */
export function numChunks(shape: SsdShape): number {
  return Math.ceil(shape.seqlen / shape.chunkSize);
}

/**
 * Throws unless the shape is one the kernels support.
 *
 * @example
 * ```ts
 * validateSsdShape('ssdChunked', { ...shape, chunkSize: 512 }); // throws: chunkSize=512 exceeds the supported maximum of 256
 * ```
 */
export function validateSsdShape(op: string, shape: SsdShape): void {
  const { batch, seqlen, heads, headDim, dState, groups, chunkSize } = shape;
  for (const [k, v] of Object.entries({ batch, seqlen, heads, headDim, dState, groups, chunkSize })) {
    assertArg(Number.isInteger(v) && v >= 1, op, `${k} must be a positive integer, got ${v}`);
  }
  assertArg(heads % groups === 0, op, `heads=${heads} must be a multiple of groups=${groups}`);
  assertArg(chunkSize <= SSD_MAX_CHUNK, op, `chunkSize=${chunkSize} exceeds the supported maximum of ${SSD_MAX_CHUNK}`);
}

function isStrided(o: SsdOperand): o is SsdStridedOperand {
  return (o as SsdStridedOperand).tensor !== undefined && (o as SsdStridedOperand).stride !== undefined;
}

/**
 * Resolves an operand read as `rows` rows of `width` values, checking it is in range.
 *
 * @example
 * ```ts
 * // B: (b·L) rows of G·N values, contiguous or strided inside the in_proj output
 * const b = resolveOperand('ssdChunkState', 'B', B, batch * seqlen, groups * dState, { batch, seqlen, groups, dState });
 * createSsdChunkStateKernel(shape, x, b); // b: { tensor, offset, stride }
 * ```
 */
export function resolveOperand(op: string, name: string, operand: SsdOperand, rows: number, width: number, expected: Record<string, number>): SsdStridedOperand {
  if (!isStrided(operand)) {
    if (operand.size !== rows * width) {
      const described = Object.entries(expected)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
      throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape [${operand.shape.join(',')}], expected [${described}]`);
    }
    assertArg(operand.dtype === 'f32', op, `${name} must be f32, got ${operand.dtype}`);
    return { tensor: operand, offset: 0, stride: width };
  }
  const { tensor, offset, stride } = operand;
  assertArg(tensor.dtype === 'f32', op, `${name} must be f32, got ${tensor.dtype}`);
  assertArg(Number.isInteger(offset) && offset >= 0 && Number.isInteger(stride) && stride >= width, op, `${name}: offset ${offset} / stride ${stride} cannot hold rows of ${width} values`);
  if (offset + (rows - 1) * stride + width > tensor.size) {
    throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} reads ${rows} rows of ${width} values at offset ${offset}, stride ${stride}, past the end of a tensor of ${tensor.size} elements`);
  }
  return operand;
}

/**
 * Checks a per-head parameter (A_log, dt_bias, D) of H values.
 *
 * @example
 * ```ts
 * checkPerHead('ssdChunked', 'A_log', aLog, shape.heads); // SHAPE_MISMATCH unless aLog has H elements
 * ```
 */
export function checkPerHead(op: string, name: string, t: TensorLike, heads: number): void {
  if (t.size !== heads) throw new StatespaceError('SHAPE_MISMATCH', `${op}: ${name} has shape [${t.shape.join(',')}], expected [heads=${heads}]`);
  assertArg(t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'bf16', op, `${name} must be a float tensor, got ${t.dtype}`);
}

/** f32 max, used instead of Infinity in uniforms (some shader compilers assume finite math). */
export const F32_MAX = 3.4028234663852886e38;

/**
 * Clamps a dt limit to finite f32 values for a uniform block.
 *
 * @example
 * ```ts
 * finiteLimit([0, Infinity]); // [0, F32_MAX]
 * ```
 */
export function finiteLimit(limit: readonly [number, number] | undefined): [number, number] {
  const [lo, hi] = limit ?? [0, Infinity];
  return [Math.max(lo, -F32_MAX), Math.min(hi, F32_MAX)];
}

/**
 * WGSL `softplus_dt(x)`: torch's softplus (threshold 20) with log1p accuracy for small
 * exp(x): Mamba-2's dt_bias puts x near log(dt) for dt in [1e-3, 0.1], where
 * log(1 + exp(x)) in f32 would lose up to 1e-4 of dt's relative precision.
 */
export const WGSL_SOFTPLUS_DT = `
fn softplus_dt(x: f32) -> f32 {
  if (x > 20.0) { return x; }
  let e = exp(x);
  if (e < 0.03) { return e * (1.0 - e * (0.5 - e * (1.0 / 3.0 - e * 0.25))); }
  return log(1.0 + e);
}`;
