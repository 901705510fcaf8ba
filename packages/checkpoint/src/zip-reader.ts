/**
 * The central directory of a zip archive, read from a {@link ByteSource}
 * without loading the archive (PKWARE APPNOTE.TXT 6.3: sections 4.3.6 local
 * header, 4.3.12 central directory header, 4.3.14-16 zip64 end records, 4.5.3
 * zip64 extra field). Only what `torch.save` writes is accepted: stored
 * (uncompressed) entries on one disk. Every offset and size is checked against
 * the file before anything is allocated from it.
 */
import { CheckpointError } from './errors.js';
import { readExactly } from './safetensors.js';
import type { ByteSource } from './sources.js';

/** One member of the archive. */
export interface ZipEntry {
  /** The name in the central directory (`archive/data/0`). */
  readonly name: string;
  /** 0 for stored entries; anything else is refused when the entry is read. */
  readonly method: number;
  /** General purpose flags (bit 0: encrypted). */
  readonly flags: number;
  /** Bytes of the stored data. */
  readonly size: number;
  /** Offset of the entry's local header. */
  readonly headerOffset: number;
}

/** The central directory of an archive. */
export interface ZipDirectory {
  /** Every entry by name. */
  readonly entries: ReadonlyMap<string, ZipEntry>;
  /** Where the central directory starts: every entry's data lies before it. */
  readonly directoryOffset: number;
}

/** The most entries an archive may list (a state dict has one per storage, plus a few). */
export const MAX_ZIP_ENTRIES = 1_048_576;

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function invalid(file: string, message: string): CheckpointError {
  return new CheckpointError('TORCH_INVALID', `${file}: ${message}`, { file });
}

function u64(view: DataView, at: number, file: string, what: string): number {
  const value = view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
  if (!Number.isSafeInteger(value)) throw invalid(file, `zip ${what} ${value} is too large`);
  return value;
}

/**
 * Reads and checks the central directory of the zip archive in `source`.
 *
 * @throws CheckpointError `TORCH_INVALID` for anything malformed (no end record,
 *   offsets outside the file, a directory that overlaps its end record, duplicate names).
 * @example
 * ```ts
 * const { entries } = await readZipDirectory(fileSource('pytorch_model.bin'), size);
 * console.log([...entries.keys()]); // ['pytorch_model/data.pkl', 'pytorch_model/byteorder', 'pytorch_model/data/0', ...]
 * ```
 */
