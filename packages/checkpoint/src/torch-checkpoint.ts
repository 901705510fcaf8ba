/**
 * `pytorch_model.bin`: what `torch.save(state_dict)` writes since PyTorch 1.6,
 * a zip archive (stored entries) of
 *
 *   <archive>/data.pkl     the state dict, pickled (protocol 2): names -> _rebuild_tensor_v2(storage, offset, size, stride, ...)
 *   <archive>/data/<key>   each storage's raw bytes (aligned to 64 bytes)
 *   <archive>/byteorder    `little` or `big` (absent in files older than PyTorch 1.10: little)
 *
 * The pickle goes through the restricted reader of pickle-reader.ts (no code runs).
 * Contiguous tensors are read in place from the file (zero-copy for
 * {@link bufferSource}s where aligned); non-contiguous views are copied
 * element by element into a contiguous buffer when read.
 */
import { type SafetensorsDType, dtypeByteSize, toFloat32, viewAs } from './dtypes.js';
import { CheckpointError, where } from './errors.js';
import { type PickleValue, type PickledTensor, readPickle } from './pickle-reader.js';
import { type Checkpoint, type HostTensor, MAX_TENSORS, type TensorFile, type TensorInfo, readExactly } from './safetensors.js';
import { type ByteSource, type ByteSourceInput, type UrlSourceOptions, bufferSource, toByteSource } from './sources.js';
import { type ZipEntry, readZipDirectory, zipEntryDataOffset } from './zip-reader.js';

/** One tensor of a torch checkpoint: where it is and how it is laid out. */
interface TorchTensor {
  info: TensorInfo;
  /** Absolute offset of the storage's first byte. */
  storageOffset: number;
  /** Element offset and strides, for non-contiguous views. */
  view?: { offset: number; stride: readonly number[] };
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/**
 * A `torch.save` state dict opened for reading: the same interface as a
 * safetensors file, so {@link loadWeights} and {@link checkWeights} take it.
 * Open it with {@link openTorchCheckpoint}.
 *
 * @example
 * ```ts
 * const checkpoint = await openTorchCheckpoint('./mamba-130m/pytorch_model.bin');
 * for (const info of await checkpoint.infos()) console.log(info.name, info.dtype, info.shape);
 * await checkpoint.close();
 * ```
 */
export class TorchCheckpoint implements Checkpoint {
  readonly name: string;
  /** `{ format: 'pt' }`. */
  readonly metadata: Readonly<Record<string, unknown>> = { format: 'pt' };
  /** Where the bytes are read from. */
  readonly source: ByteSource;
  private readonly tensors: Map<string, TorchTensor>;
  private readonly whole: TensorFile;

