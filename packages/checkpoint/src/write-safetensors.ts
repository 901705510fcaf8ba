/**
 * A safetensors serializer, for tests and the project's own tools.
 */
import { f32To16 } from '@statespace/core';
import { type SafetensorsDType, dtypeByteSize, isSafetensorsDType } from './dtypes.js';
import { CheckpointError } from './errors.js';

/**
 * One tensor to write. `data` holds the little-endian bytes of `dtype` (any
 * typed array of the right byte length); a Float32Array given for `F16` or
 * `BF16` is converted (round to nearest even).
 */
export interface TensorToWrite {
  /** Element type written in the header. */
  dtype: SafetensorsDType;
  /** Dimensions, outermost first. */
  shape: readonly number[];
  /** The values' bytes (little-endian), exactly shape × dtype size. */
  data: ArrayBufferView;
}

/**
 * Serializes tensors into the bytes of a safetensors file. Tensors are laid
 * out in the order given; the header is padded with spaces so the data
 * section starts 8-byte aligned.
 *
 * @example
 * ```ts
 * const bytes = writeSafetensors(
 *   { 'norm.weight': { dtype: 'F32', shape: [4], data: new Float32Array([1, 1, 1, 1]) } },
 *   { format: 'pt' },
 * );
 * await fs.writeFile('model.safetensors', bytes);
 * ```
 */
export function writeSafetensors(tensors: Readonly<Record<string, TensorToWrite>> | ReadonlyMap<string, TensorToWrite>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, TensorToWrite>);
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = { ...metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of list) {
    if (name === '__metadata__') throw new CheckpointError('SAFETENSORS_INVALID_TENSOR', 'writeSafetensors: "__metadata__" cannot name a tensor', { tensor: name });
    if (!isSafetensorsDType(tensor.dtype)) throw new CheckpointError('SAFETENSORS_UNKNOWN_DTYPE', `writeSafetensors: tensor "${name}" has unknown dtype ${String(tensor.dtype)}`, { tensor: name });
    let data = tensor.data;
    if ((tensor.dtype === 'F16' || tensor.dtype === 'BF16') && data instanceof Float32Array) data = f32To16(data, tensor.dtype === 'F16' ? 'f16' : 'bf16');
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const expected = tensor.shape.reduce((n: number, d: number) => n * d, dtypeByteSize(tensor.dtype));
    if (bytes.byteLength !== expected) {
      throw new CheckpointError('SAFETENSORS_SIZE_MISMATCH', `writeSafetensors: tensor "${name}" has ${bytes.byteLength} bytes, shape [${tensor.shape.join(',')}] x ${tensor.dtype} needs ${expected}`, { tensor: name });
    }
    header[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const withSpaces = new Uint8Array(padded).fill(0x20);
    withSpaces.set(json);
    json = withSpaces;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  new DataView(out.buffer).setUint32(0, json.byteLength, true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const blob of blobs) {
    out.set(blob, at);
    at += blob.byteLength;
  }
  return out;
}
