/**
 * Byte sources: random access to a file's bytes, whatever holds them. A Node
 * path (read through a file handle, one range at a time), a browser `File` /
 * `Blob`, a URL (HTTP Range requests) or bytes already in memory.
 *
 * Every source checks `offset + length <= size` before it allocates, so a
 * corrupt header can never make it allocate more than the file holds.
 */
import { CheckpointError } from './errors.js';

/**
 * Random read access to the bytes of one file.
 *
 * @example
 * ```ts
 * const source = fileSource('/models/mamba/model.safetensors');
 * const first8 = await source.read(0, 8);
 * await source.close();
 * ```
 */
export interface ByteSource {
  /** A name for messages: a path, a URL or a File's name. */
  readonly name: string;
  /** Size of the file in bytes. */
  size(): Promise<number>;
  /**
   * Exactly `length` bytes starting at `offset`. Throws `SAFETENSORS_TRUNCATED`
   * when the range runs past the end of the file.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the file handle (if any). Safe to call twice. */
  close(): Promise<void>;
}

/** Anything {@link toByteSource} turns into a {@link ByteSource}. */
export type ByteSourceInput = ByteSource | string | URL | Blob | Uint8Array | ArrayBuffer;

function checkRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new CheckpointError('CHECKPOINT_IO', `${name}: invalid read of ${length} bytes at ${offset}`, { file: name });
  }
  if (offset + length > size) {
    throw new CheckpointError('SAFETENSORS_TRUNCATED', `${name}: reading ${length} bytes at ${offset} runs past the end of the file (${size} bytes)`, { file: name });
  }
}

/** `new Uint8Array(length)`, with a failed allocation (a huge tensor) as a typed error rather than a RangeError. */
function allocate(name: string, length: number): Uint8Array {
  try {
    return new Uint8Array(length);
  } catch (cause) {
    throw new CheckpointError('CHECKPOINT_IO', `${name}: cannot allocate ${length} bytes: ${(cause as Error)?.message ?? String(cause)}`, { file: name, cause });
  }
}

/**
 * A source over bytes already in memory. Reads return views into `bytes` (no copy).
 *
 * @example
 * ```ts
 * const source = bufferSource(writeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } }), 'w.safetensors');
 * ```
 */
export function bufferSource(bytes: Uint8Array | ArrayBuffer, name = 'buffer'): ByteSource {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return {
    name,
    size: async () => data.byteLength,
    read: async (offset, length) => {
      checkRange(name, offset, length, data.byteLength);
      return data.subarray(offset, offset + length);
    },
    close: async () => {},
  };
}

/**
 * A source over a browser `File` or `Blob` (each read slices the blob; nothing
 * else is loaded).
 *
 * @example
 * ```ts
 * const [file] = (document.querySelector('input[type=file]') as HTMLInputElement).files!;
 * const checkpoint = await openSafetensors(blobSource(file));
 * ```
 */
export function blobSource(blob: Blob, name = (blob as Partial<File>).name || 'blob'): ByteSource {
  return {
    name,
    size: async () => blob.size,
    read: async (offset, length) => {
      checkRange(name, offset, length, blob.size);
      if (length === 0) return new Uint8Array(0);
      let buffer: ArrayBuffer;
      try {
        buffer = await blob.slice(offset, offset + length).arrayBuffer();
      } catch (cause) {
        throw new CheckpointError('CHECKPOINT_IO', `${name}: reading ${length} bytes at ${offset} failed: ${String(cause)}`, { file: name, cause });
      }
      if (buffer.byteLength !== length) {
        throw new CheckpointError('SAFETENSORS_TRUNCATED', `${name}: read ${buffer.byteLength} of ${length} bytes at ${offset}`, { file: name });
      }
      return new Uint8Array(buffer);
    },
    close: async () => {},
  };
}

type FsPromises = typeof import('node:fs/promises');
type FileHandle = Awaited<ReturnType<FsPromises['open']>>;

let fsModule: Promise<FsPromises> | undefined;

/**
 * `node:fs/promises`, imported on first use through a computed specifier so
 * browser bundles never try to resolve it.
 * @internal
 */
export function nodeFs(): Promise<FsPromises> {
  const specifier = ['node', 'fs/promises'].join(':');
  fsModule ??= import(/* @vite-ignore */ /* webpackIgnore: true */ specifier) as Promise<FsPromises>;
  return fsModule;
}

/** @internal Maps a Node fs error to a typed error. */
export function fsError(path: string, cause: unknown, doing: string): CheckpointError {
  const code = (cause as { code?: string })?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new CheckpointError('CHECKPOINT_FILE_NOT_FOUND', `${path}: no such file`, { file: path, cause });
  }
  return new CheckpointError('CHECKPOINT_IO', `${path}: ${doing} failed: ${(cause as Error)?.message ?? String(cause)}`, { file: path, cause });
}

/**
 * True when `name` is a plain file name: not empty, at most 255 characters, not
 * `.` or `..`, and free of separators (`/`, `\\`), drive colons, NUL and
 * control characters. Such a name can only name an entry of the folder it is
 * looked up in.
 *
 * @example
 * ```ts
 * isPlainFileName('model-00001-of-00002.safetensors'); // true
 * isPlainFileName('../secret');                         // false
 * ```
 */
