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
 * Finds keys repeated inside one JSON object (JSON.parse silently keeps the
 * last). Runs on text JSON.parse has already accepted, so it only tracks
 * strings, nesting and whether the next string is a key. Iterative: no
 * recursion, whatever the nesting depth.
 */
function findDuplicateKey(text: string): { key: string; parent?: string } | undefined {
  const stack: { keys: Set<string> | null; expectKey: boolean }[] = [];
  let topKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const raw = text.slice(start, i + 1);
        const key = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (top.keys.has(key)) return { key, parent: stack.length > 1 ? topKey : undefined };
        top.keys.add(key);
        top.expectKey = false;
        if (stack.length === 1) topKey = key;
      }
    } else if (c === 0x7b /* { */) stack.push({ keys: new Set(), expectKey: true });
    else if (c === 0x5b /* [ */) stack.push({ keys: null, expectKey: false });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Parses and validates the JSON header of a safetensors file.
 *
 * @param header   the N header bytes (after the 8-byte length)
 * @param fileSize total size of the file, to check the data section
 * @param file     name used in error messages
 * @throws CheckpointError `SAFETENSORS_HEADER_INVALID`, `SAFETENSORS_DUPLICATE_TENSOR`,
 *   `SAFETENSORS_INVALID_TENSOR`, `SAFETENSORS_UNKNOWN_DTYPE`, `SAFETENSORS_INVALID_OFFSETS`,
 *   `SAFETENSORS_SIZE_MISMATCH`
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
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(header);
  } catch (cause) {
    throw invalid('is not valid UTF-8', cause);
  }
  if (!/^\s*\{/.test(text)) throw invalid(`is not a JSON object (starts with ${JSON.stringify(text.slice(0, 16))})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw invalid(`is not valid JSON: ${(cause as Error).message}`, cause);
  }
  if (!isPlainObject(json)) throw invalid('is not a JSON object');
  const duplicate = findDuplicateKey(text);
  if (duplicate) {
    const tensor = duplicate.parent ?? duplicate.key;
    const what = duplicate.parent === undefined ? `tensor "${duplicate.key}" appears twice` : `key "${duplicate.key}" appears twice in entry "${duplicate.parent}"`;
    throw new CheckpointError('SAFETENSORS_DUPLICATE_TENSOR', `${file}: ${what} in the header`, { file, tensor });
  }

  const dataOffset = 8 + header.byteLength;
  const dataSize = fileSize - dataOffset;
  let metadata: Record<string, string> = {};
  const entries: { info: TensorInfo; begin: number; end: number }[] = [];
  for (const name of Object.keys(json)) {
    const entry = json[name];
    if (name === '__metadata__') {
      if (!isPlainObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
        throw invalid('"__metadata__" must be an object of strings');
      }
      metadata = Object.assign(Object.create(null) as Record<string, string>, entry as Record<string, string>);
      continue;
    }
    const at = where(file, name);
    const bad = (message: string) => new CheckpointError('SAFETENSORS_INVALID_TENSOR', `${at}: ${message}`, { file, tensor: name });
    if (!isPlainObject(entry)) throw bad('entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') throw bad('"dtype" is missing or not a string');
    if (!isSafetensorsDType(dtype)) {
      throw new CheckpointError('SAFETENSORS_UNKNOWN_DTYPE', `${at}: unknown dtype ${JSON.stringify(dtype).slice(0, 40)}`, { file, tensor: name });
    }
    if (!Array.isArray(shape) || !shape.every(isIndex)) throw bad('"shape" must be an array of non-negative integers');
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      throw bad('"data_offsets" must be [begin, end], two non-negative integers');
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) {
      throw new CheckpointError('SAFETENSORS_INVALID_OFFSETS', `${at}: data_offsets [${begin}, ${end}] end before they begin`, { file, tensor: name });
    }
    let bytes = dtypeByteSize(dtype);
    for (const d of shape as number[]) {
      bytes *= d;
      if (!Number.isSafeInteger(bytes)) {
        throw new CheckpointError('SAFETENSORS_SIZE_MISMATCH', `${at}: shape [${shape.join(',')}] x ${dtype} is too large`, { file, tensor: name });
      }
    }
    if (bytes !== end - begin) {
      throw new CheckpointError(
        'SAFETENSORS_SIZE_MISMATCH',
        `${at}: shape [${shape.join(',')}] x ${dtype} needs ${bytes} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`,
        { file, tensor: name },
      );
    }
    entries.push({ info: { name, dtype, shape: Object.freeze([...(shape as number[])]), offset: dataOffset + begin, byteLength: end - begin, file }, begin, end });
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
  return { metadata, tensors: new Map(entries.map((e) => [e.info.name, e.info])), dataOffset };
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
  /** The file that holds `name`. */
  fileOf(name: string): Promise<SafetensorsFile>;
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
export class SafetensorsFile implements Checkpoint {
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
    return this.source.read(info.offset, info.byteLength);
  }

  async read(name: string): Promise<HostTensor> {
    const info = this.tensor(name);
    const data = viewAs(await this.source.read(info.offset, info.byteLength), info.dtype);
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
    if (size < 8) {
      throw new CheckpointError('SAFETENSORS_TRUNCATED', `${file}: ${size} bytes is too short for a safetensors file (the header length alone takes 8)`, { file });
    }
    const prefix = await source.read(0, Math.min(size, PREFIX_BYTES));
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
    const header = 8 + headerLength <= prefix.byteLength ? prefix.subarray(8, 8 + headerLength) : await source.read(8, headerLength);
    return new SafetensorsFile(source, parseSafetensorsHeader(header, size, file), size);
  } catch (error) {
    await source.close();
    throw error;
  }
}