  /** @internal Made by {@link openTorchCheckpoint}, which checks every tensor first. */
  constructor(source: ByteSource, tensors: Map<string, TorchTensor>) {
    this.source = source;
    this.name = source.name;
    this.tensors = tensors;
    this.whole = { name: source.name, source, tensor: (name) => this.tensor(name).info };
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private tensor(name: string): TorchTensor {
    const t = this.tensors.get(name);
    if (!t) throw new CheckpointError('CHECKPOINT_TENSOR_NOT_FOUND', `${where(this.name, name)} is not in the file`, { file: this.name, tensor: name });
    return t;
  }

  async info(name: string): Promise<TensorInfo> {
    return this.tensor(name).info;
  }

  async infos(): Promise<TensorInfo[]> {
    return [...this.tensors.values()].map((t) => t.info);
  }

  /** True when `name` is a strided view that {@link readBytes} copies into a contiguous buffer. */
  isCopied(name: string): boolean {
    return this.tensor(name).view !== undefined;
  }

  async fileOf(name: string): Promise<TensorFile> {
    const t = this.tensor(name);
    if (!t.view) return this.whole;
    const bytes = await this.readBytes(name);
    const info = t.info;
    return {
      name: info.file,
      source: bufferSource(bytes, info.file),
      tensor: (n) => {
        if (n !== name) throw new CheckpointError('CHECKPOINT_TENSOR_NOT_FOUND', `${info.file} holds the copied view ${name} only, not ${n}`, { file: info.file, tensor: n });
        return info;
      },
    };
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.tensor(name);
    const { info } = t;
    if (!t.view) return readExactly(this.source, info.offset, info.byteLength, name);
    // A strided view: read the span of the storage it touches, then gather.
    const size = dtypeByteSize(info.dtype);
    const count = info.byteLength / size;
    const out = new Uint8Array(info.byteLength);
    if (count === 0) return out;
    let last = t.view.offset;
    for (let d = 0; d < info.shape.length; d++) last += (info.shape[d] - 1) * t.view.stride[d];
    const span = await readExactly(this.source, t.storageOffset + t.view.offset * size, (last - t.view.offset + 1) * size, name);
    const rank = info.shape.length;
    const index = new Array<number>(rank).fill(0);
    let at = 0; // element offset within span
    for (let e = 0; e < count; e++) {
      out.set(span.subarray(at * size, at * size + size), e * size);
      for (let d = rank - 1; d >= 0; d--) {
        index[d]++;
        at += t.view.stride[d];
        if (index[d] < info.shape[d]) break;
        at -= index[d] * t.view.stride[d];
        index[d] = 0;
      }
    }
    return out;
  }

  async read(name: string): Promise<HostTensor> {
    const { info } = this.tensor(name);
    return { name, dtype: info.dtype, shape: info.shape, data: viewAs(await this.readBytes(name), info.dtype) };
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const t = await this.read(name);
    return t.dtype === 'F32' ? (t.data as Float32Array) : toFloat32(t.data, t.dtype);
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

/** The pickle's state dict as (name, tensor) pairs, or a typed error saying what else it is. */
function stateDictEntries(value: PickleValue, file: string): [string, PickledTensor][] {
  if (typeof value !== 'object' || value === null || value.kind !== 'dict') {
    throw new CheckpointError('TORCH_UNSUPPORTED', `${file}: the pickled object is not a state dict (a dict of tensors)`, { file });
  }
  const out: [string, PickledTensor][] = [];
  const seen = new Set<string>();
  for (let i = 0; i < value.keys.length; i++) {
    const key = value.keys[i];
    const v = value.values[i];
    if (typeof key !== 'string') throw new CheckpointError('TORCH_UNSUPPORTED', `${file}: the state dict has a key that is not a string`, { file });
    if (typeof v !== 'object' || v === null || v.kind !== 'tensor') {
      const what = v === null ? 'None' : typeof v === 'object' ? `a ${v.kind}` : `a ${typeof v}`;
      throw new CheckpointError('TORCH_UNSUPPORTED', `${where(file, key)}: the value is ${what}, not a tensor (a checkpoint holding more than a state dict, e.g. {"model": ..., "optimizer": ...}, is not read)`, { file, tensor: key });
    }
    if (seen.has(key)) throw new CheckpointError('TORCH_INVALID', `${where(file, key)}: appears twice in the state dict`, { file, tensor: key });
    seen.add(key);
    out.push([key, v]);
  }
  if (out.length > MAX_TENSORS) throw new CheckpointError('TORCH_INVALID', `${file}: ${out.length} tensors (the limit is MAX_TENSORS = ${MAX_TENSORS})`, { file });
  return out;
}

/** The legacy format's first bytes: PROTO 2, then LONG1 of 10 bytes (the magic number 0x1950a86a20f9469cfc6c). */
function isLegacy(head: Uint8Array): boolean {
  return head[0] === 0x80 && head[1] === 0x02 && head[2] === 0x8a && head[3] === 0x0a && head[4] === 0x6c && head[5] === 0xfc && head[6] === 0x9c && head[7] === 0x46;
}

/**
 * Opens a `torch.save` state dict (`pytorch_model.bin`, `*.pt`): reads the zip
 * directory and the pickle (restricted: no code runs), checks every tensor's
 * storage, dtype, size and strides against the archive. Tensor bytes are read
 * on demand.
 *
 * @throws CheckpointError `UNSAFE_PICKLE` (a global, callable or opcode outside the
 *   allow-list), `TORCH_LEGACY_FORMAT` (pre-1.6 non-zip files), `TORCH_BIG_ENDIAN`,
 *   `TORCH_UNSUPPORTED` (compressed entries, complex or quantized storages, values
 *   that are not tensors), `TORCH_INVALID` (anything malformed).
 * @example
 * ```ts
 * const checkpoint = await openTorchCheckpoint('./pytorch_model.bin'); // or a URL, a File, bytes
 * const w = await checkpoint.readFloat32('backbone.norm_f.weight');
 * await checkpoint.close();
 * ```
 */
export async function openTorchCheckpoint(input: ByteSourceInput, options: UrlSourceOptions = {}): Promise<TorchCheckpoint> {
  const source = toByteSource(input, options);
  const file = source.name;
  try {
    const size = await source.size();
    if (!Number.isSafeInteger(size) || size < 0) throw new CheckpointError('CHECKPOINT_IO', `${file}: the source reports a size of ${String(size)} bytes`, { file });
    const head = await readExactly(source, 0, Math.min(size, 8));
    if (isLegacy(head)) {
      throw new CheckpointError('TORCH_LEGACY_FORMAT', `${file}: a legacy (PyTorch < 1.6, non-zip) torch.save file; re-save it with a current PyTorch (torch.save(torch.load(path, weights_only=True), path)) or convert it to safetensors`, { file });
    }
    if (!(head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)) {
      throw new CheckpointError('TORCH_INVALID', `${file}: not a PyTorch zip archive (it does not start with a zip local header)`, { file });
    }
    const dir = await readZipDirectory(source, size);
    const pickles = [...dir.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pickles.length !== 1) {
      throw new CheckpointError('TORCH_INVALID', `${file}: expected one <archive>/data.pkl, found ${pickles.length === 0 ? 'none' : pickles.join(', ')} (a TorchScript archive or another zip?)`, { file });
    }
    const prefix = pickles[0].slice(0, -'data.pkl'.length);
    const entry = (name: string): ZipEntry | undefined => dir.entries.get(prefix + name);
    const order = entry('byteorder');
    if (order) {
      const at = await zipEntryDataOffset(source, order, dir.directoryOffset);
      const text = new TextDecoder().decode(await readExactly(source, at, Math.min(order.size, 16)));
      if (text === 'big') throw new CheckpointError('TORCH_BIG_ENDIAN', `${file}: saved on a big-endian machine (byteorder "big"); load and re-save it on a little-endian one`, { file });
      if (text !== 'little') throw new CheckpointError('TORCH_INVALID', `${file}: byteorder is ${JSON.stringify(text)}, expected "little" or "big"`, { file });
    }
    const pkl = dir.entries.get(pickles[0])!;
    const pklAt = await zipEntryDataOffset(source, pkl, dir.directoryOffset);
    const value = readPickle(await readExactly(source, pklAt, pkl.size), file);

    const storages = new Map<string, { offset: number; size: number; dtype: SafetensorsDType; numel: number }>();
    const entries = stateDictEntries(value, file);
    // Every storage's member and size first, then their local headers, read a few at a time (one request each over HTTP).
    const members = new Map<string, ZipEntry>();
    for (const [name, { storage }] of entries) {
      const bad = (message: string) => new CheckpointError('TORCH_INVALID', `${where(file, name)}: ${message}`, { file, tensor: name });
      const s = storages.get(storage.key);
      if (!s) {
        const member = entry(`data/${storage.key}`);
        if (!member) throw bad(`its storage ${prefix}data/${storage.key} is not in the archive`);
        const bytes = storage.numel * dtypeByteSize(storage.dtype);
        if (!Number.isSafeInteger(bytes) || bytes !== member.size) throw bad(`its storage holds ${member.size} bytes, ${storage.numel} x ${storage.dtype} needs ${bytes}`);
        storages.set(storage.key, { offset: -1, size: member.size, dtype: storage.dtype, numel: storage.numel });
        members.set(storage.key, member);
      } else if (s.dtype !== storage.dtype || s.numel !== storage.numel) {
        throw bad(`storage ${storage.key} is named as ${storage.numel} x ${storage.dtype} here and ${s.numel} x ${s.dtype} elsewhere`);
      }
    }
    const keys = [...members.keys()];
    for (let i = 0; i < keys.length; i += 16) {
      await Promise.all(keys.slice(i, i + 16).map(async (key) => {
        storages.get(key)!.offset = await zipEntryDataOffset(source, members.get(key)!, dir.directoryOffset);
      }));
    }
    const tensors = new Map<string, TorchTensor>();
    for (const [name, t] of entries) {
      const at = where(file, name);
      const bad = (message: string) => new CheckpointError('TORCH_INVALID', `${at}: ${message}`, { file, tensor: name });
      const { storage } = t;
      const s = storages.get(storage.key)!;
      const elem = dtypeByteSize(storage.dtype);
      let count = 1;
      for (const d of t.shape) {
        count *= d;
        if (!Number.isSafeInteger(count)) throw bad(`size (${t.shape}) is too large`);
      }
      let last = t.offset;
      for (let d = 0; d < t.shape.length; d++) last += Math.max(0, t.shape[d] - 1) * t.stride[d];
      if (count > 0 && (!Number.isSafeInteger(last) || last >= storage.numel)) {
        throw bad(`size (${t.shape}), stride (${t.stride}) at offset ${t.offset} reach element ${last} of a ${storage.numel}-element storage`);
      }
      const contiguous = count === 0 || isContiguous(t.shape, t.stride);
      if (!contiguous && count > storage.numel) {
        // A view that repeats elements (stride 0, torch.expand): never in a state dict, and copying it could allocate without bound.
        throw new CheckpointError('TORCH_UNSUPPORTED', `${at}: a view of ${count} elements over a ${storage.numel}-element storage (overlapping strides (${t.stride})) is not read`, { file, tensor: name });
      }
      const info: TensorInfo = Object.freeze({
        name,
        dtype: storage.dtype,
        shape: Object.freeze([...t.shape]),
        offset: contiguous ? s.offset + t.offset * elem : 0,
        byteLength: count * elem,
        file: contiguous ? file : `${file}#${name}`,
      });
      tensors.set(name, contiguous ? { info, storageOffset: s.offset } : { info, storageOffset: s.offset, view: { offset: t.offset, stride: t.stride } });
    }
    return new TorchCheckpoint(source, tensors);
  } catch (error) {
    await source.close().catch(() => {});
    throw error;
  }
}