export function isPlainFileName(name: unknown): boolean {
  if (typeof name !== 'string' || name.length === 0 || name.length > 255 || name === '.' || name === '..') return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x2f /* / */ || c === 0x5c /* \ */ || c === 0x3a /* : */) return false;
  }
  return true;
}

/**
 * Opens `path` for reading only if it is a regular file: it is stat'ed before
 * it is opened (a FIFO or a device would block the open forever), opened
 * non-blocking, and stat'ed again through the handle to be sure it is still
 * the same regular file.
 */
async function openRegularFile(path: string, name: string): Promise<{ fh: FileHandle; size: number }> {
  const fs = await nodeFs();
  let before: Awaited<ReturnType<FsPromises['stat']>>;
  try {
    before = await fs.stat(path);
  } catch (cause) {
    throw fsError(name, cause, 'stat');
  }
  if (!before.isFile()) throw new CheckpointError('CHECKPOINT_IO', `${name}: not a regular file (${fileKind(before)})`, { file: name });
  const flags = (fs.constants?.O_RDONLY ?? 0) | (fs.constants?.O_NONBLOCK ?? 0);
  let fh: FileHandle;
  try {
    fh = await fs.open(path, flags);
  } catch (cause) {
    throw fsError(name, cause, 'open');
  }
  try {
    const after = await fh.stat();
    if (!after.isFile() || after.ino !== before.ino || after.dev !== before.dev) {
      throw new CheckpointError('CHECKPOINT_IO', `${name}: the file changed while it was opened`, { file: name });
    }
    return { fh, size: after.size };
  } catch (cause) {
    await fh.close().catch(() => {});
    throw CheckpointError.isCheckpointError(cause) ? cause : fsError(name, cause, 'stat');
  }
}

function fileKind(stat: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * A file source whose path is found (and checked) on first use by `locate`.
 * @internal
 */
export function lazyFileSource(name: string, locate: () => Promise<string>): ByteSource {
  let handle: Promise<{ fh: FileHandle; size: number }> | undefined;
  let closed = false;
  const open = () => {
    if (closed) throw new CheckpointError('CHECKPOINT_CLOSED', `${name}: the source was closed`, { file: name });
    handle ??= (async () => openRegularFile(await locate(), name))();
    return handle;
  };
  return {
    name,
    size: async () => (await open()).size,
    read: async (offset, length) => {
      const { fh, size } = await open();
      checkRange(name, offset, length, size);
      const out = allocate(name, length);
      let done = 0;
      while (done < length) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await fh.read(out, done, length - done, offset + done));
        } catch (cause) {
          throw fsError(name, cause, `reading ${length} bytes at ${offset}`);
        }
        if (bytesRead === 0) {
          throw new CheckpointError('SAFETENSORS_TRUNCATED', `${name}: the file ended after ${offset + done} bytes while reading ${length} bytes at ${offset}`, { file: name });
        }
        done += bytesRead;
      }
      return out;
    },
    close: async () => {
      closed = true;
      const h = handle;
      handle = undefined;
      if (h) await h.then(({ fh }) => fh.close()).catch(() => {});
    },
  };
}

/**
 * A source over a file on disk (Node). The file is opened on first use and
 * read with a file handle, one range at a time: a multi-GB checkpoint is never
 * held in one buffer. Only a regular file is opened (a FIFO, a device or a
 * directory is refused with `CHECKPOINT_IO` before any open, so nothing blocks).
 *
 * @example
 * ```ts
 * const source = fileSource('./model.safetensors');
 * console.log(await source.size());
 * await source.close();
 * ```
 */
export function fileSource(path: string): ByteSource {
  return lazyFileSource(path, async () => path);
}

/** Options of {@link urlSource}. */
export interface UrlSourceOptions {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Extra request headers, e.g. `{ Authorization: 'Bearer hf_...' }`. */
  headers?: Record<string, string>;
}

/**
 * A source over a URL, read with HTTP `Range: bytes=a-b` requests. The server
 * must answer `206 Partial Content`; a server that ignores the range gets a
 * `CHECKPOINT_RANGE_UNSUPPORTED` error instead of a full download.
 *
 * @example
 * ```ts
 * const source = urlSource('https://huggingface.co/state-spaces/mamba-130m-hf/resolve/main/model.safetensors');
 * const checkpoint = await openSafetensors(source);
 * ```
 */
