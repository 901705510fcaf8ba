/**
 * A checkpoint seen through renames and row slices of another, without
 * copying: a row range of a row-major tensor is one contiguous byte range, so
 * a view is only another offset and length in the same file. Used to load
 * fused weights (a qkv `in_proj` split into q, k, v; a padded vocabulary cut
 * to its real rows) with the loaders of this package unchanged.
 */
import { toFloat32, viewAs } from './dtypes.js';
import { CheckpointError, where } from './errors.js';
import type { Checkpoint, HostTensor, TensorFile, TensorInfo } from './safetensors.js';

/** One tensor of a {@link viewCheckpoint}: rows `[start, end)` of `source` (all rows when absent). */
export interface TensorView {
  /** The tensor of the underlying checkpoint. */
  source: string;
  /** Rows (first dimension) `[start, end)`. */
  rows?: [number, number];
}

/**
 * A {@link Checkpoint} whose tensors are `views` of `base`'s (renamed, row-sliced)
 * plus every tensor of `base` that no view reads, under its own name.
 * Bad views (a missing source, rows out of range) fail when the view is first used,
 * with `CHECKPOINT_TENSOR_NOT_FOUND` or `CHECKPOINT_WEIGHTS_MISMATCH`.
 *
 * @example
 * ```ts
 * const seen = viewCheckpoint(await openTorchCheckpoint('pytorch_model.bin'), {
 *   'attn.q_proj.weight': { source: 'attn.in_proj.weight', rows: [0, 256] },
 *   'attn.k_proj.weight': { source: 'attn.in_proj.weight', rows: [256, 320] },
 *   'backbone.embedding.weight': { source: 'backbone.embedding.weight', rows: [0, 50277] }, // padding cut off
 * });
 * ```
 */
export function viewCheckpoint(base: Checkpoint, views: Readonly<Record<string, TensorView>>): Checkpoint {
  const viewed = new Set(Object.values(views).map((v) => v.source));
  const own = Object.prototype.hasOwnProperty;
  const isView = (name: string) => own.call(views, name);
  const names = [...base.names().filter((n) => !viewed.has(n) && !isView(n)), ...Object.keys(views)];
  const nameSet = new Set(names);
  const missing = (name: string) => new CheckpointError('CHECKPOINT_TENSOR_NOT_FOUND', `${where(base.name, name)} is not in the checkpoint`, { file: base.name, tensor: name });
  const sliced = (name: string, info: TensorInfo): TensorInfo => {
    const view = views[name];
    if (!view.rows) return Object.freeze({ ...info, name });
    const [start, end] = view.rows;
    const rows = info.shape[0];
    if (info.shape.length === 0 || !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > rows) {
      throw new CheckpointError('CHECKPOINT_WEIGHTS_MISMATCH', `${where(info.file, view.source)}: rows [${start}, ${end}) of a tensor of shape [${info.shape}] (for ${name})`, { file: info.file, tensor: view.source });
    }
    const rowBytes = rows === 0 ? 0 : info.byteLength / rows;
    return Object.freeze({ ...info, name, shape: Object.freeze([end - start, ...info.shape.slice(1)]), offset: info.offset + start * rowBytes, byteLength: (end - start) * rowBytes });
  };
  const info = async (name: string): Promise<TensorInfo> => {
    if (!nameSet.has(name)) throw missing(name);
    return isView(name) ? sliced(name, await base.info(views[name].source)) : base.info(name);
  };
  // One wrapper per underlying file, so loaders still see neighbouring tensors of one file together.
  const wrappers = new Map<TensorFile, TensorFile>();
  const fileOf = async (name: string): Promise<TensorFile> => {
    if (!nameSet.has(name)) throw missing(name);
    const file = await base.fileOf(isView(name) ? views[name].source : name);
    let wrapper = wrappers.get(file);
    if (!wrapper) {
      wrapper = {
        name: file.name,
        source: file.source,
        tensor: (n) => {
          if (!nameSet.has(n)) throw missing(n);
          return isView(n) ? sliced(n, file.tensor(views[n].source)) : file.tensor(n);
        },
      };
      wrappers.set(file, wrapper);
    }
    return wrapper;
  };
  const readBytes = async (name: string): Promise<Uint8Array> => {
    const file = await fileOf(name);
    const t = file.tensor(name);
    const bytes = await file.source.read(t.offset, t.byteLength);
    if (bytes.byteLength !== t.byteLength) throw new CheckpointError('SAFETENSORS_TRUNCATED', `${where(t.file, name)}: asked for ${t.byteLength} bytes, got ${bytes.byteLength}`, { file: t.file, tensor: name });
    return bytes;
  };
  const read = async (name: string): Promise<HostTensor> => {
    const t = await info(name);
    return { name, dtype: t.dtype, shape: t.shape, data: viewAs(await readBytes(name), t.dtype) };
  };
  return {
    name: base.name,
    metadata: base.metadata,
    names: () => [...names],
    has: (name) => nameSet.has(name),
    info,
    infos: () => Promise.all(names.map(info)),
    fileOf,
    readBytes,
    read,
    readFloat32: async (name) => {
      const t = await read(name);
      return t.dtype === 'F32' ? (t.data as Float32Array) : toFloat32(t.data, t.dtype);
    },
    close: () => base.close(),
  };
}
