/**
 * Hand-built PyTorch files for this package's tests (not exported): a zip
 * writer (stored entries, 64-byte aligned data as torch.save writes) and pickle
 * bytes assembled opcode by opcode, so refusal cases can be written exactly.
 */

const encoder = new TextEncoder();

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (let i = 0; i < bytes.length; i++) {
    c ^= bytes[i];
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** One member of a hand-built zip; `method` 8 claims deflate (the data is left as is). */
export interface ZipMember {
  name: string;
  data: Uint8Array;
  method?: number;
}

/**
 * A zip archive of `members` as torch.save lays it out: local headers padded so data starts on
 * 64-byte boundaries. `zip64` writes what a > 4 GiB archive has: saturated 32-bit fields, the
 * 64-bit values in zip64 extra fields, and the zip64 end record and locator.
 */
export function writeZip(members: ZipMember[], options: { zip64?: boolean } = {}): Uint8Array {
  const zip64 = options.zip64 ?? false;
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let at = 0;
  for (const m of members) {
    const name = encoder.encode(m.name);
    let extra = (64 - ((at + 30 + name.length + 4) % 64)) % 64;
    const extraField = new Uint8Array(4 + extra);
    new DataView(extraField.buffer).setUint16(0, 0x5346, true);
    new DataView(extraField.buffer).setUint16(2, extra, true);
    const local = new Uint8Array(30 + name.length + extraField.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, m.method ?? 0, true);
    lv.setUint32(14, crc32(m.data), true);
    lv.setUint32(18, m.data.length, true);
    lv.setUint32(22, m.data.length, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, extraField.length, true);
    local.set(name, 30);
    local.set(extraField, 30 + name.length);
    const cd = new Uint8Array(46 + name.length + (zip64 ? 28 : 0));
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 45, true);
    cv.setUint16(6, 45, true);
    cv.setUint16(10, m.method ?? 0, true);
    cv.setUint32(16, crc32(m.data), true);
    cv.setUint32(20, zip64 ? 0xffffffff : m.data.length, true);
    cv.setUint32(24, zip64 ? 0xffffffff : m.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, zip64 ? 0xffffffff : at, true);
    cd.set(name, 46);
    if (zip64) {
      // id 1, 24 bytes: uncompressed size, compressed size, local header offset
      cv.setUint16(30, 28, true);
      const x = 46 + name.length;
      cv.setUint16(x, 1, true);
      cv.setUint16(x + 2, 24, true);
      cv.setBigUint64(x + 4, BigInt(m.data.length), true);
      cv.setBigUint64(x + 12, BigInt(m.data.length), true);
      cv.setBigUint64(x + 20, BigInt(at), true);
    }
    central.push(cd);
    parts.push(local, m.data);
    at += local.length + m.data.length;
    extra = 0;
  }
  const dirOffset = at;
  const dirSize = central.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, zip64 ? 0xffff : members.length, true);
  ev.setUint16(10, zip64 ? 0xffff : members.length, true);
  ev.setUint32(12, zip64 ? 0xffffffff : dirSize, true);
  ev.setUint32(16, zip64 ? 0xffffffff : dirOffset, true);
  const tail: Uint8Array[] = [];
  if (zip64) {
    const record = new Uint8Array(56);
    const rv = new DataView(record.buffer);
    rv.setUint32(0, 0x06064b50, true);
    rv.setBigUint64(4, 44n, true);
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(members.length), true);
    rv.setBigUint64(32, BigInt(members.length), true);
    rv.setBigUint64(40, BigInt(dirSize), true);
    rv.setBigUint64(48, BigInt(dirOffset), true);
    const locator = new Uint8Array(20);
    const lv2 = new DataView(locator.buffer);
    lv2.setUint32(0, 0x07064b50, true);
    lv2.setBigUint64(8, BigInt(dirOffset + dirSize), true);
    lv2.setUint32(16, 1, true);
    tail.push(record, locator);
  }
  const all = [...parts, ...central, ...tail, end];
  const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  let p = 0;
  for (const part of all) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

/** Pickle bytes, opcode by opcode. */
export class PickleBuilder {
  private readonly bytes: number[] = [];

