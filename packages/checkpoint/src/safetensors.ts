/**
 * The safetensors format, parsed by hand and checked before anything is
 * allocated from it (spec: github.com/huggingface/safetensors, "Format"):
 *
 *   8 bytes   N, the header length, an unsigned little-endian 64-bit integer
 *   N bytes   a UTF-8 JSON object: { "__metadata__"?: {str: str},
 *             "<tensor>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ... }
 *   the rest  the data section; offsets are relative to its start, and the
 *             tensors cover it exactly, without holes or overlaps.
 */
import { type HostArray, type SafetensorsDType, dtypeByteSize, isSafetensorsDType, toFloat32, viewAs } from './dtypes.js';
import { CheckpointError, where } from './errors.js';
import { scanHeader } from './header-scanner.js';
import { type ByteSource, type ByteSourceInput, type UrlSourceOptions, toByteSource } from './sources.js';

/**
 * The largest header the format allows (the limit of the reference Rust implementation).
 *
 * @example
 * ```ts
 * if (headerLength > MAX_HEADER_BYTES) console.error('not a safetensors file');
 * ```
 */
export const MAX_HEADER_BYTES = 100_000_000;

/** How much of a file is read up front in the hope that it holds the whole header (one request instead of two for URLs). */
const PREFIX_BYTES = 64 * 1024;

/**
 * Where one tensor lives and what it holds.
 *
 * @example
 * ```ts
 * const info = await checkpoint.info('backbone.embeddings.weight');
 * console.log(info.dtype, info.shape, info.byteLength, info.file);
 * ```
 */
export interface TensorInfo {
  /** Tensor name, e.g. `model.layers.0.mamba.in_proj.weight`. */
  readonly name: string;
  /** Element type as written in the header (`F32`, `BF16`, ...). */
  readonly dtype: SafetensorsDType;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in its file. */
  readonly offset: number;
  /** Bytes of data (elements x dtype size). */
  readonly byteLength: number;
  /** The file that holds it (path, URL or name). */
  readonly file: string;
}

/** A parsed, validated safetensors header. */
export interface SafetensorsHeader {
  /** The `__metadata__` string map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every tensor, in file order (by offset). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Absolute offset of the data section: 8 + header length. */
  readonly dataOffset: number;
}

/**
 * A tensor read into host memory: `F32` as Float32Array, `F16` / `BF16` as raw
 * Uint16Array words, `I64` as BigInt64Array, `BOOL` / `F8_*` as raw bytes...
 */
export interface HostTensor {
  /** Tensor name. */
  readonly name: string;
  /** Element type in the file. */
  readonly dtype: SafetensorsDType;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** The values, in a typed array matching `dtype` (16-bit floats as raw `Uint16Array` bits). */
  readonly data: HostArray;
}

/**
 * The most tensors one file may hold. Bounds the memory and time an open can
 * cost (a header of 300,000 empty tensors is tiny on disk); far above any real
 * checkpoint file (large models split into shards of a few thousand tensors).
 *
 * @example
 * ```ts
 * if (names.length > MAX_TENSORS) console.error('too many tensors for one safetensors file');
 * ```
 */
export const MAX_TENSORS = 262_144;

/**
 * The most dimensions one tensor may have.
 *
 * @example
 * ```ts
 * if (shape.length > MAX_RANK) console.error('too many dimensions');
 * ```
 */
export const MAX_RANK = 64;

/** A shape for messages, shortened when long. */
function formatShape(shape: readonly number[]): string {
  return shape.length > 8 ? `${shape.slice(0, 8).join(',')},... (${shape.length} dims)` : shape.join(',');
}

/**
 * Parses and validates the JSON header of a safetensors file, in one linear
 * pass (no JSON tree is built). Numbers in `shape` and `data_offsets` must be
 * plain non-negative decimal integers below 2^53; the tensors must cover the
 * data section exactly, without holes or overlaps.
 *
 * @param header   the N header bytes (after the 8-byte length)
 * @param fileSize total size of the file, to check the data section
 * @param file     name used in error messages
 * @throws CheckpointError `SAFETENSORS_HEADER_INVALID`, `SAFETENSORS_DUPLICATE_TENSOR`,
 *   `SAFETENSORS_INVALID_TENSOR`, `SAFETENSORS_UNKNOWN_DTYPE`, `SAFETENSORS_INVALID_OFFSETS`,
 *   `SAFETENSORS_SIZE_MISMATCH`, `SAFETENSORS_TRUNCATED`, `SAFETENSORS_TOO_MANY_TENSORS`
 *
 * @example
 * ```ts
 * const header = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.byteLength, 'model.safetensors');
 * for (const t of header.tensors.values()) console.log(t.name, t.shape);
 * ```
 */
