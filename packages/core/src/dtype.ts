/**
 * Element types and host-side conversions.
 *
 * 16-bit floats are stored on the GPU packed two to a `u32` word, so the same
 * kernels run on adapters without `shader-f16` (WGSL `unpack2x16float`; bf16 is
 * the high half of an f32).
 *
 * 8-bit weights (`q8`): symmetric int8 with one f32 scale per group of 32 consecutive
 * elements (scale = max|w| / 127, q = round(w / scale) in [-127, 127]), stored in blocks of
 * 128 elements over the tensor's row-major element index: 32 u32 words of int8 (4 per word,
 * element 4j + b in byte b, little-endian) then the 4 scales of the block's groups as f32
 * bits, 36 words = 9 16-byte words = 144 bytes (1.125 bytes per weight). The layout depends
 * only on the element index, so a generic element loader needs no shape ({@link wgslLoadFloat}),
 * and 16 consecutive weights starting at an element index divisible by 16 lie in one 16-byte
 * word ({@link wgslLoadQ8x16}). Rows of W (N, K) start on a 16-weight word when K % 16 == 0 and
 * each group lies inside one row when K % 32 == 0 (every model matrix); other K still dequantise
 * exactly, with groups that straddle rows.
 */
import { StatespaceError } from './errors.js';

/** Element type of a tensor as stored in GPU memory. */
export type DType = 'f32' | 'f16' | 'bf16' | 'q8' | 'i32' | 'u32';

/** Elements per q8 block (32 words of int8, then 4 words of scales). */
export const Q8_BLOCK = 128;
/** Elements sharing one q8 scale. */
export const Q8_GROUP = 32;
/** u32 words per q8 block (32 of int8, 4 of f32 scales). */
export const Q8_BLOCK_WORDS = 36;

/**
 * True for the dtypes a weight can have that kernels read as floats (f32, f16, bf16, q8).
 *
 * @example
 * ```ts
 * isFloatWeightDType('q8');  // true
 * isFloatWeightDType('i32'); // false
 * ```
 */
export function isFloatWeightDType(dtype: DType): boolean {
  return dtype === 'f32' || dtype === 'f16' || dtype === 'bf16' || dtype === 'q8';
}

/**
 * Bytes per element (16-bit types are packed in pairs into u32 words on the GPU; q8 takes
 * 1.125: one byte and a quarter of an f32 scale per group of 32, on average).
 *
 * @example
 * ```ts
 * bytesPerElement('f16'); // 2
 * bytesPerElement('q8');  // 1.125
 * bytesPerElement('i32'); // 4
 * ```
 */
export function bytesPerElement(dtype: DType): number {
  return dtype === 'f16' || dtype === 'bf16' ? 2 : dtype === 'q8' ? (Q8_BLOCK_WORDS * 4) / Q8_BLOCK : 4;
}

/**
 * Bytes a GPU buffer needs to hold `count` elements of `dtype` (rounded up to whole 4-byte
 * words; q8 to whole 128-element blocks of 144 bytes).
 *
 * @example
 * ```ts
 * storageBytes('f16', 3); // 8
 * storageBytes('f32', 3); // 12
 * storageBytes('q8', 256); // 288
 * ```
 */
