/**
 * Upload of checkpoint tensors straight into GPU tensors, with the float
 * conversion the caller picks. Core keeps 16-bit floats packed two per u32
 * word (element 2k in the low half), which is exactly the little-endian byte
 * layout of a safetensors F16 / BF16 tensor: kept 16-bit tensors are copied
 * as they are.
 *
 * Tensors are read in file order; small neighbours are read together (one
 * request for many tensors from a URL) and large ones are streamed in chunks,
 * so no more than `chunkBytes` (plus one converted chunk) is held on the host.
 */
import { type DType, Q8_BLOCK, type Runtime, type Tensor, f32ToBf16Bits, f32ToF16Bits, quantizeQ8 } from '@statespace/core';
import { type SafetensorsDType, f16Lookup, viewAs } from './dtypes.js';
import { CheckpointError, where } from './errors.js';
import type { Checkpoint, TensorFile, TensorInfo } from './safetensors.js';

/** A float dtype a tensor can be stored as on the GPU (q8: int8 with per-32 scales, core's dtype.ts). */
export type FloatDType = 'f32' | 'f16' | 'bf16' | 'q8';

/** `keep` stores a float tensor as it is in the file; a {@link FloatDType} converts it. */
export type DTypeChoice = 'keep' | FloatDType;

/** Options of {@link uploadTensor} and {@link loadWeights}. */
export interface UploadOptions {
  /**
   * GPU dtype of float tensors (F32, F16, BF16): `'keep'` (default), `'f32'`,
   * `'f16'`, `'bf16'`, `'q8'` (quantised on the host), or a choice per tensor. Integer tensors (I32, U32) are
   * always uploaded as they are.
   */
  dtype?: DTypeChoice | ((info: TensorInfo) => DTypeChoice);
  /**
   * Let a conversion to f16 (or bf16) turn finite values too large for it into
   * infinities instead of throwing `CHECKPOINT_CONVERSION_OVERFLOW`.
   */
  allowOverflow?: boolean;
  /** Most bytes read (and written to the GPU) at once. Default 64 MiB. */
  chunkBytes?: number;
}

/** One progress event of {@link loadWeights}. */
export interface LoadProgress {
  /** Checkpoint bytes uploaded so far. */
  bytesDone: number;
  /** Checkpoint bytes of every tensor being loaded. */
  bytesTotal: number;
  /** Tensors fully uploaded so far. */
  tensorsDone: number;
  /** Tensors being loaded. */
  tensorsTotal: number;
  /** The tensor being (or just) uploaded. */
  tensor: string;
  /** The file it comes from. */
  file: string;
}

/** Options of {@link loadWeights}. */
export interface LoadWeightsOptions extends UploadOptions {
  /** Which tensors to load: a list of names or a filter (default: all). */
  names?: readonly string[] | ((name: string) => boolean);
  /** Called after each tensor (and each chunk of a large one). */
  onProgress?: (progress: LoadProgress) => void;
}

const DEFAULT_CHUNK = 64 * 1024 * 1024;

const SOURCE_FLOAT: Partial<Record<SafetensorsDType, 'f32' | 'f16' | 'bf16'>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
const SOURCE_INT: Partial<Record<SafetensorsDType, DType>> = { I32: 'i32', U32: 'u32' };

/**
 * The GPU dtype a tensor will get: its own float type for `'keep'`, the
 * choice for float tensors, i32 / u32 for I32 / U32. Throws
 * `CHECKPOINT_UNSUPPORTED_DTYPE` for dtypes that stay on the host (I8, U8,
 * I64, BOOL, F64, F8, ...).
 *
 * @example
 * ```ts
 * gpuDType({ ...info, dtype: 'BF16' }, 'keep'); // 'bf16'
 * gpuDType({ ...info, dtype: 'BF16' }, 'f16');  // 'f16'
 * ```
 */
export function gpuDType(info: TensorInfo, choice: UploadOptions['dtype'] = 'keep'): DType {
  const int = SOURCE_INT[info.dtype];
  if (int) return int;
  const own = SOURCE_FLOAT[info.dtype];
  if (!own) {
    throw new CheckpointError(
      'CHECKPOINT_UNSUPPORTED_DTYPE',
      `${where(info.file, info.name)}: ${info.dtype} tensors cannot be uploaded to the GPU (only F32, F16, BF16, I32, U32); read it on the host with checkpoint.read()`,
      { file: info.file, tensor: info.name },
    );
  }
  const picked = typeof choice === 'function' ? choice(info) : choice;
  if (picked === 'keep') return own;
  if (picked !== 'f32' && picked !== 'f16' && picked !== 'bf16' && picked !== 'q8') {
    throw new CheckpointError('CHECKPOINT_UNSUPPORTED_DTYPE', `${where(info.file, info.name)}: cannot convert ${info.dtype} to ${String(picked)}`, { file: info.file, tensor: info.name });
  }
  return picked;
}