export function urlSource(url: string | URL, options: UrlSourceOptions = {}): ByteSource {
  const name = String(url);
  const doFetch = options.fetch ?? globalThis.fetch;
  let size: Promise<number> | undefined;

  const request = async (range: string): Promise<Response> => {
    let response: Response;
    try {
      response = await doFetch(name, { headers: { ...options.headers, Range: range } });
    } catch (cause) {
      throw new CheckpointError('CHECKPOINT_HTTP', `${name}: request failed: ${(cause as Error)?.message ?? String(cause)}`, { file: name, cause });
    }
    if (response.status === 404) {
      await response.body?.cancel().catch(() => {});
      throw new CheckpointError('CHECKPOINT_FILE_NOT_FOUND', `${name}: 404 not found`, { file: name });
    }
    if (response.status === 200) {
      await response.body?.cancel().catch(() => {});
      throw new CheckpointError('CHECKPOINT_RANGE_UNSUPPORTED', `${name}: the server ignored "Range: ${range}" (status 200, expected 206)`, { file: name });
    }
    if (response.status !== 206 && response.status !== 416) {
      await response.body?.cancel().catch(() => {});
      throw new CheckpointError('CHECKPOINT_HTTP', `${name}: HTTP ${response.status} ${response.statusText} for "Range: ${range}"`, { file: name });
    }
    return response;
  };

  const findSize = async (): Promise<number> => {
    const response = await request('bytes=0-0');
    await response.body?.cancel().catch(() => {});
    // "bytes 0-0/1234" (206) or "bytes */0" (416, empty file)
    const match = /\/(\d+)\s*$/.exec(response.headers.get('content-range') ?? '');
    if (match) return Number(match[1]);
    // A cross-origin server may not expose Content-Range; Content-Length of a HEAD always is.
    let head: Response;
    try {
      head = await doFetch(name, { method: 'HEAD', headers: options.headers });
    } catch (cause) {
      throw new CheckpointError('CHECKPOINT_HTTP', `${name}: request failed: ${(cause as Error)?.message ?? String(cause)}`, { file: name, cause });
    }
    const length = head.headers.get('content-length');
    if (!head.ok || length === null || !/^\d+$/.test(length)) {
      throw new CheckpointError('CHECKPOINT_HTTP', `${name}: the size is in neither Content-Range nor the Content-Length of a HEAD request`, { file: name });
    }
    return Number(length);
  };
  const getSize = () => {
    if (!size) {
      size = findSize();
      // A failure is not cached: the next call asks again.
      size.catch(() => (size = undefined));
    }
    return size;
  };

  return {
    name,
    size: getSize,
    read: async (offset, length) => {
      checkRange(name, offset, length, await getSize());
      if (length === 0) return new Uint8Array(0);
      const range = `bytes=${offset}-${offset + length - 1}`;
      const response = await request(range);
      if (response.status !== 206) {
        await response.body?.cancel().catch(() => {});
        throw new CheckpointError('CHECKPOINT_HTTP', `${name}: HTTP ${response.status} for "Range: ${range}"`, { file: name });
      }
      const contentRange = response.headers.get('content-range') ?? '';
      const start = /^bytes\s+(\d+)-/.exec(contentRange);
      if (start && Number(start[1]) !== offset) {
        await response.body?.cancel().catch(() => {});
        throw new CheckpointError('CHECKPOINT_HTTP', `${name}: asked for "${range}", got "${contentRange}"`, { file: name });
      }
      return readBody(response, length, name, offset);
    },
    close: async () => {},
  };
}

/** Reads a response body into exactly `length` bytes, refusing a longer or shorter body without buffering it. */
async function readBody(response: Response, length: number, name: string, offset: number): Promise<Uint8Array> {
  const out = allocate(name, length);
  let done = 0;
  if (!response.body) throw new CheckpointError('CHECKPOINT_HTTP', `${name}: empty response body`, { file: name });
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done: finished, value } = await reader.read();
      if (finished) break;
      if (done + value.byteLength > length) {
        throw new CheckpointError('CHECKPOINT_HTTP', `${name}: the server sent more than the ${length} bytes asked for at ${offset}`, { file: name });
      }
      out.set(value, done);
      done += value.byteLength;
    }
  } catch (cause) {
    await reader.cancel().catch(() => {});
    if (CheckpointError.isCheckpointError(cause)) throw cause;
    throw new CheckpointError('CHECKPOINT_HTTP', `${name}: reading the response failed: ${(cause as Error)?.message ?? String(cause)}`, { file: name, cause });
  }
  if (done !== length) {
    throw new CheckpointError('SAFETENSORS_TRUNCATED', `${name}: the server sent ${done} of ${length} bytes at ${offset}`, { file: name });
  }
  return out;
}

/**
 * Turns a path (Node), an `http(s)://` URL, a `Blob` / `File`, bytes in memory
 * or a ready {@link ByteSource} into a {@link ByteSource}.
 *
 * @example
 * ```ts
 * const source = toByteSource('https://example.com/model.safetensors');
 * ```
 */
export function toByteSource(input: ByteSourceInput, options: UrlSourceOptions = {}): ByteSource {
  if (typeof input === 'string') return isHttpUrl(input) ? urlSource(input, options) : fileSource(input.startsWith('file://') ? decodeURIComponent(new URL(input).pathname) : input);
  if (input instanceof URL) return input.protocol === 'file:' ? fileSource(decodeURIComponent(input.pathname)) : urlSource(input, options);
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) return bufferSource(input);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return blobSource(input);
  return input as ByteSource;
}

/** @internal True for `http://` and `https://` strings. */
export function isHttpUrl(value: string): boolean {
  return /^https?:\/\//i.test(value);
}