export function storageBytes(dtype: DType, count: number): number {
  if (dtype === 'q8') return Math.ceil(count / Q8_BLOCK) * Q8_BLOCK_WORDS * 4;
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
 * const wq = roundTo(w, 'q8'); // exactly the values a kernel reading q8 weights of w sees
 * ```
 */
export function roundTo(values: Float32Array, dtype: DType): Float32Array {
  if (dtype === 'f32') return values;
  if (dtype === 'f16' || dtype === 'bf16') return f16ToF32(f32To16(values, dtype), dtype);
  if (dtype === 'q8') return dequantizeQ8(quantizeQ8(values), values.length);
  throw new StatespaceError('DTYPE_MISMATCH', `roundTo: ${dtype} is not a float type`);
}

/**
 * Quantises f32 values to the q8 layout (see the file comment): symmetric int8, one scale
 * max|w| / 127 per group of 32 consecutive elements, round half away from zero. Returns the
 * u32 words a q8 tensor's buffer holds (`storageBytes('q8', n) / 4` of them; a partial last
 * block is padded with zeros). Throws `INVALID_ARGUMENT` on a non-finite value.
 *
 * @example
 * ```ts
 * const words = quantizeQ8(w);            // what runtime.upload(w, shape, 'q8') writes
 * const back = dequantizeQ8(words, w.length); // within max|group| / 254 of w
 * ```
 */
export function quantizeQ8(values: ArrayLike<number>): Uint32Array {
  const n = values.length;
  const blocks = Math.ceil(n / Q8_BLOCK);
  const out = new Uint32Array(blocks * Q8_BLOCK_WORDS);
  const scales = new Float32Array(out.buffer);
  for (let g = 0; g * Q8_GROUP < n; g++) {
    const start = g * Q8_GROUP;
    const end = Math.min(n, start + Q8_GROUP);
    let amax = 0;
    for (let i = start; i < end; i++) {
      const v = values[i];
      if (!Number.isFinite(v)) throw new StatespaceError('INVALID_ARGUMENT', `quantizeQ8: element ${i} is ${v}; only finite values can be quantised`);
      amax = Math.max(amax, Math.abs(v));
    }
    const scale = Math.fround(amax / 127);
    const block = Math.floor(g / 4) * Q8_BLOCK_WORDS;
    scales[block + 32 + (g % 4)] = scale;
    if (scale === 0) continue;
    for (let i = start; i < end; i++) {
      const r = values[i] / scale;
      const q = Math.max(-127, Math.min(127, Math.sign(r) * Math.round(Math.abs(r))));
      const j = i % Q8_BLOCK;
      out[block + (j >> 2)] |= (q & 0xff) << (8 * (j & 3));
    }
  }
  return out;
}

/**
 * The values q8 words stand for (`count` of them): q · scale in f32, exactly what a kernel
 * computes when it loads them.
 *
 * @example
 * ```ts
 * const w = dequantizeQ8(await rt.readBytes(t.buffer, t.byteSize).then((b) => new Uint32Array(b)), t.size);
 * ```
 */
export function dequantizeQ8(words: Uint32Array, count: number): Float32Array {
  if (words.length < storageBytes('q8', count) / 4) {
    throw new StatespaceError('SHAPE_MISMATCH', `dequantizeQ8: ${words.length} words cannot hold ${count} q8 elements (expected ${storageBytes('q8', count) / 4})`);
  }
  const out = new Float32Array(count);
  const scales = new Float32Array(words.buffer, words.byteOffset, words.length);
  for (let i = 0; i < count; i++) {
    const block = Math.floor(i / Q8_BLOCK) * Q8_BLOCK_WORDS;
    const j = i % Q8_BLOCK;
    const q = (words[block + (j >> 2)] << (24 - 8 * (j & 3))) >> 24;
    out[i] = q * scales[block + 32 + (j >> 5)];
  }
  return out;
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
  // q8 too is u32 words (int8 quads and scale bits)
  return dtype === 'f32' ? 'f32' : dtype === 'i32' ? 'i32' : 'u32';
}

/**
 * WGSL source of a function `name(i: u32) -> f32` that loads element `i` of
 * buffer `buffer` stored as `dtype`. Used by kernels whose weights may be f32,
 * f16, bf16 or q8 so one kernel body serves all four (the buffer bound as
 * {@link wgslStorageType}'s type).
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
    case 'q8':
      // block b = i / 128 at word 36b; byte i % 4 of word 36b + (i % 128) / 4; scale at word 36b + 32 + (i % 128) / 32
      return `fn ${name}(i: u32) -> f32 { let b = (i >> 7u) * ${Q8_BLOCK_WORDS}u; let j = i & 127u; return f32(bitcast<i32>(${buffer}[b + (j >> 2u)] << (24u - 8u * (j & 3u))) >> 24u) * bitcast<f32>(${buffer}[b + 32u + (j >> 5u)]); }`;
    default:
      throw new StatespaceError('DTYPE_MISMATCH', `wgslLoadFloat: ${dtype} is not a float type`);
  }
}

/**
 * WGSL source of a function `name(e: u32) -> mat4x4<f32>` that loads the 16 q8 weights at
 * elements e .. e + 15 (e a multiple of 16) of `buffer`, bound as `array<vec4<u32>>`, in
 * one 16-byte word plus its group's scale: column c holds elements e + 4c .. e + 4c + 3,
 * dequantised. The word is 9·(e / 128) + (e % 128) / 16; the scales of a block are its 9th word.
 * Also defines its parts, for kernels that issue the loads early and dequantise later:
 * `nameWord(e) -> vec4<u32>`, `nameScale(e) -> f32` and `nameDequant(p, s) -> mat4x4<f32>`.
 * Unpacks with WGSL's `unpack4xI8` (core since the packed_4x8_integer_dot_product extension).
 *
 * @example
 * ```ts
 * wgslLoadQ8x16('loadW16', 'w'); // in a gemv: let m = loadW16(n * u.K + 16u * k); acc += dot(m[0], x0) + ...
 * ```
 */
export function wgslLoadQ8x16(name: string, buffer: string): string {
  return `fn ${name}Word(e: u32) -> vec4<u32> { return ${buffer}[(e >> 7u) * 9u + ((e >> 4u) & 7u)]; }
fn ${name}Scale(e: u32) -> f32 { return bitcast<f32>(${buffer}[(e >> 7u) * 9u + 8u][(e >> 5u) & 3u]); }
fn ${name}Dequant(p: vec4<u32>, s: f32) -> mat4x4<f32> {
  return mat4x4<f32>(vec4<f32>(unpack4xI8(p.x)), vec4<f32>(unpack4xI8(p.y)), vec4<f32>(unpack4xI8(p.z)), vec4<f32>(unpack4xI8(p.w))) * s;
}
fn ${name}(e: u32) -> mat4x4<f32> { return ${name}Dequant(${name}Word(e), ${name}Scale(e)); }`;
}