/** True when 16-bit float bits are an infinity. */
function isInf16(bits: number, target: 'f16' | 'bf16'): boolean {
  return target === 'f16' ? (bits & 0x7fff) === 0x7c00 : (bits & 0x7fff) === 0x7f80;
}

/**
 * Converts one chunk of a float tensor's little-endian bytes to the typed
 * array core uploads for `target`; counts finite values that overflowed.
 */
function convertChunk(bytes: Uint8Array, from: SafetensorsDType, target: DType, overflow: { count: number }): Float32Array | Uint16Array | Int32Array | Uint32Array {
  const source = viewAs(bytes, from);
  if (SOURCE_INT[from]) return source as Int32Array | Uint32Array;
  const own = SOURCE_FLOAT[from]!;
  if (own === target) return source as Float32Array | Uint16Array;
  const n = source.length;
  // Every path goes through f32 values: exact for f16 / bf16 -> f32, and the
  // single rounding step for the narrowing conversions.
  let values: Float32Array;
  if (from === 'F32') values = source as Float32Array;
  else if (from === 'BF16') {
    values = new Float32Array(n);
    const words = new Uint32Array(values.buffer);
    const bits = source as Uint16Array;
    for (let i = 0; i < n; i++) words[i] = bits[i] << 16;
  } else {
    values = new Float32Array(n);
    const table = f16Lookup();
    const bits = source as Uint16Array;
    for (let i = 0; i < n; i++) values[i] = table[bits[i]];
  }
  if (target === 'f32') return values;
  if (target === 'q8') return quantizeQ8(values); // whole 128-element blocks: chunks are cut on block boundaries
  const out = new Uint16Array(n);
  const round = target === 'f16' ? f32ToF16Bits : f32ToBf16Bits;
  const narrow = target as 'f16' | 'bf16';
  for (let i = 0; i < n; i++) {
    const h = round(values[i]);
    out[i] = h;
    if (isInf16(h, narrow) && Number.isFinite(values[i])) overflow.count++;
  }
  return out;
}

function chunkSize(options: UploadOptions): number {
  const chunk = Math.floor((options.chunkBytes ?? DEFAULT_CHUNK) / 8) * 8;
  return Math.max(8, chunk);
}

/** Uploads one tensor whose bytes are (partly) in hand; reads the rest of a large tensor in chunks. */
async function uploadInfo(
  runtime: Runtime,
  file: TensorFile,
  info: TensorInfo,
  target: DType,
  options: UploadOptions,
  bytesInHand: Uint8Array | undefined,
  progress: (bytes: number) => void,
): Promise<Tensor> {
  const tensor = runtime.empty(info.shape, target, info.name);
  try {
    const overflow = { count: 0 };
    if (info.byteLength === 0) {
      // nothing to write
    } else if (bytesInHand) {
      runtime.write(tensor, convertChunk(bytesInHand, info.dtype, target, overflow));
      progress(info.byteLength);
    } else {
      // Chunks of an even number of elements keep every 16-bit output chunk 4-byte aligned; q8 chunks are whole blocks.
      const sourceSize = info.byteLength / tensor.size;
      const align = target === 'q8' ? Q8_BLOCK : 2;
      const step = Math.max(align, Math.floor(chunkSize(options) / sourceSize / align) * align) * sourceSize;
      // writeBuffer is queued ahead of unsubmitted commands: submit them first (as runtime.write does).
      runtime.flush();
      let targetOffset = 0;
      for (let done = 0; done < info.byteLength; done += step) {
        const length = Math.min(step, info.byteLength - done);
        const converted = convertChunk(await file.source.read(info.offset + done, length), info.dtype, target, overflow);
        const bytes = new Uint8Array(converted.buffer, converted.byteOffset, converted.byteLength);
        const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
        runtime.device.queue.writeBuffer(tensor.buffer, targetOffset, padded as Uint8Array<ArrayBuffer>, 0, padded.byteLength);
        targetOffset += bytes.byteLength;
        progress(length);
      }
    }
    if (overflow.count > 0 && !options.allowOverflow) {
      throw new CheckpointError(
        'CHECKPOINT_CONVERSION_OVERFLOW',
        `${where(info.file, info.name)}: converting ${info.dtype} to ${target} turned ${overflow.count} finite value(s) into infinities (pass allowOverflow: true to accept, or keep a wider dtype)`,
        { file: info.file, tensor: info.name },
      );
    }
    return tensor;
  } catch (error) {
    tensor.dispose();
    throw error;
  }
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}