export function parseSafetensorsHeader(header: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const invalid = (message: string, cause?: unknown) =>
    new CheckpointError('SAFETENSORS_HEADER_INVALID', `${file}: header ${message}`, { file, cause });
  if (header.byteLength > MAX_HEADER_BYTES) {
    throw new CheckpointError('SAFETENSORS_HEADER_TOO_LARGE', `${file}: header length ${header.byteLength} exceeds the format's limit of ${MAX_HEADER_BYTES} bytes`, { file });
  }
  const dataOffset = 8 + header.byteLength;
  if (!Number.isSafeInteger(fileSize) || fileSize < dataOffset) {
    throw new CheckpointError('SAFETENSORS_TRUNCATED', `${file}: a ${header.byteLength}-byte header does not fit in a ${fileSize}-byte file`, { file });
  }
  if (header[0] !== 0x7b) throw invalid(`is not a JSON object (it must start with "{", starts with byte ${header[0] ?? 'none'})`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch (cause) {
    throw invalid('is not valid UTF-8', cause);
  }
  const scan = scanHeader(text, { maxTensors: MAX_TENSORS, maxRank: MAX_RANK });
  if (!scan.ok) {
    const { problem } = scan;
    switch (problem.kind) {
      case 'syntax':
      case 'metadata':
        throw invalid(problem.message);
      case 'tooMany':
        throw new CheckpointError('SAFETENSORS_TOO_MANY_TENSORS', `${file}: header ${problem.message} (the limit is MAX_TENSORS = ${MAX_TENSORS})`, { file });
      case 'duplicate':
        throw new CheckpointError('SAFETENSORS_DUPLICATE_TENSOR', `${file}: ${problem.message}`, { file, tensor: problem.tensor });
      default:
        throw new CheckpointError('SAFETENSORS_INVALID_TENSOR', `${where(file, problem.tensor)}: ${problem.message}`, { file, tensor: problem.tensor });
    }
  }

  const dataSize = fileSize - dataOffset;
  const entries: { info: TensorInfo; begin: number; end: number }[] = [];
  for (const { name, dtype, shape, offsets } of scan.entries) {
    const at = where(file, name);
    const bad = (message: string) => new CheckpointError('SAFETENSORS_INVALID_TENSOR', `${at}: ${message}`, { file, tensor: name });
    if (typeof dtype !== 'string') throw bad('"dtype" is missing or not a string');
    if (!isSafetensorsDType(dtype)) {
      throw new CheckpointError('SAFETENSORS_UNKNOWN_DTYPE', `${at}: unknown dtype ${JSON.stringify(dtype).slice(0, 40)}`, { file, tensor: name });
    }
    if (!Array.isArray(shape)) {
      throw bad('tooManyDims' in shape ? `"shape" has more than ${MAX_RANK} dimensions` : '"shape" must be an array of non-negative integers');
    }
    if (!Array.isArray(offsets)) throw bad('"data_offsets" must be [begin, end], two non-negative integers');
    const [begin, end] = offsets;
    if (begin > end) {
      throw new CheckpointError('SAFETENSORS_INVALID_OFFSETS', `${at}: data_offsets [${begin}, ${end}] end before they begin`, { file, tensor: name });
    }
    // The exact element count: 0 when any dimension is 0, otherwise a product that must stay below 2^53.
    let bytes = dtypeByteSize(dtype);
    if (shape.includes(0)) bytes = 0;
    else {
      for (const d of shape) {
        bytes *= d;
        if (!Number.isSafeInteger(bytes)) {
          throw new CheckpointError('SAFETENSORS_SIZE_MISMATCH', `${at}: shape [${formatShape(shape)}] x ${dtype} is too large`, { file, tensor: name });
        }
      }
    }
    if (bytes !== end - begin) {
      throw new CheckpointError(
        'SAFETENSORS_SIZE_MISMATCH',
        `${at}: shape [${formatShape(shape)}] x ${dtype} needs ${bytes} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`,
        { file, tensor: name },
      );
    }
    entries.push({ info: Object.freeze({ name, dtype, shape: Object.freeze(shape), offset: dataOffset + begin, byteLength: end - begin, file }), begin, end });
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const { info, begin, end } of entries) {
    if (begin < covered) {
      throw new CheckpointError('SAFETENSORS_INVALID_OFFSETS', `${where(file, info.name)}: data_offsets [${begin}, ${end}] overlap the previous tensor (which ends at ${covered})`, { file, tensor: info.name });
    }
    if (begin > covered) {
      throw new CheckpointError('SAFETENSORS_INVALID_OFFSETS', `${where(file, info.name)}: data_offsets [${begin}, ${end}] leave a hole after byte ${covered} of the data section`, { file, tensor: info.name });
    }
    if (end > dataSize) {
      throw new CheckpointError(
        'SAFETENSORS_TRUNCATED',
        `${where(file, info.name)}: data_offsets [${begin}, ${end}] lie outside the ${dataSize}-byte data section (the file is truncated or the offsets are wrong)`,
        { file, tensor: info.name },
      );
    }
    covered = end;
  }
  if (covered !== dataSize) {
    throw new CheckpointError('SAFETENSORS_INVALID_OFFSETS', `${file}: the tensors cover ${covered} bytes of a ${dataSize}-byte data section (${dataSize - covered} trailing bytes)`, { file });
  }
  return { metadata: scan.metadata, tensors: new Map(entries.map((e) => [e.info.name, e.info])), dataOffset };
}

/**
 * Where the bytes of some tensors of a checkpoint live: a byte source and, for
 * each tensor it holds, its {@link TensorInfo} (whose `offset` is relative to
 * that source). A {@link SafetensorsFile} is one; a `pytorch_model.bin` gives
 * one for the whole file and one per non-contiguous tensor (copied in memory).
 *
 * @example
 * ```ts
 * const file = await checkpoint.fileOf('lm_head.weight');
 * const info = file.tensor('lm_head.weight');
 * const bytes = await file.source.read(info.offset, info.byteLength);
 * ```
 */
export interface TensorFile {
  /** The file's name for messages. */
  readonly name: string;
  /** Where the bytes are read from. */
  readonly source: ByteSource;
  /** Where `name` lives in `source`. Throws `CHECKPOINT_TENSOR_NOT_FOUND`. */
  tensor(name: string): TensorInfo;
}

/**
 * A set of named tensors read lazily from one or more files: a single
 * `.safetensors` file ({@link SafetensorsFile}) or a sharded checkpoint
 * ({@link ShardedCheckpoint}).
 *
 * @example
 * ```ts
 * const model = await openModel('./mamba-130m');
 * const checkpoint = await model.weights();
 * for (const name of checkpoint.names()) console.log(name, (await checkpoint.info(name)).shape);
 * ```
 */
export interface Checkpoint {
  /** The file (or index) this checkpoint was opened from. */
  readonly name: string;
  /** Metadata: the header's `__metadata__`, or the index's `metadata`. */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Every tensor name, without opening shards. */
  names(): string[];
  /** True when the checkpoint holds `name`. */
  has(name: string): boolean;
  /** Where `name` lives (opens its shard's header). Throws `CHECKPOINT_TENSOR_NOT_FOUND`. */
  info(name: string): Promise<TensorInfo>;
  /** Every tensor's info (opens every shard's header). */
  infos(): Promise<TensorInfo[]>;
  /** The file that holds `name` (the same object for every tensor of one file). */
  fileOf(name: string): Promise<TensorFile>;
  /** The raw little-endian bytes of one tensor. */
  readBytes(name: string): Promise<Uint8Array>;
  /** One tensor in host memory, as the typed array of its dtype. */
  read(name: string): Promise<HostTensor>;
  /** One float or integer tensor converted to f32 on the host. */
  readFloat32(name: string): Promise<Float32Array>;
  /** Closes every file handle. */
  close(): Promise<void>;
}

/**
 * One safetensors file with a validated header; tensors are read on demand.
 * Open it with {@link openSafetensors}. Reads from a {@link bufferSource}
 * return views of its bytes (zero-copy) where the tensor is aligned.
 *
 * @example
 * ```ts
 * const st = await openSafetensors('./model.safetensors');
 * const info = st.tensor('model.norm.weight'); // synchronous: the header is in memory
 * const { data, dtype } = await st.read('model.norm.weight');
 * await st.close();
 * ```
 */
export class SafetensorsFile implements Checkpoint, TensorFile {
  readonly name: string;
  /** The header's `__metadata__` string map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every tensor of the file, in file order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Absolute offset of the data section (8 + header length). */
  readonly dataOffset: number;
  /** Size of the file in bytes. */
  readonly size: number;
  /** Where the bytes are read from. */
  readonly source: ByteSource;

  constructor(source: ByteSource, header: SafetensorsHeader, size: number) {
    this.source = source;
    this.name = source.name;
    this.metadata = header.metadata;
    this.tensors = header.tensors;
    this.dataOffset = header.dataOffset;
    this.size = size;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** Where `name` lives, synchronously. Throws `CHECKPOINT_TENSOR_NOT_FOUND`. */
  tensor(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new CheckpointError('CHECKPOINT_TENSOR_NOT_FOUND', `${where(this.name, name)} is not in the file`, { file: this.name, tensor: name });
    return info;
  }

  async info(name: string): Promise<TensorInfo> {
    return this.tensor(name);
  }

  async infos(): Promise<TensorInfo[]> {
    return [...this.tensors.values()];
  }

  async fileOf(name: string): Promise<SafetensorsFile> {
    this.tensor(name);
    return this;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const info = this.tensor(name);
    return readExactly(this.source, info.offset, info.byteLength, name);
  }

  async read(name: string): Promise<HostTensor> {
    const info = this.tensor(name);
    const data = viewAs(await readExactly(this.source, info.offset, info.byteLength, name), info.dtype);
    return { name, dtype: info.dtype, shape: info.shape, data };
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const t = await this.read(name);
    return t.dtype === 'F32' ? (t.data as Float32Array) : toFloat32(t.data, t.dtype);
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

/**
 * `source.read`, checked: a source (possibly user-written) that answers with
 * more or fewer bytes than asked is an error, never a short or shifted buffer.
 */
export async function readExactly(source: ByteSource, offset: number, length: number, tensor?: string): Promise<Uint8Array> {
  const bytes = await source.read(offset, length);
  if (!(bytes instanceof Uint8Array) || bytes.byteLength !== length) {
    const got = bytes instanceof Uint8Array ? `${bytes.byteLength} bytes` : 'no bytes';
    throw new CheckpointError('SAFETENSORS_TRUNCATED', `${where(source.name, tensor)}: asked for ${length} bytes at ${offset}, the source gave ${got}`, { file: source.name, tensor });
  }
  return bytes;
}

/**
 * Opens a safetensors file: reads and validates its header (nothing else).
 * Every way a file can be malformed gives a {@link CheckpointError} naming the
 * file (and tensor); nothing is allocated beyond the header before it is checked.
 *
 * @example
 * ```ts
 * const st = await openSafetensors('./model.safetensors');   // or a URL, a File, bytes
 * const w = await st.readFloat32('lm_head.weight');
 * await st.close();
 * ```
 */
export async function openSafetensors(input: ByteSourceInput, options: UrlSourceOptions = {}): Promise<SafetensorsFile> {
  const source = toByteSource(input, options);
  try {
    const file = source.name;
    const size = await source.size();
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new CheckpointError('CHECKPOINT_IO', `${file}: the source reports a size of ${String(size)} bytes`, { file });
    }
    if (size < 8) {
      throw new CheckpointError('SAFETENSORS_TRUNCATED', `${file}: ${size} bytes is too short for a safetensors file (the header length alone takes 8)`, { file });
    }
    const prefix = await readExactly(source, 0, Math.min(size, PREFIX_BYTES));
    const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
    const low = view.getUint32(0, true);
    const high = view.getUint32(4, true);
    const headerLength = high * 2 ** 32 + low;
    if (headerLength > MAX_HEADER_BYTES) {
      throw new CheckpointError('SAFETENSORS_HEADER_TOO_LARGE', `${file}: header length ${headerLength} exceeds the format's limit of ${MAX_HEADER_BYTES} bytes`, { file });
    }
    if (8 + headerLength > size) {
      throw new CheckpointError('SAFETENSORS_TRUNCATED', `${file}: header length ${headerLength} runs past the end of the ${size}-byte file`, { file });
    }
    const header = 8 + headerLength <= prefix.byteLength ? prefix.subarray(8, 8 + headerLength) : await readExactly(source, 8, headerLength);
    return new SafetensorsFile(source, parseSafetensorsHeader(header, size, file), size);
  } catch (error) {
    await source.close().catch(() => {});
    throw error;
  }
}
