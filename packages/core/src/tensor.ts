/**
 * A tensor is a shape, an element type and the GPU buffer that holds it.
 * Tensors are made by a {@link Runtime}; dispose them to return their buffer to the pool.
 */
import type { DType } from './dtype.js';
import { storageBytes } from './dtype.js';
import { StatespaceError } from './errors.js';

/**
 * Number of elements of a shape.
 *
 * @example
 * ```ts
 * numel([2, 3, 4]); // 24
 * ```
 */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Throws unless every dimension is a non-negative integer.
 *
 * @example
 * ```ts
 * validateShape([2, -1], 'x'); // throws INVALID_ARGUMENT: "x: shape [2,-1] must hold non-negative integers"
 * ```
 */
export function validateShape(shape: readonly number[], what = 'tensor'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new StatespaceError('INVALID_ARGUMENT', `${what}: shape [${shape.join(',')}] must hold non-negative integers`);
    }
  }
}

/** Owner of tensor buffers; implemented by the Runtime. */
export interface TensorOwner {
  /** Takes back the buffer of a disposed tensor (the runtime pools it for reuse). */
  releaseBuffer(buffer: GPUBuffer): void;
}

/**
 * A GPU-resident tensor.
 *
 * @example
 * ```ts
 * const x = runtime.upload(new Float32Array([1, 2, 3, 4]), [2, 2]);
 * console.log(x.shape, x.dtype, x.byteSize); // [2, 2] 'f32' 16
 * console.log(await runtime.read(x));
 * x.dispose();
 * ```
 */
export class Tensor {
  /** Dimensions, outermost first (row-major). */
  readonly shape: readonly number[];
  /** Element type in GPU memory. */
  readonly dtype: DType;
  /** Bytes the data occupies (the buffer itself may be larger: it comes from a size-bucketed pool). */
  readonly byteSize: number;
  /** Name given at creation; labels the GPU buffer and appears in error messages. */
  readonly label: string;
  private buf: GPUBuffer | null;
  private readonly owner: TensorOwner;

  constructor(owner: TensorOwner, buffer: GPUBuffer, shape: readonly number[], dtype: DType, label: string) {
    this.owner = owner;
    this.buf = buffer;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.byteSize = storageBytes(dtype, numel(shape));
    this.label = label;
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** The GPU buffer; throws once the tensor is disposed. */
  get buffer(): GPUBuffer {
    if (!this.buf) throw new StatespaceError('DESTROYED', `tensor ${this.label} was disposed`);
    return this.buf;
  }

  /** True once {@link dispose} was called. */
  get disposed(): boolean {
    return this.buf === null;
  }

  /** A view of the same buffer with another shape of the same element count. */
  reshape(shape: readonly number[]): TensorView {
    if (numel(shape) !== this.size) {
      throw new StatespaceError('SHAPE_MISMATCH', `reshape: [${this.shape.join(',')}] cannot become [${shape.join(',')}]`);
    }
    return new TensorView(this, shape);
  }

  /** Returns the buffer to the runtime's pool. Safe to call twice. */
  dispose(): void {
    if (!this.buf) return;
    this.owner.releaseBuffer(this.buf);
    this.buf = null;
  }
}

/**
 * A reshaped view of a tensor; shares its buffer and does not own it.
 *
 * @example
 * ```ts
 * const x = rt.upload(new Float32Array(12), [2, 6]);
 * const v = x.reshape([2, 2, 3]); // same buffer, no copy; pass it to any op
 * x.dispose(); // the view is then unusable too
 * ```
 */
export class TensorView {
  /** The view's shape (same element count as the base). */
  readonly shape: readonly number[];
  constructor(
    /** The tensor whose buffer this view reads. */
    readonly base: Tensor,
    shape: readonly number[],
  ) {
    this.shape = Object.freeze([...shape]);
  }
  /** The base tensor's dtype. */
  get dtype(): DType {
    return this.base.dtype;
  }
  /** The base tensor's buffer. */
  get buffer(): GPUBuffer {
    return this.base.buffer;
  }
  /** Bytes of the data (the base tensor's). */
  get byteSize(): number {
    return this.base.byteSize;
  }
  /** Number of elements. */
  get size(): number {
    return this.base.size;
  }
  /** The base tensor's label. */
  get label(): string {
    return this.base.label;
  }
  /** Another view of the same buffer with another shape of the same element count. */
  reshape(shape: readonly number[]): TensorView {
    return this.base.reshape(shape);
  }
}

/** Anything a kernel can bind: a tensor or a reshaped view of one. */
export type TensorLike = Tensor | TensorView;
