/**
 * The element types a safetensors header may name, their sizes and the typed
 * arrays that hold them on the host, plus host conversions of every float type
 * (f16, bf16, f8 e4m3 / e5m2, f64) to f32.
 */
import { f16BitsToF32 } from '@statespace/core';
import { CheckpointError } from './errors.js';

/**
 * Every dtype string this package accepts in a safetensors header.
 *
 * @example
 * ```ts
 * SAFETENSORS_DTYPES.includes('BF16'); // true
 * ```
 */
export const SAFETENSORS_DTYPES = [
  'F64',
  'F32',
  'F16',
  'BF16',
  'F8_E4M3',
  'F8_E5M2',
  'I64',
  'I32',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'BOOL',
] as const;

/**
 * A safetensors element type. `F16` / `BF16` hold raw 16-bit words on the host,
 * `F8_*` and `BOOL` raw bytes.
 */
export type SafetensorsDType = (typeof SAFETENSORS_DTYPES)[number];

const BYTES: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/**
 * True when `value` is one of {@link SAFETENSORS_DTYPES}.
 *
 * @example
 * ```ts
 * isSafetensorsDType('F32'); // true
 * isSafetensorsDType('F4');  // false
 * ```
 */
export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(BYTES, value);
}

/**
 * Bytes per element of a safetensors dtype.
 *
 * @example
 * ```ts
 * dtypeByteSize('BF16'); // 2
 * ```
 */
export function dtypeByteSize(dtype: SafetensorsDType): number {
  return BYTES[dtype];
}

/**
 * True for the float dtypes (F64, F32, F16, BF16, F8_E4M3, F8_E5M2).
 *
 * @example
 * ```ts
 * isFloatDType('BF16'); // true
 * isFloatDType('I32');  // false
 * ```
 */
export function isFloatDType(dtype: SafetensorsDType): boolean {
  return dtype[0] === 'F' || dtype === 'BF16';
}

/** The typed array a tensor of each dtype is read into (raw bits for 16- and 8-bit floats). */
export type HostArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Int8Array;

type HostArrayConstructor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): HostArray;
  new (length: number): HostArray;
  readonly BYTES_PER_ELEMENT: number;
};

const ARRAYS: Record<SafetensorsDType, HostArrayConstructor> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Views little-endian `bytes` as the typed array of `dtype`. The view shares
 * `bytes`' memory when its offset is aligned to the element size (zero-copy);
 * otherwise the bytes are copied once.
 *
 * @example
 * ```ts
 * const values = viewAs(new Uint8Array(new Float32Array([1, 2]).buffer), 'F32'); // Float32Array [1, 2]
 * ```
 */
export function viewAs(bytes: Uint8Array, dtype: SafetensorsDType): HostArray {
  const Ctor = ARRAYS[dtype];
  const size = Ctor.BYTES_PER_ELEMENT;
  const count = Math.floor(bytes.byteLength / size);
  if (!LITTLE_ENDIAN && size > 1) throw new CheckpointError('CHECKPOINT_UNSUPPORTED_DTYPE', `${dtype}: big-endian hosts are not supported`);
  if (bytes.byteOffset % size === 0) return new Ctor(bytes.buffer, bytes.byteOffset, count);
  const copy = new Uint8Array(count * size);
  copy.set(bytes.subarray(0, count * size));
  return new Ctor(copy.buffer, 0, count);
}

let f16Table: Float32Array | undefined;

/** f32 value of every f16 bit pattern (256 KB, built on first use). */
/** @internal */
function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  }
  return f16Table;
}

/**
 * Value of an f8 e4m3 byte (the `fn` variant used by torch.float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN).
 *
 * @example
 * ```ts
 * f8E4M3ToF32(0x38); // 1
 * f8E4M3ToF32(0x7e); // 448, the largest
 * ```
 */
export function f8E4M3ToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exp = (bits >>> 3) & 0xf;
  const mant = bits & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

/**
 * Value of an f8 e5m2 byte (IEEE-like: bias 15, infinities and NaN as in f16).
 *
 * @example
 * ```ts
 * f8E5M2ToF32(0x3c); // 1
 * f8E5M2ToF32(0x7c); // Infinity
 * ```
 */
export function f8E5M2ToF32(bits: number): number {
  return f16BitsToF32((bits & 0xff) << 8);
}

/**
 * Converts a tensor read on the host (any float or integer dtype) to f32 values.
 * 64-bit integers beyond 2^53 lose precision.
 *
 * @example
 * ```ts
 * const t = await checkpoint.read('model.norm.weight'); // BF16 words
 * const values = toFloat32(t.data, t.dtype);            // Float32Array
 * ```
 */
export function toFloat32(data: HostArray, dtype: SafetensorsDType): Float32Array {
  const n = data.length;
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      out.set(data as Float32Array);
      return out;
    case 'BF16': {
      const words = new Uint32Array(out.buffer);
      const bits = data as Uint16Array;
      for (let i = 0; i < n; i++) words[i] = bits[i] << 16;
      return out;
    }
    case 'F16': {
      const table = f16Lookup();
      const bits = data as Uint16Array;
      for (let i = 0; i < n; i++) out[i] = table[bits[i]];
      return out;
    }
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = f8E4M3ToF32((data as Uint8Array)[i]);
      return out;
    case 'F8_E5M2':
      for (let i = 0; i < n; i++) out[i] = f8E5M2ToF32((data as Uint8Array)[i]);
      return out;
    case 'I64':
    case 'U64':
      for (let i = 0; i < n; i++) out[i] = Number((data as BigInt64Array)[i]);
      return out;
    default:
      for (let i = 0; i < n; i++) out[i] = Number((data as Float64Array)[i]);
      return out;
  }
}

export { f16Lookup };
