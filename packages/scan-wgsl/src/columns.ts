/**
 * Column slices: a kernel input that is a contiguous range of the last dimension
 * of a larger row-major tensor, read in place with a row stride and an offset.
 * The Mamba-1 mixer uses them to read x and z from one in_proj output
 * (batch, seqlen, 2·d_inner) and B, C from one x_proj output (batch, seqlen, R + 2N)
 * without copying.
 *
 * Shape glossary:
 *   rows   every leading dimension flattened      W  row width of the source (its last dimension)
 *   w      width of the slice                      start  first column of the slice
 */
import { StatespaceError, type KernelDescriptor, type Runtime, type Tensor, type TensorLike, type UniformLayout, WGSL_BUILTINS, WGSL_LINEAR_WORKGROUP, linearDispatch, wgslBindings,
  memoWgsl,
} from '@statespace/core';

/** Columns [start, start + width) of the last dimension of `tensor`. */
export interface ColumnSlice {
  readonly tensor: TensorLike;
  readonly start: number;
  readonly width: number;
}

/**
 * Describes columns [start, start + width) of the last dimension of `tensor`
 * (no copy; kernels that accept a {@link ColumnSlice} read it in place).
 *
 * @example
 * ```ts
 * const xz = matmul(rt, hidden, inProjWeight);           // (batch, seqlen, 2 * d_inner)
 * const y = causalConv1d(rt, columns(xz, 0, dInner), convWeight, convBias, convState);
 * ```
 */
export function columns(tensor: TensorLike, start: number, width: number): ColumnSlice {
  const W = tensor.shape[tensor.shape.length - 1] ?? 1;
  if (!Number.isInteger(start) || !Number.isInteger(width) || start < 0 || width < 0 || start + width > W) {
    throw new StatespaceError('INVALID_ARGUMENT', `columns: [${start}, ${start + width}) is outside the last dimension (${W}) of ${tensor.label} [${tensor.shape.join(',')}]`);
  }
  return { tensor, start, width };
}

/** True when `v` is a {@link ColumnSlice} rather than a tensor. */
export function isColumnSlice(v: TensorLike | ColumnSlice): v is ColumnSlice {
  return (v as ColumnSlice).tensor !== undefined && typeof (v as ColumnSlice).start === 'number';
}

/** A kernel operand: the buffer to bind and how to index its rows. */
export interface StridedOperand {
  /** What to bind. */
  readonly tensor: TensorLike;
  /** Logical shape: the source's leading dimensions with the slice width last. */
  readonly shape: readonly number[];
  /** Elements between consecutive rows. */
  readonly rowStride: number;
  /** Element offset of column 0 of the slice in each row. */
  readonly offset: number;
}

/** Normalises a tensor or a column slice to a {@link StridedOperand}. */
export function strided(v: TensorLike | ColumnSlice): StridedOperand {
  if (isColumnSlice(v)) {
    const W = v.tensor.shape[v.tensor.shape.length - 1] ?? 1;
    return { tensor: v.tensor, shape: [...v.tensor.shape.slice(0, -1), v.width], rowStride: W, offset: v.start };
  }
  const W = v.shape[v.shape.length - 1] ?? 1;
  return { tensor: v, shape: v.shape, rowStride: W, offset: 0 };
}

const THREADS = 256;
const layout = { rows: 'u32', width: 'u32', srcStride: 'u32', srcOffset: 'u32', dstStride: 'u32', dstOffset: 'u32' } as const satisfies UniformLayout;

/**
 * Builds the strided column copy dst[r, dstOffset + j] = src[r, srcOffset + j] for j < width.
 * @example
 * ```ts
 * const k = createCopyColumnsKernel({ rows: 37, width: 16, srcStride: 80, srcOffset: 48, dstStride: 16, dstOffset: 0 });
 * rt.run(k, [xdbl, B]);
 * ```
 */
export function createCopyColumnsKernel(shape: { rows: number; width: number; srcStride: number; srcOffset: number; dstStride: number; dstOffset: number }): KernelDescriptor {
  const bindings = [
    { name: 'src', type: 'f32', access: 'read' }, // (rows, srcStride)
    { name: 'dst', type: 'f32', access: 'read_write' }, // (rows, dstStride)
  ] as const;
  const wgsl = memoWgsl('copy_columns', 'f32', () => `${wgslBindings(layout, bindings)}
@compute @workgroup_size(${THREADS})
fn main(${WGSL_BUILTINS}) {
  let i = ${WGSL_LINEAR_WORKGROUP} * ${THREADS}u + li;
  if (i >= u.rows * u.width) { return; }
  let r = i / u.width;
  let j = i % u.width;
  dst[r * u.dstStride + u.dstOffset + j] = src[r * u.srcStride + u.srcOffset + j];
}`);
  return {
    name: 'copy_columns',
    cacheKey: 'f32',
    wgsl,
    workgroupSize: [THREADS, 1, 1],
    dispatch: linearDispatch((shape.rows * shape.width) / THREADS),
    bindings,
    uniformLayout: layout,
    uniforms: { ...shape },
  };
}

/**
 * Copies an f32 tensor or column slice into columns [dstStart, dstStart + width) of `dst`
 * (a new contiguous (..., width) tensor when `dst` is omitted).
 *
 * @example
 * ```ts
 * const B = copyColumns(rt, columns(xdbl, rank, dState)); // (batch, seqlen, d_state), contiguous
 * ```
 */
export function copyColumns(runtime: Runtime, src: TensorLike | ColumnSlice, dst?: { tensor: TensorLike; start: number }): Tensor {
  const s = strided(src);
  if (s.tensor.dtype !== 'f32') throw new StatespaceError('DTYPE_MISMATCH', `copyColumns: source must be f32, got ${s.tensor.dtype}`);
  const width = s.shape[s.shape.length - 1] ?? 1;
  const rows = width === 0 ? 0 : s.tensor.size / s.rowStride;
  const out = dst?.tensor ?? runtime.empty(s.shape, 'f32', 'copyColumns.y');
  const dstStride = out.shape[out.shape.length - 1] ?? 1;
  const dstOffset = dst?.start ?? 0;
  if (out.size / dstStride !== rows || dstOffset + width > dstStride) {
    throw new StatespaceError('SHAPE_MISMATCH', `copyColumns: destination [${out.shape.join(',')}] cannot take ${rows} rows of ${width} columns at column ${dstOffset}`);
  }
  runtime.run(createCopyColumnsKernel({ rows, width, srcStride: s.rowStride, srcOffset: s.offset, dstStride, dstOffset }), [s.tensor, out]);
  return out as Tensor;
}