/**
 * Reads one tensor and uploads it into a new GPU tensor (converting float
 * tensors as `options.dtype` asks). Large tensors are streamed in chunks.
 *
 * @example
 * ```ts
 * const w = await uploadTensor(runtime, checkpoint, 'lm_head.weight', { dtype: 'f16' });
 * console.log(w.shape, w.dtype); // [vocab, d_model] 'f16'
 * ```
 */
export async function uploadTensor(runtime: Runtime, checkpoint: Checkpoint, name: string, options: UploadOptions = {}): Promise<Tensor> {
  const file = await checkpoint.fileOf(name);
  const info = file.tensor(name);
  const target = gpuDType(info, options.dtype);
  const inHand = info.byteLength > 0 && info.byteLength <= chunkSize(options) ? await file.source.read(info.offset, info.byteLength) : undefined;
  return uploadInfo(runtime, file, info, target, options, inHand, () => {});
}

/**
 * Loads many tensors (default: all) into GPU tensors, in file order, with
 * progress events. Every tensor's dtype is checked before anything is
 * uploaded; on any error the tensors already uploaded are disposed.
 *
 * @example
 * ```ts
 * const model = await openModel('./mamba2-130m');
 * const weights = await loadWeights(runtime, await model.weights(), {
 *   dtype: (info) => (info.name.endsWith('A_log') ? 'f32' : 'f16'),
 *   onProgress: ({ bytesDone, bytesTotal }) => console.log(`${((100 * bytesDone) / bytesTotal).toFixed(0)}%`),
 * });
 * const embeddings = weights.get('backbone.embeddings.weight')!;
 * ```
 */
export async function loadWeights(runtime: Runtime, checkpoint: Checkpoint, options: LoadWeightsOptions = {}): Promise<Map<string, Tensor>> {
  const filter = options.names;
  const names = filter === undefined ? checkpoint.names() : typeof filter === 'function' ? checkpoint.names().filter(filter) : [...new Set(filter)];
  const plan: { file: TensorFile; info: TensorInfo; target: DType }[] = [];
  for (const name of names) {
    const file = await checkpoint.fileOf(name);
    const info = file.tensor(name);
    plan.push({ file, info, target: gpuDType(info, options.dtype) });
  }
  const files = [...new Set(plan.map((p) => p.file))];
  plan.sort((a, b) => files.indexOf(a.file) - files.indexOf(b.file) || a.info.offset - b.info.offset);

  const bytesTotal = plan.reduce((n, p) => n + p.info.byteLength, 0);
  let bytesDone = 0;
  let tensorsDone = 0;
  const chunk = chunkSize(options);
  const out = new Map<string, Tensor>();
  try {
    for (let i = 0; i < plan.length; ) {
      // A run of neighbouring small tensors of one file, read in one go.
      let j = i;
      let end = plan[i].info.offset;
      if (plan[i].info.byteLength <= chunk) {
        while (
          j < plan.length &&
          plan[j].file === plan[i].file &&
          plan[j].info.offset === end &&
          plan[j].info.byteLength <= chunk &&
          end + plan[j].info.byteLength - plan[i].info.offset <= chunk
        ) {
          end += plan[j].info.byteLength;
          j++;
        }
      }
      const block = j > i && end > plan[i].info.offset ? await plan[i].file.source.read(plan[i].info.offset, end - plan[i].info.offset) : undefined;
      const run = j > i ? plan.slice(i, j) : [plan[i]];
      for (const { file, info, target } of run) {
        const emit = () => options.onProgress?.({ bytesDone, bytesTotal, tensorsDone, tensorsTotal: plan.length, tensor: info.name, file: info.file });
        const inHand = block ? block.subarray(info.offset - run[0].info.offset, info.offset - run[0].info.offset + info.byteLength) : undefined;
        let tensorBytes = 0;
        const tensor = await uploadInfo(runtime, file, info, target, options, inHand, (bytes) => {
          bytesDone += bytes;
          tensorBytes += bytes;
          if (tensorBytes < info.byteLength) emit();
        });
        out.set(info.name, tensor);
        tensorsDone++;
        emit();
      }
      i += run.length;
    }
  } catch (error) {
    for (const t of out.values()) t.dispose();
    throw error;
  }
  return out;
}
