/**
 * Element types and host-side conversions.
 *
 * 16-bit floats are stored on the GPU packed two to a `u32` word, so the same
 * kernels run on adapters without `shader-f16` (WGSL `unpack2x16float`; bf16 is
 * the high half of an f32).
 */
import { StatespaceError } from './errors.js';

/** Element type of a tensor as stored in GPU memory. */
export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32';

/**
 * Bytes per element (16-bit types are packed in pairs into u32 words on the GPU).
 *
 * @example
 * ```ts
 * bytesPerElement('f16'); // 2
 * bytesPerElement('i32'); // 4
 * ```
 */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'f16' || dtype === 'bf16' ? 2 : 4;
}

/**
 * Bytes a GPU buffer needs to hold `count` elements of `dtype` (rounded up to whole 4-byte words).
 *
 * @example
 * ```ts
 * storageBytes('f16', 3); // 8
 * storageBytes('f32', 3); // 12
 * ```
 */
export function storageBytes(dtype: DType, count: number): number {
  return Math.ceil((count * bytesPerElement(dtype)) / 4) * 4;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * Converts one f32 to IEEE half bits, rounding to nearest even.
 *
 * @example
 * ```ts
 * f32ToF16Bits(1); // 0x3c00
 * ```
 */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

/**
 * Converts IEEE half bits to a number.
 *
 * @example
 * ```ts
 * f16BitsToF32(0x3c00); // 1
 * ```
 */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Converts one f32 to bfloat16 bits, rounding to nearest even.
 *
 * @example
 * ```ts
 * f32ToBf16Bits(1); // 0x3f80
 * ```
 */
export function f32ToBf16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Converts bfloat16 bits to a number.
 *
 * @example
 * ```ts
 * bf16BitsToF32(0x3f80); // 1
 * ```
 */
export function bf16BitsToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

/**
 * Converts f32 values to packed 16-bit words of `dtype` ('f16' or 'bf16').
 *
 * @example
 * ```ts
 * f32To16([1, 0.5], 'f16'); // Uint16Array [0x3c00, 0x3800]
 * ```
 */
export function f32To16(values: ArrayLike<number>, dtype: 'f16' | 'bf16'): Uint16Array {
  const out = new Uint16Array(values.length);
  const conv = dtype === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < values.length; i++) out[i] = conv(values[i]);
  return out;
}

/**
 * Converts 16-bit words of `dtype` ('f16' or 'bf16') to f32 values.
 *
 * @example
 * ```ts
 * f16ToF32(new Uint16Array([0x3c00, 0x3800]), 'f16'); // Float32Array [1, 0.5]
 * ```
 */
export function f16ToF32(bits: Uint16Array, dtype: 'f16' | 'bf16'): Float32Array {
  const out = new Float32Array(bits.length);
  if (dtype === 'bf16') {
    const words = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) words[i] = bits[i] << 16;
  } else {
    for (let i = 0; i < bits.length; i++) out[i] = f16BitsToF32(bits[i]);
  }
  return out;
}

/**
 * Rounds every value through `dtype` and back, the way a kernel will see it.
 *
 * @example
 * ```ts
 * roundTo(new Float32Array([0.1]), 'bf16'); // Float32Array [0.10009765625]
 * const expected = myOpReference(roundTo(w, 'f16')); // a reference for a kernel reading f16 weights
 * ```
 */
export function roundTo(values: Float32Array, dtype: DType): Float32Array {
  if (dtype === 'f32') return values;
  if (dtype === 'f16' || dtype === 'bf16') return f16ToF32(f32To16(values, dtype), dtype);
  throw new StatespaceError('DTYPE_MISMATCH', `roundTo: ${dtype} is not a float type`);
}

/**
 * WGSL storage element type for a dtype (16-bit types are read as packed u32 words).
 *
 * @example
 * ```ts
 * wgslStorageType('bf16'); // 'u32'
 * const bindings = [{ name: 'w', type: wgslStorageType(weightDtype), access: 'read' }] as const;
 * ```
 */
export function wgslStorageType(dtype: DType): 'f32' | 'i32' | 'u32' {
  return dtype === 'f32' ? 'f32' : dtype === 'i32' ? 'i32' : 'u32';
}

/**
 * WGSL source of a function `name(i: u32) -> f32` that loads element `i` of
 * buffer `buffer` stored as `dtype`. Used by kernels whose weights may be f32,
 * f16 or bf16 so one kernel body serves all three.
 *
 * @example
 * ```ts
 * wgslLoadFloat('loadW', 'w', 'f16');
 * // 'fn loadW(i: u32) -> f32 { return unpack2x16float(w[i >> 1u])[i & 1u]; }'
 * ```
 */
export function wgslLoadFloat(name: string, buffer: string, dtype: DType): string {
  switch (dtype) {
    case 'f32':
      return `fn ${name}(i: u32) -> f32 { return ${buffer}[i]; }`;
    case 'f16':
      return `fn ${name}(i: u32) -> f32 { return unpack2x16float(${buffer}[i >> 1u])[i & 1u]; }`;
    case 'bf16':
      return `fn ${name}(i: u32) -> f32 { let w = ${buffer}[i >> 1u]; return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }`;
    default:
      throw new StatespaceError('DTYPE_MISMATCH', `wgslLoadFloat: ${dtype} is not a float type`);
  }
}