  raw(...values: number[]): this {
    this.bytes.push(...values);
    return this;
  }
  proto(version = 2): this {
    return this.raw(0x80, version);
  }
  global(module: string, name: string): this {
    return this.raw(0x63, ...encoder.encode(`${module}\n${name}\n`));
  }
  unicode(text: string): this {
    const t = encoder.encode(text);
    return this.raw(0x58, t.length & 0xff, (t.length >>> 8) & 0xff, (t.length >>> 16) & 0xff, t.length >>> 24, ...t);
  }
  shortUnicode(text: string): this {
    const t = encoder.encode(text);
    return this.raw(0x8c, t.length, ...t);
  }
  int(value: number): this {
    if (value >= 0 && value < 256) return this.raw(0x4b, value);
    if (value >= 0 && value < 65536) return this.raw(0x4d, value & 0xff, value >>> 8);
    return this.raw(0x4a, value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
  }
  ints(values: number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  put(index: number): this {
    return this.raw(0x71, index);
  }
  get(index: number): this {
    return this.raw(0x68, index);
  }
  persid(): this {
    return this.raw(0x51);
  }
  newFalse(): this {
    return this.raw(0x89);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  /** `_rebuild_tensor_v2(storage pid, offset, size, stride, False, OrderedDict())`, as torch writes it. */
  tensor(t: TensorSpec): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().unicode('storage').global('torch', t.storageType ?? 'FloatStorage').unicode(t.key).unicode('cpu').int(t.numel).tuple().persid();
    this.int(t.offset ?? 0).ints(t.shape).ints(t.stride ?? contiguousStride(t.shape)).newFalse();
    this.global('collections', 'OrderedDict').emptyTuple().reduce();
    return this.tuple().reduce();
  }
  done(): Uint8Array {
    return new Uint8Array(this.bytes);
  }
}

/** A tensor of a hand-built state dict. */
export interface TensorSpec {
  storageType?: string;
  key: string;
  numel: number;
  offset?: number;
  shape: number[];
  stride?: number[];
}

export function contiguousStride(shape: number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= shape[i];
  }
  return out;
}

/** The pickle of an OrderedDict state dict; `metadata` adds the `_metadata` attribute state (BUILD) that Module.state_dict() carries. */
export function stateDictPickle(tensors: Record<string, TensorSpec>, options: { metadata?: boolean } = {}): Uint8Array {
  const p = new PickleBuilder().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const [name, t] of Object.entries(tensors)) p.unicode(name).tensor(t);
  p.setitems();
  if (options.metadata) {
    p.emptyDict().unicode('_metadata').global('collections', 'OrderedDict').emptyTuple().reduce();
    p.mark().unicode('').emptyDict().unicode('version').int(1).raw(0x73).setitems().raw(0x73).build();
  }
  return p.stop().done();
}

/** A whole torch.save-style archive: `archive/data.pkl`, `archive/byteorder`, `archive/data/<key>`. */
export function torchArchive(pickle: Uint8Array, storages: Record<string, Uint8Array>, options: { byteorder?: string | null; archive?: string; method?: number; zip64?: boolean } = {}): Uint8Array {
  const a = options.archive ?? 'archive';
  const members: ZipMember[] = [{ name: `${a}/data.pkl`, data: pickle }];
  if (options.byteorder !== null) members.push({ name: `${a}/byteorder`, data: encoder.encode(options.byteorder ?? 'little') });
  for (const [key, data] of Object.entries(storages)) members.push({ name: `${a}/data/${key}`, data, method: options.method });
  members.push({ name: `${a}/version`, data: encoder.encode('3\n') });
  return writeZip(members, { zip64: options.zip64 });
}

/** Little-endian f32 bytes of `values`. */
export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** The torch storage class of each dtype the restricted reader knows. */
const STORAGE_TYPES: Record<string, [storage: string, bytes: number]> = {
  F32: ['FloatStorage', 4], F16: ['HalfStorage', 2], BF16: ['BFloat16Storage', 2], F64: ['DoubleStorage', 8], I64: ['LongStorage', 8],
  I32: ['IntStorage', 4], I16: ['ShortStorage', 2], I8: ['CharStorage', 1], U8: ['ByteStorage', 1], BOOL: ['BoolStorage', 1],
};

/** One tensor to write into a hand-built `.bin`: dtype (safetensors spelling), shape and raw little-endian bytes. */
export interface TorchTensorBytes {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A whole `pytorch_model.bin` holding `tensors`, each in its own storage (keys 0, 1, ...), as torch.save lays it out. */
export function torchFile(tensors: Record<string, TorchTensorBytes>): Uint8Array {
  const specs: Record<string, TensorSpec> = {};
  const storages: Record<string, Uint8Array> = {};
  for (const [i, [name, t]] of Object.entries(tensors).entries()) {
    const type = STORAGE_TYPES[t.dtype];
    if (!type) throw new Error(`torchFile: no storage type for ${t.dtype}`);
    specs[name] = { key: String(i), numel: t.bytes.length / type[1], shape: t.shape, storageType: type[0] };
    storages[String(i)] = t.bytes;
  }
  return torchArchive(stateDictPickle(specs, { metadata: true }), storages);
}

/** transformers' shard file name: `pytorch_model-00001-of-00002.bin`. */
export function torchShardName(i: number, count: number): string {
  return `pytorch_model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.bin`;
}

/**
 * `tensors` split over `count` torch shards the way transformers' save_pretrained writes them:
 * the shard files (name -> bytes) and the `pytorch_model.bin.index.json` object.
 * `assign` picks each tensor's shard (default: round robin).
 */
export function shardTorch(
  tensors: Record<string, TorchTensorBytes>,
  count: number,
  assign: (name: string, i: number) => number = (_, i) => i % count,
): { files: Map<string, Uint8Array>; index: { metadata: { total_size: number }; weight_map: Record<string, string> } } {
  const parts: Record<string, TorchTensorBytes>[] = Array.from({ length: count }, () => ({}));
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [i, [name, t]] of Object.entries(tensors).entries()) {
    const shard = assign(name, i);
    parts[shard][name] = t;
    weightMap[name] = torchShardName(shard, count);
    total += t.bytes.length;
  }
  const files = new Map(parts.map((part, i) => [torchShardName(i, count), torchFile(part)]));
  return { files, index: { metadata: { total_size: total }, weight_map: weightMap } };
}