export async function readZipDirectory(source: ByteSource, size: number): Promise<ZipDirectory> {
  const file = source.name;
  if (size < 22) throw invalid(file, `${size} bytes is too short for a zip archive`);
  // The end record is in the last 22 + 65535 (comment) bytes.
  const tailLength = Math.min(size, 22 + 0xffff);
  const tailStart = size - tailLength;
  const tail = await readExactly(source, tailStart, tailLength);
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let at = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (view.getUint32(i, true) === EOCD && i + 22 + view.getUint16(i + 20, true) === tailLength) {
      at = i;
      break;
    }
  }
  if (at < 0) throw invalid(file, 'no zip end-of-central-directory record (not a zip archive, or truncated)');
  const eocdOffset = tailStart + at;
  if (view.getUint16(at + 4, true) !== 0 || view.getUint16(at + 6, true) !== 0) throw invalid(file, 'multi-disk zip archives are not supported');
  let count = view.getUint16(at + 10, true);
  let dirSize = view.getUint32(at + 12, true);
  let dirOffset = view.getUint32(at + 16, true);
  let dirEnd = eocdOffset;
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    if (eocdOffset < 20) throw invalid(file, 'zip64 end record locator missing');
    const locator = await readExactly(source, eocdOffset - 20, 20);
    const lv = new DataView(locator.buffer, locator.byteOffset, 20);
    if (lv.getUint32(0, true) !== ZIP64_LOCATOR) throw invalid(file, 'zip64 end record locator missing');
    const recordOffset = u64(lv, 8, file, 'zip64 end record offset');
    if (recordOffset + 56 > eocdOffset - 20) throw invalid(file, `zip64 end record offset ${recordOffset} lies outside the archive`);
    const record = await readExactly(source, recordOffset, 56);
    const rv = new DataView(record.buffer, record.byteOffset, 56);
    if (rv.getUint32(0, true) !== ZIP64_EOCD) throw invalid(file, 'zip64 end record signature missing');
    count = u64(rv, 32, file, 'entry count');
    dirSize = u64(rv, 40, file, 'central directory size');
    dirOffset = u64(rv, 48, file, 'central directory offset');
    dirEnd = recordOffset;
  }
  if (count > MAX_ZIP_ENTRIES) throw invalid(file, `zip archive lists ${count} entries (the limit is ${MAX_ZIP_ENTRIES})`);
  if (dirOffset + dirSize > dirEnd) throw invalid(file, `zip central directory [${dirOffset}, ${dirOffset + dirSize}) runs past its end record at ${dirEnd}`);
  if (dirSize < count * 46) throw invalid(file, `zip central directory of ${dirSize} bytes cannot hold ${count} entries`);
  const dir = await readExactly(source, dirOffset, dirSize);
  const dv = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let e = 0; e < count; e++) {
    if (p + 46 > dirSize || dv.getUint32(p, true) !== CENTRAL) throw invalid(file, `zip central directory entry ${e} is malformed`);
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    let compressed = dv.getUint32(p + 20, true);
    let size32 = dv.getUint32(p + 24, true);
    const nameLength = dv.getUint16(p + 28, true);
    const extraLength = dv.getUint16(p + 30, true);
    const commentLength = dv.getUint16(p + 32, true);
    let headerOffset = dv.getUint32(p + 42, true);
    const next = p + 46 + nameLength + extraLength + commentLength;
    if (next > dirSize) throw invalid(file, `zip central directory entry ${e} runs past the directory`);
    let name: string;
    try {
      name = decoder.decode(dir.subarray(p + 46, p + 46 + nameLength));
    } catch (cause) {
      throw new CheckpointError('TORCH_INVALID', `${file}: zip entry ${e} has a name that is not UTF-8`, { file, cause });
    }
    // zip64 extra field: the 64-bit values of the 32-bit fields that are 0xffffffff, in this order.
    for (let x = p + 46 + nameLength; x + 4 <= p + 46 + nameLength + extraLength; ) {
      const id = dv.getUint16(x, true);
      const length = dv.getUint16(x + 2, true);
      if (x + 4 + length > p + 46 + nameLength + extraLength) throw invalid(file, `zip entry "${name}": extra field runs past its entry`);
      if (id === 1) {
        let y = x + 4;
        const take = (what: string) => {
          if (y + 8 > x + 4 + length) throw invalid(file, `zip entry "${name}": zip64 extra field too short for its ${what}`);
          const v = u64(dv, y, file, what);
          y += 8;
          return v;
        };
        if (size32 === 0xffffffff) size32 = take('size');
        if (compressed === 0xffffffff) compressed = take('compressed size');
        if (headerOffset === 0xffffffff) headerOffset = take('header offset');
      }
      x += 4 + length;
    }
    if (entries.has(name)) throw invalid(file, `zip entry "${name}" appears twice`);
    if (method === 0 && compressed !== size32) throw invalid(file, `zip entry "${name}" is stored but its sizes differ (${compressed} and ${size32})`);
    if (headerOffset + 30 + compressed > dirOffset) throw invalid(file, `zip entry "${name}" at ${headerOffset} (${compressed} bytes) overlaps the central directory`);
    entries.set(name, { name, method, flags, size: size32, headerOffset });
    p = next;
  }
  return { entries, directoryOffset: dirOffset };
}

/**
 * The absolute offset of a stored entry's data (after its local header), checked
 * to lie, with `entry.size` bytes, before `limit` (the central directory).
 *
 * @throws CheckpointError `TORCH_UNSUPPORTED` for compressed or encrypted entries, `TORCH_INVALID` for a bad local header.
 * @example
 * ```ts
 * const at = await zipEntryDataOffset(source, dir.entries.get('archive/data.pkl')!, dir.directoryOffset);
 * ```
 */
export async function zipEntryDataOffset(source: ByteSource, entry: ZipEntry, limit: number): Promise<number> {
  const file = source.name;
  if (entry.method !== 0) {
    throw new CheckpointError('TORCH_UNSUPPORTED', `${file}: zip entry "${entry.name}" is compressed (method ${entry.method}); torch.save stores entries uncompressed`, { file });
  }
  if (entry.flags & 1) throw new CheckpointError('TORCH_UNSUPPORTED', `${file}: zip entry "${entry.name}" is encrypted`, { file });
  if (entry.headerOffset + 30 > limit) throw invalid(file, `zip entry "${entry.name}": local header at ${entry.headerOffset} lies outside the archive`);
  const header = await readExactly(source, entry.headerOffset, 30);
  const hv = new DataView(header.buffer, header.byteOffset, 30);
  if (hv.getUint32(0, true) !== LOCAL) throw invalid(file, `zip entry "${entry.name}": no local header at ${entry.headerOffset}`);
  const data = entry.headerOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
  if (data + entry.size > limit) throw invalid(file, `zip entry "${entry.name}": its ${entry.size} bytes at ${data} run past the entries' area (${limit} bytes)`);
  return data;
}
